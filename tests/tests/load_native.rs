//! Load on one node in native mode (issue 8, "Load"): many pods ADDed and
//! DELed at several levels of concurrency, and a small range filled by more
//! concurrent ADDs than it has addresses.
//!
//! `NETBOOT_LOAD_PODS` (default 250, at most 253: a /24 less network,
//! gateway and broadcast) and `NETBOOT_LOAD_PARALLELISM` (default `2,8,32`:
//! the pods are split into one phase per value, each run with that many
//! calls at once) size the first test. Every node and pod is a namespace
//! the test creates and deletes.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Instant;

use netboot_tests::native_support::{env_with_subnet, NativeNode};
use netboot_tests::plugin_support::{cid, err_code, err_text};
use netboot_tests::{first_ip, ping, require_root, Netns, PluginOutput, SubnetEnv};
use serde_json::Value;

/// How many pods the big test attaches.
fn pod_count() -> usize {
    let n = std::env::var("NETBOOT_LOAD_PODS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(250);
    assert!(
        (1..=253).contains(&n),
        "NETBOOT_LOAD_PODS={n}: a /24 holds 1..=253 pods"
    );
    n
}

/// The concurrency of each phase.
fn parallelism() -> Vec<usize> {
    let v: Vec<usize> = std::env::var("NETBOOT_LOAD_PARALLELISM")
        .unwrap_or_else(|_| "2,8,32".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&p| p > 0)
        .collect();
    assert!(!v.is_empty(), "NETBOOT_LOAD_PARALLELISM names no level");
    v
}

/// `f` over `items` with at most `par` calls at once, results in order.
/// A panic in `f` is re-raised once every worker has stopped.
fn par_map<T: Sync, R: Send>(items: &[T], par: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    thread::scope(|s| {
        for _ in 0..par.min(items.len()).max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(item) = items.get(i) else { break };
                let r = f(item);
                out.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    out.into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

/// `n` pod namespaces, made 8 at a time (`ip netns add` itself is
/// serialized by the harness; bringing up `lo` is not).
fn pods(n: usize, tag: &str) -> Vec<Netns> {
    let idx: Vec<usize> = (0..n).collect();
    par_map(&idx, 8, |i| Netns::new(&format!("{tag}{i}")))
}

/// `items` split into one contiguous phase per level of `par`.
fn phases<'a, T>(items: &'a [T], par: &[usize]) -> Vec<(usize, &'a [T])> {
    let size = items.len().div_ceil(par.len());
    items
        .chunks(size.max(1))
        .zip(par.iter().copied())
        .map(|(c, p)| (p, c))
        .collect()
}

/// No nftables rule or hostPort map element of the node names any of
/// `ids`.
#[track_caller]
fn assert_no_rules_for(node: &NativeNode, ids: &[String]) {
    let mut objects: Vec<String> = node.nft_json()["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o.get("rule"))
        .map(Value::to_string)
        .collect();
    objects.extend(
        node.nft_elements()
            .into_iter()
            .map(|(s, e)| format!("{s}: {e}")),
    );
    for id in ids {
        let hits: Vec<&String> = objects.iter().filter(|r| r.contains(id.as_str())).collect();
        assert!(
            hits.is_empty(),
            "nft rules or elements for {id} left: {hits:#?}"
        );
    }
}

#[test]
fn many_pods_added_and_deleted_concurrently_leave_the_node_clean() {
    require_root();
    let (n, par) = (pod_count(), parallelism());
    let node = NativeNode::new("nload");
    let conf = node.conf("1.1.0");

    let start = Instant::now();
    let pods = pods(n, "l");
    eprintln!("load: {n} pod netns created in {:?}", start.elapsed());

    let mut ips: Vec<String> = Vec::with_capacity(n);
    let adds = Instant::now();
    for (p, chunk) in phases(&pods, &par) {
        let start = Instant::now();
        let res = par_map(chunk, p, |pod| node.add(pod, &conf));
        eprintln!(
            "load: {} native ADDs at parallelism {p}: {:?}",
            chunk.len(),
            start.elapsed()
        );
        ips.extend(res.iter().map(first_ip));
    }
    let adds = adds.elapsed();

    let unique: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(unique.len(), n, "duplicate IPs: {ips:?}");
    assert!(
        ips.iter().all(|ip| ip.starts_with("10.2.1.")),
        "IP outside the node's /24: {ips:?}"
    );
    assert_eq!(node.allocations().len(), n, "IP files");
    assert_eq!(node.host_veths().len(), n, "host veths");
    assert_eq!(node.records().len(), n, "records");

    // A sample of pods, spread over every phase, reaches the gateway.
    let gw = node.gateway();
    let step = (n / 10).max(1);
    let sample: Vec<&Netns> = pods.iter().step_by(step).take(10).collect();
    let start = Instant::now();
    let unreachable: Vec<&str> = par_map(&sample, 10, |p| (!ping(p, &gw)).then(|| p.name()))
        .into_iter()
        .flatten()
        .collect();
    assert!(
        unreachable.is_empty(),
        "no reply from {gw} in {unreachable:?}"
    );
    eprintln!(
        "load: {} pods pinged the gateway in {:?}",
        sample.len(),
        start.elapsed()
    );

    let dels = Instant::now();
    for (p, chunk) in phases(&pods, &par) {
        let start = Instant::now();
        par_map(chunk, p, |pod| node.del(pod, &conf));
        eprintln!(
            "load: {} native DELs at parallelism {p}: {:?}",
            chunk.len(),
            start.elapsed()
        );
    }

    let dels = dels.elapsed();

    let ids: Vec<String> = pods.iter().map(cid).collect();
    node.assert_clean(&[]);
    assert_eq!(node.allocations(), Vec::<String>::new(), "IPs left");
    assert_no_rules_for(&node, &ids);
    // One line for scripts/campaign.sh.
    eprintln!(
        "load test: {n} pods, parallelism {par:?}, ADDs {:.1}s, DELs {:.1}s, clean",
        adds.as_secs_f64(),
        dels.as_secs_f64()
    );
}

#[test]
fn an_exhausted_range_fails_cleanly_and_never_hands_out_a_duplicate() {
    require_root();
    // A /28 with the gateway at .1: host-local hands out .2 to .14.
    let node = NativeNode::with_env(
        "nexh",
        env_with_subnet(&SubnetEnv::default(), "10.2.1.1/28"),
    );
    let conf = node.conf("1.1.0");
    let capacity = 13;
    let pods = pods(capacity + 11, "x");

    let start = Instant::now();
    let outs: Vec<PluginOutput> = par_map(&pods, pods.len(), |pod| {
        node.run(&node.call("ADD", pod, &conf))
    });
    eprintln!(
        "exhaust: {} concurrent ADDs into {capacity} IPs: {:?}",
        pods.len(),
        start.elapsed()
    );

    let (ok, failed): (Vec<_>, Vec<_>) = pods.iter().zip(&outs).partition(|(_, out)| out.success());
    let ips: Vec<String> = ok.iter().map(|(_, o)| first_ip(&o.expect_ok())).collect();
    let unique: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(ok.len(), capacity, "successes: {ips:?}");
    assert_eq!(unique.len(), capacity, "duplicate IPs: {ips:?}");
    for (pod, out) in &failed {
        assert_eq!(err_code(out), 11, "{}: {}", pod.name(), out.stdout());
        let text = err_text(out);
        assert!(
            text.contains("no IP addresses available in range set"),
            "{}: {text}",
            pod.name()
        );
    }

    // A failed ADD leaves nothing behind: the node holds exactly the
    // successes, and a failed pod has no interface, record or rule.
    assert_eq!(node.allocations().len(), capacity, "IP files");
    assert_eq!(node.host_veths().len(), capacity, "host veths");
    let mut want: Vec<String> = ok
        .iter()
        .map(|(p, _)| format!("{}@eth0.json", cid(p)))
        .collect();
    let mut records = node.records();
    want.sort();
    records.sort();
    assert_eq!(records, want, "records are the successes'");
    for (pod, _) in &failed {
        assert_eq!(pod.link_names(), vec!["lo".to_owned()], "{}", pod.name());
    }
    let failed_ids: Vec<String> = failed.iter().map(|(p, _)| cid(p)).collect();
    assert_no_rules_for(&node, &failed_ids);

    // DEL of a failed ADD is a no-op; after the rest the node is clean.
    par_map(&pods, 8, |pod| node.del(pod, &conf));
    let ids: Vec<String> = pods.iter().map(cid).collect();
    node.assert_clean(&[]);
    assert_eq!(node.allocations(), Vec::<String>::new(), "IPs left");
    assert_no_rules_for(&node, &ids);
    // One line for scripts/campaign.sh.
    eprintln!(
        "exhaust test: {} ADDs, {capacity} IPs, {} failed with code 11",
        pods.len(),
        failed.len()
    );
}
