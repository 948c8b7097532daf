//! Several podrun instances on one node never touch each other's pods
//! (issue 6): one containerd of our own, one node netns, one network
//! (netboot-cni, native mode, one IPAM store and record dir), and four
//! instances that each run a pod named `web`:
//! - A: the node's instance;
//! - B: another `--state-dir`, A's conflist, CNI bin dir and CNI cache
//!   (as two podruns with default CNI flags share /etc/cni/net.d,
//!   /opt/cni/bin and /var/lib/cni);
//! - C: A's `--state-dir` with another `--namespace`;
//! - D: its own state dir, `--cni-conf-dir`, `--cni-bin-dir` and CNI
//!   cache, holding the same network.
//!
//! Needs root; nothing touches the root netns.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netboot_tests::containerd::{PodNode, Podrun, BUSYBOX, NAMESPACE};
use netboot_tests::plugin::{first_ip, run_plugin};
use netboot_tests::{exec, require_root, retry};
use serde_json::{json, Value};

/// C's containerd namespace.
const OTHER_NS: &str = "podrun-test-other";

/// `web`: httpd, logging who runs it first, with `WHO` in its env.
fn web(who: &str) -> Value {
    json!({
        "name": "web",
        "containers": [{
            "name": "httpd",
            "image": BUSYBOX,
            "command": ["sh", "-c", "echo started by $WHO; exec httpd -f -p 80 -h /www"],
            "env": {"WHO": who},
        }],
    })
}

/// HTTP from the node to a pod IP, retried while httpd starts.
fn http_from_node(n: &PodNode, ip: &str) -> Option<String> {
    let url = format!("http://{ip}:80/");
    retry(20, Duration::from_millis(250), || {
        let o = n.node.exec(&["curl", "-sS", "-m", "5", &url]);
        o.success().then_some(o.stdout)
    })
}

/// Asserts that every pod of `live` (instance name, IP) answers ping and
/// HTTP from the node.
#[track_caller]
fn assert_networked(n: &PodNode, live: &[(&str, &str)]) {
    for (who, ip) in live {
        let ping = n.node.exec(&["ping", "-c1", "-W2", ip]);
        assert!(ping.success(), "{who}'s pod {ip}: {ping}");
        assert_eq!(
            http_from_node(n, ip).as_deref(),
            Some("hello from busybox\n"),
            "{who}'s pod {ip} over HTTP"
        );
    }
}

/// Everything one attachment leaves on the node: host-local IP file,
/// netboot-cni record, libcni cache entry (in its instance's cache).
struct Traces {
    ip_file: PathBuf,
    record: PathBuf,
    cache: PathBuf,
}

impl Traces {
    fn of(n: &PodNode, pr: &Podrun, pod: &str, ip: &str) -> Traces {
        let id = pr.sandbox_id(pod);
        Traces {
            ip_file: n.node.dir().join("ipam/podnet").join(ip),
            record: n.node.dir().join(format!("data/.netboot/{id}@eth0.json")),
            cache: pr.cache_dir().join(format!("results/podnet-{id}-eth0")),
        }
    }

    /// `(path, exists)` of each trace.
    fn state(&self) -> Vec<(PathBuf, bool)> {
        [&self.ip_file, &self.record, &self.cache]
            .into_iter()
            .map(|p| (p.clone(), p.exists()))
            .collect()
    }

    #[track_caller]
    fn assert_all(&self, present: bool, what: &str) {
        for (p, exists) in self.state() {
            assert_eq!(exists, present, "{what}: {}", p.display());
        }
    }
}

/// Names of the host veths on the node.
fn veths(n: &PodNode) -> BTreeSet<String> {
    n.node.veths().into_iter().collect()
}

/// Holds `path`'s flock (as a podrun holding a pod lock would) until the
/// returned child is killed; returns once the lock is held.
fn hold_lock(path: &Path) -> Child {
    // --no-fork: `sleep` is the child itself, so killing the child by
    // its PID releases the lock (a forked `sleep` would keep it).
    let mut child = Command::new("flock")
        .args(["--no-fork", "-x"])
        .arg(path)
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn flock");
    let held = retry(100, Duration::from_millis(50), || {
        let probe = exec::run_argv(&["flock", "-n", path.to_str()?, "true"]);
        (!probe.success()).then_some(())
    });
    if held.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("flock never took {}", path.display());
    }
    child
}

