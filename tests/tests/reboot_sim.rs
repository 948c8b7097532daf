//! Reboot simulation (issue 8, plugins#252): a node whose `/run`, network
//! namespaces and links are gone while `/var/lib` (host-local's store,
//! netboot's records) is intact.
//!
//! - [`add_frees_the_ips_of_ghosts_and_never_of_a_live_pod`]: the plugin on
//!   its own, in a /28: ADD into an exhausted range frees the IPs of
//!   attachments whose netns is gone or that were made in an earlier boot
//!   (the boot id comes from `NETBOOT_BOOT_ID_FILE`, since a simulated
//!   reboot cannot change the kernel's), and never those of a live pod.
//! - [`reboot_then_gc_or_add_and_doctor_restore_a_full_node`]: a node running
//!   `netboot agent` (etcd and a second node on the underlay), a /28 filled
//!   with native- and bridge-mode pods, power-cycled `NETBOOT_REBOOT_ROUNDS`
//!   times (3 by default), rounds rotating between: recovered the way a
//!   node's runtime should (GC with no surviving attachment, doctor before
//!   and after); by ADDs alone (a runtime that never GCs), then GC; and the
//!   same as the first after the lease expired while the node was down.
//!   The node helpers are in `netboot_tests::reboot_support`.
//! - [`podrun_gc_after_a_reboot_releases_the_pods_that_died_with_it`]:
//!   podrun's records survive a reboot saying "running"; `podrun gc` must
//!   not keep the attachments of pods whose netns is gone.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};

use netboot_tests::cluster::{AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::containerd::{pod_spec, PodNode, BUSYBOX};
use netboot_tests::native_support::NativeNode;
use netboot_tests::node::SubnetEnv;
use netboot_tests::plugin::{PluginCall, PluginOutput};
use netboot_tests::plugin_support::{cid, err_code, err_text, merged, with_ports, NET};
use netboot_tests::reboot_support::{
    assert_cross_node, check, problem, problem_or_ok, store, Machine, Pod, BOOT_ENV, CONVERGE,
    EXHAUSTED, SMALL_CONFIG,
};
use netboot_tests::{first_ip, require_root, Netns};

fn with_boot(mut call: PluginCall, boot_file: &Path) -> PluginCall {
    call.env
        .push((BOOT_ENV.into(), boot_file.display().to_string()));
    call
}

#[test]
fn add_frees_the_ips_of_ghosts_and_never_of_a_live_pod() {
    require_root();
    let env = SubnetEnv {
        subnet: "10.2.1.1/28".into(),
        ..SubnetEnv::default()
    };
    let node = NativeNode::with_env("rb-add", env);
    let boot = node.dir().join("boot_id");
    std::fs::write(&boot, "boot-1\n").unwrap();
    let native = node.conf("1.1.0");
    let bridge = node.pn.conf("1.0.0");
    let ipam = node.ipam_dir.join(NET);
    // Native calls get an empty CNI_PATH, bridge calls the reference plugins.
    let add = |pod: &Netns, conf: &Value, is_native: bool| -> PluginOutput {
        let call = if is_native {
            node.call("ADD", pod, conf)
        } else {
            node.pn.call("ADD", pod, conf)
        };
        node.run(&with_boot(call, &boot))
    };

    // Fill the /28 (13 IPs): 7 native pods (the first with a port
    // mapping), 6 bridge-mode pods through the reference plugins.
    let mut pods: Vec<Option<Netns>> = Vec::new();
    for i in 0..13 {
        let pod = Netns::new("rbp");
        let is_native = i < 7;
        let conf = match i {
            0 => with_ports(&native, 18080, 80),
            _ if is_native => native.clone(),
            _ => bridge.clone(),
        };
        add(&pod, &conf, is_native).expect_ok();
        pods.push(Some(pod));
    }
    let full = store(&ipam);
    assert_eq!(full.len(), 13, "{full:?}");

    // Nothing is a ghost: the 14th ADD fails, and nothing was freed.
    let extra = Netns::new("rbx");
    let out = add(&extra, &native, true);
    assert_eq!(err_code(&out), 11, "{}", out.output);
    assert!(err_text(&out).contains(EXHAUSTED), "{}", out.output);
    assert_eq!(store(&ipam), full, "a live pod lost its IP");
    // A bad boot id source is refused before anything is touched.
    for bad in ["relative/boot_id", "/nonexistent-netboot/boot_id"] {
        let mut call = node.call("ADD", &extra, &native);
        call.env.push((BOOT_ENV.into(), bad.into()));
        let out = node.run(&call);
        assert_eq!(err_code(&out), 4, "{}", out.output);
        assert!(err_text(&out).contains(BOOT_ENV), "{}", out.output);
    }
    assert_eq!(store(&ipam), full);
    // A live attachment's second ADD is still refused.
    let mut again = node.call("ADD", pods[1].as_ref().unwrap(), &native);
    again
        .env
        .push((BOOT_ENV.into(), boot.display().to_string()));
    assert_eq!(err_code(&node.run(&again)), 4);

    // Four pods vanish without DEL (same boot): pod 0 has a port mapping,
    // so its DNAT rules may still exist and its IP is left for GC.
    let lost = [0usize, 1, 7, 8];
    let mut lost_ids = Vec::new();
    for &i in &lost {
        let pod = pods[i].take().unwrap();
        lost_ids.push(cid(&pod));
        drop(pod);
    }
    let ghost_ips: BTreeSet<String> = full
        .iter()
        .filter(|(_, owner)| {
            lost_ids[1..]
                .iter()
                .any(|id| owner.starts_with(id.as_str()))
        })
        .map(|(ip, _)| ip.clone())
        .collect();
    assert_eq!(ghost_ips.len(), 3);
    let mut fresh = Vec::new();
    for i in 0..3 {
        let pod = Netns::new("rbn");
        let res = add(&pod, &native, true).expect_ok();
        let ip = first_ip(&res);
        assert!(
            ghost_ips.contains(&ip),
            "ADD {i} got {ip}, not a ghost's IP"
        );
        fresh.push(pod);
    }
    let out = add(&extra, &bridge, false);
    assert!(err_text(&out).contains(EXHAUSTED), "{}", out.output);
    let now = store(&ipam);
    for (ip, owner) in &full {
        if !ghost_ips.contains(ip) {
            assert_eq!(now.get(ip), Some(owner), "{ip} changed hands");
        }
    }
    assert!(
        now.values().any(|o| o.starts_with(lost_ids[0].as_str())),
        "the ghost with a port mapping lost its IP before GC: {now:?}"
    );

    // Reboot, as far as the plugin can tell: a new boot id. Every
    // attachment of boot-1 is a ghost, even those whose netns path still
    // exists (after a real reboot such a path, /proc/<pid>/ns/net, may
    // name a new process). The first ADD frees them all.
    std::fs::write(&boot, "boot-2\n").unwrap();
    let first = Netns::new("rbb");
    // (A bridge-mode ADD: the reference host-local says "exhausted".)
    add(&first, &bridge, false).expect_ok();
    assert_eq!(store(&ipam).len(), 1, "{:?}", store(&ipam));
    // A runtime re-creating a sandbox under an old ID gets a clean ADD
    // instead of "already attached".
    let mut readd = node.pn.call("ADD", pods[9].as_ref().unwrap(), &bridge);
    readd = with_boot(readd, &boot);
    node.run(&readd).expect_ok();
    let mut boot2 = vec![cid(&first), cid(pods[9].as_ref().unwrap())];
    // The range fills completely again.
    let mut more = Vec::new();
    for i in 0..11 {
        let pod = Netns::new("rbf");
        let conf = if i % 2 == 0 { &native } else { &bridge };
        add(&pod, conf, i % 2 == 0).expect_ok();
        boot2.push(cid(&pod));
        more.push(pod);
    }
    assert_eq!(store(&ipam).len(), 13);
    let out = add(&extra, &native, true);
    assert_eq!(err_code(&out), 11, "{}", out.output);

    // GC with the live attachments leaves exactly them: records, scratch
    // files, port rules of the old boot's pods are gone.
    let valid: Vec<Value> = boot2
        .iter()
        .map(|c| json!({"containerID": c, "ifname": "eth0"}))
        .collect();
    let gc = merged(&native, json!({"cni.dev/valid-attachments": valid}));
    let mut gc_call = node.pn.bare_call("GC", &gc);
    gc_call = with_boot(gc_call, &boot);
    node.run(&gc_call).expect_ok();
    let owners: BTreeSet<String> = store(&ipam)
        .values()
        .map(|o| o.split("\r\n").next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(owners, boot2.iter().cloned().collect::<BTreeSet<_>>());
    let records: BTreeSet<String> = node
        .records()
        .into_iter()
        .map(|r| r.trim_end_matches("@eth0.json").to_string())
        .collect();
    assert_eq!(records, boot2.iter().cloned().collect::<BTreeSet<_>>());
    for id in &lost_ids {
        assert!(
            node.nft_mentioning(id).is_empty(),
            "port mappings of {id} survived GC"
        );
    }
    drop((fresh, more, pods, first, extra));
}

#[test]
fn reboot_then_gc_or_add_and_doctor_restore_a_full_node() {
    require_root();
    let rounds: usize = std::env::var("NETBOOT_REBOOT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 3)
        .unwrap_or(3);
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), SMALL_CONFIG);
    let mut a = Machine::new(&ul, "rbA", 11);
    let mut subnet = a.start_agent(&etcd);
    let mut b = AgentNode::new(&ul, "rbB", 12);
    let b_lock = b.dir.path().join("run/netboot");
    b.start_agent_with_env(
        &etcd.endpoints(),
        &[],
        &[("NETBOOT_LOCK_DIR", b_lock.to_str().unwrap())],
    );
    b.wait_subnet(CONVERGE);
    let (_, b_ip) = b.add_pod("rbq");

    let mut pods = a.fill(0);
    assert_cross_node(&pods, &b, &b_ip);
    a.assert_exactly(&pods);
    let mut tally = [0usize; 3];
    for round in 1..=rounds {
        let ghosts: Vec<String> = pods.iter().map(|p| p.id.clone()).collect();
        // 1: rebooted (new boot id), recovered by GC, doctor before and
        // after; 2: same boot id, no GC at all, the ADDs free the ghosts'
        // IPs themselves; 0: down past the lease TTL (new subnet, most
        // likely), new boot id, recovered by GC.
        let kind = round % 3;
        tally[kind] += 1;
        let boot = format!("boot-{}\n", round + 1);
        let new_boot = (kind != 2).then_some(boot.as_str());
        let again = a.reboot(&ul, &etcd, pods, new_boot, kind == 0);
        if kind != 0 {
            assert_eq!(
                again, subnet,
                "the node's lease (same PublicIP) gives its subnet back"
            );
        }
        subnet = again;
        if kind != 2 {
            let report = a.doctor(&etcd);
            let msg = problem(&report, "ipam");
            assert!(
                msg.contains("13 IP(s)") && msg.contains("made in an earlier boot"),
                "{msg}"
            );
            let msg = problem(&report, "records");
            assert!(msg.contains("13 attachment record(s)"), "{msg}");
            // Doctor names the first 8 by name, then counts the rest.
            let mut named = ghosts.clone();
            named.sort();
            for id in named.iter().take(8) {
                assert!(
                    msg.contains(&format!("{id}@eth0 (made in an earlier boot)")),
                    "{msg}"
                );
            }
            a.gc(&[]);
            let report = a.doctor(&etcd);
            assert_eq!(report["healthy"], true, "doctor after GC: {report}");
            a.assert_exactly(&[]);
        }
        pods = a.fill(round);
        assert_cross_node(&pods, &b, &b_ip);
        if kind == 2 {
            let report = a.doctor(&etcd);
            let msg = problem(&report, "records");
            assert!(
                msg.contains("13 attachment record(s)") && msg.contains("netns is gone"),
                "{msg}"
            );
            assert!(
                !msg.contains(&format!("r{round}-")),
                "a live pod reported: {msg}"
            );
            // Every IP is a live pod's: the ghosts only hold records.
            let msg = problem_or_ok(&report, "ipam");
            assert!(!msg.contains("no live pod"), "{msg}");
            let valid: Vec<&Pod> = pods.iter().collect();
            a.gc(&valid);
            // Clean, but for the warning that the /28 is full (it is).
            let report = a.doctor(&etcd);
            assert_eq!(report["problems"], 1, "doctor after GC: {report}");
            assert!(problem_or_ok(&report, "ipam").contains("13 of 13 pod IPs"));
            assert_eq!(check(&report, "records")["status"], "ok", "{report}");
        }
        a.assert_exactly(&pods);
        eprintln!(
            "reboot round {round}: {} ghosts, node {subnet} restored",
            ghosts.len()
        );
    }
    eprintln!(
        "reboot test: {rounds} rounds ({} recovered by GC, {} by ADD alone, {} after the lease expired), 0 failures",
        tally[1], tally[2], tally[0]
    );
    drop(pods);
}

/// IP files of podrun's network in a `PodNode`'s store.
fn pod_ips(n: &PodNode) -> Vec<String> {
    store(&n.node.dir().join("ipam").join("podnet"))
        .into_keys()
        .collect()
}

#[test]
fn podrun_gc_after_a_reboot_releases_the_pods_that_died_with_it() {
    require_root();
    let n = PodNode::new("rb-pod", "10.88.1.1/28");
    let sleeper = json!([{"name": "s", "image": BUSYBOX, "command": ["sleep", "1000"]}]);
    for name in ["a", "b"] {
        n.run_pod(&pod_spec(name, sleeper.clone()));
    }
    assert_eq!(pod_ips(&n).len(), 2);
    // Live pods keep their attachments.
    n.podrun(&["gc"]).expect_ok();
    assert_eq!(pod_ips(&n).len(), 2);

    // A reboot as podrun sees it: every task of our containerd dead, the
    // pods' named netns gone with /run; its state dir (pod records saying
    // "running"), containerd's root and the CNI store kept.
    for id in n.ctd.ids("tasks") {
        n.ctd.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
        n.ctd.ctr(&["tasks", "delete", "-f", &id]).expect_ok();
    }
    for ns in n.pr.netns() {
        netboot_tests::exec::run_argv(&["ip", "netns", "delete", &ns]).expect_ok();
    }
    n.podrun(&["gc"]).expect_ok();
    assert_eq!(
        pod_ips(&n),
        Vec::<String>::new(),
        "podrun gc kept the dead pods' IPs"
    );
    let records = n.node.dir().join("data/.netboot");
    let left: Vec<String> = std::fs::read_dir(&records)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|f| f.ends_with("@eth0.json"))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(left, Vec::<String>::new(), "attachment records left");

    // The dead pods can be removed, and run again.
    for name in ["a", "b"] {
        n.podrun(&["rm", name]).expect_ok();
    }
    n.run_pod(&pod_spec("a", sleeper));
    assert_eq!(pod_ips(&n).len(), 1);
    n.podrun(&["rm", "a"]).expect_ok();
    n.assert_clean();
}