/// Kills a child of ours (by its PID) when dropped, even on failure.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn instances_with_other_flags_never_touch_each_others_pods() {
    require_root();
    let n = PodNode::new("inst", "10.88.9.1/24");
    n.ctd.import_image(OTHER_NS);
    // CNI 1.1.0: GC reaches the plugin (below 1.1.0 it is a no-op).
    let conf_file = n.pr.conf_dir().join("10-podnet.conflist");
    let mut conflist: Value =
        serde_json::from_slice(&std::fs::read(&conf_file).expect("read conflist"))
            .expect("conflist json");
    conflist["cniVersion"] = json!("1.1.0");
    std::fs::write(&conf_file, conflist.to_string()).expect("write conflist");
    let (dir, sock) = (n.node.dir(), n.ctd.socket());
    let ns = n.node.path();
    let a = &n.pr;
    let b = Podrun::new(ns, &dir.join("b"), &sock, &conflist).with_cni_of(a);
    let c = Podrun::new(ns, &dir.join("c"), &sock, &conflist)
        .with_state_dir_of(a)
        .with_cni_of(a)
        .with_namespace(OTHER_NS);
    let d = Podrun::new(ns, &dir.join("d"), &sock, &conflist);
    let all = [("a", a), ("b", &b), ("c", &c), ("d", &d)];

    // The same pod name in each: four pods, four IPs, netns and IDs.
    let ips: Vec<String> = all.iter().map(|(w, pr)| pr.run_pod_ip(&web(w))).collect();
    let distinct: BTreeSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 4, "pod IPs {ips:?}");
    let mut netns = BTreeSet::new();
    for (who, pr) in all {
        let own = pr.netns();
        assert_eq!(own.len(), 1, "{who}'s netns {own:?}");
        netns.extend(own);
        let ids = n.ctd.ids_in(pr.namespace(), "containers");
        let sid = pr.sandbox_id("web");
        for id in [sid.clone(), format!("{sid}.httpd")] {
            assert!(ids.contains(&id), "{who}: {id} not in {ids:?}");
        }
    }
    assert_eq!(netns.len(), 4, "{netns:?}");
    let live: Vec<(&str, &str)> = all
        .iter()
        .map(|(w, _)| *w)
        .zip(ips.iter().map(String::as_str))
        .collect();
    assert_networked(&n, &live);

    // ps, logs, exec and check of each instance see its own pod only.
    for (i, (who, pr)) in all.iter().enumerate() {
        let ps = pr.podrun(&["ps"]).expect_ok();
        let row = format!("web\trunning\t{}\thttpd\trunning", ips[i]);
        assert!(ps.stdout.contains(&row), "{who}: {ps}");
        assert_eq!(ps.stdout.lines().count(), 2, "{who} lists one pod: {ps}");
        let logs = pr.podrun(&["logs", "web"]).expect_ok();
        assert_eq!(logs.stdout, format!("started by {who}\n"), "{who}: {logs}");
        let o = pr
            .podrun(&[
                "exec",
                "web",
                "httpd",
                "--",
                "sh",
                "-c",
                "echo $WHO; cat /etc/hosts",
            ])
            .expect_ok();
        assert!(o.stdout.starts_with(&format!("{who}\n")), "{who}: {o}");
        assert!(o.stdout.contains(&format!("{}\t", ips[i])), "{who}: {o}");
        pr.podrun(&["check", "web"]).expect_ok();
    }

    // rm of C, which shares A's state dir, while A's pod lock is held:
    // C neither waits for it nor touches A's pod; the others stay up.
    let lock = Reap(hold_lock(&a.lock_path("web")));
    let rm = c.podrun(&["rm", "--grace", "0", "web"]).expect_ok();
    assert!(
        !rm.stderr.contains("waiting"),
        "C waited for A's lock: {rm}"
    );
    drop(lock);
    c.assert_clean(&n.ctd);
    let e = c.podrun(&["check", "web"]);
    assert!(!e.success() && e.stderr.contains("no pod \"web\""), "{e}");
    let live: Vec<(&str, &str)> = vec![("a", &ips[0]), ("b", &ips[1]), ("d", &ips[3])];
    assert_networked(&n, &live);
    for (who, pr) in [("a", a), ("b", &b), ("d", &d)] {
        pr.podrun(&["check", "web"]).expect_ok();
        let ps = pr.podrun(&["ps"]).expect_ok();
        assert!(ps.stdout.contains("\trunning\t"), "{who}: {ps}");
    }

    // A's own garbage: pods whose state was removed by hand (their
    // containers gone too) leave their attachments on the node. The
    // libcni cache entry of the second one went as well: only the
    // plugin's GC can find that one.
    let mut orphans = Vec::new();
    for pod in ["orphan", "orphan2"] {
        let ip = a.run_pod_ip(&json!({
            "name": pod,
            "containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "1000"]}],
        }));
        let traces = Traces::of(&n, a, pod, &ip);
        traces.assert_all(true, "orphan before");
        let sid = a.sandbox_id(pod);
        std::fs::remove_dir_all(a.pod_dir(pod)).expect("remove orphan state");
        n.ctd
            .remove_containers(NAMESPACE, &[format!("{sid}.c"), sid]);
        orphans.push(traces);
    }
    std::fs::remove_file(&orphans[1].cache).expect("remove orphan2's cache entry");
    let kept = [
        Traces::of(&n, a, "web", &ips[0]),
        Traces::of(&n, &b, "web", &ips[1]),
        Traces::of(&n, &d, "web", &ips[3]),
    ];

    // Another runtime on the same network (a CRI: 64-hex sandbox ID),
    // ADDing through the plugin directly: only the plugin's store
    // knows its attachment.
    let cri_pod = n.node.pod("cri");
    let mut plugin_conf = conflist["plugins"][0].clone();
    plugin_conf["name"] = conflist["name"].clone();
    plugin_conf["cniVersion"] = conflist["cniVersion"].clone();
    let mut cri = n.node.plugin_call("ADD", &cri_pod, &plugin_conf);
    cri.container_id = "c0ffee".repeat(10) + "beef";
    cri.path = dir.join("bin").display().to_string();
    let plugin = dir.join("bin/netboot-cni");
    let cri_ip = first_ip(&run_plugin(&plugin, &cri).expect_ok());
    let cri_ip = cri_ip.split('/').next().expect("ip").to_string();
    let cri_traces = [
        n.node.dir().join("ipam/podnet").join(&cri_ip),
        n.node
            .dir()
            .join(format!("data/.netboot/{}@eth0.json", cri.container_id)),
    ];
    let veths_before = veths(&n);

    // gc of A collects exactly its orphans.
    a.podrun(&["gc"]).expect_ok();
    for o in &orphans {
        o.assert_all(false, "A's orphan after A's gc");
    }
    assert_eq!(a.netns().len(), 1, "only web's netns: {:?}", a.netns());
    let veths_after = veths(&n);
    assert!(veths_after.is_subset(&veths_before), "{veths_after:?}");
    assert_eq!(veths_before.len() - 2, veths_after.len(), "{veths_after:?}");
    for t in &kept {
        t.assert_all(true, "a live pod after A's gc");
    }
    assert_networked(&n, &live);

    // gc of the others (B shares A's cache, D sees A and B only in the
    // plugin's store, C has no pod left) keeps every live pod.
    for pr in [&b, &c, &d] {
        pr.podrun(&["gc"]).expect_ok();
    }
    for t in &kept {
        t.assert_all(true, "a live pod after the others' gc");
    }
    assert_eq!(veths(&n), veths_after);
    assert_networked(&n, &live);
    for p in &cri_traces {
        assert!(p.exists(), "the other runtime's {}", p.display());
    }
    let ping = n.node.exec(&["ping", "-c1", "-W2", &cri_ip]);
    assert!(ping.success(), "the other runtime's pod {cri_ip}: {ping}");
    cri.command = "DEL".into();
    run_plugin(&plugin, &cri).expect_ok();
    drop(cri_pod);

    // A `run` SIGKILLed after ADD leaves its record `creating`. While its
    // pod lock is held (a run in progress) gc keeps the attachment; once
    // the lock is free (the run is dead) gc collects it, and only it.
    let record = a.pod_dir("web").join("pod.json");
    let mut rec: Value =
        serde_json::from_slice(&std::fs::read(&record).expect("read record")).expect("record");
    rec["phase"] = json!("creating");
    std::fs::write(&record, rec.to_string()).expect("write record");
    let lock = Reap(hold_lock(&a.lock_path("web")));
    a.podrun(&["gc"]).expect_ok();
    kept[0].assert_all(true, "A's pod being created, after A's gc");
    drop(lock);
    a.podrun(&["gc"]).expect_ok();
    kept[0].assert_all(false, "A's dead run after A's gc");
    for t in &kept[1..] {
        t.assert_all(true, "a live pod after A's gc of a dead run");
    }
    assert_eq!(veths(&n).len(), 2, "B's and D's: {:?}", veths(&n));
    assert_networked(&n, &[("b", &ips[1]), ("d", &ips[3])]);

    for (who, pr) in [("a", a), ("b", &b), ("d", &d)] {
        pr.podrun(&["rm", "--grace", "0", "web"]).expect_ok();
        pr.assert_clean(&n.ctd);
        assert!(
            pr.podrun(&["ps"]).expect_ok().stdout.lines().count() == 1,
            "{who}"
        );
    }
    let ips_left: Vec<_> = std::fs::read_dir(n.node.dir().join("ipam/podnet"))
        .expect("IPAM store")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert!(ips_left.is_empty(), "IPs still reserved: {ips_left:?}");
}
