//! podrun against a real containerd (our own, in a temp dir) and runc,
//! networked by netboot-cni (native mode) inside a node netns.

use std::path::Path;
use std::time::Duration;

use netboot_tests::containerd::{pod_spec, printed_ip, PodNode, BUSYBOX, NAMESPACE};
use netboot_tests::{exec, require_root, retry};
use serde_json::json;

fn sleeper(name: &str) -> serde_json::Value {
    json!({"name": name, "image": BUSYBOX, "command": ["sleep", "1000"]})
}

/// The node's two LAN addresses and its peer's: a port published on
/// `HOST_IP` only must answer there and not on `OTHER_IP`.
const HOST_IP: &str = "192.168.77.1";
const OTHER_IP: &str = "192.168.77.2";
const PEER_IP: &str = "192.168.77.10";

/// `curl http://ip:port/` from namespace `from`: the body, or `None` when
/// the connection failed (refused: no DNAT rule matched).
fn http_get(from: &Path, ip: &str, port: u16) -> Option<String> {
    let url = format!("http://{ip}:{port}/");
    let o = exec::run(
        exec::nsenter(from, &["curl", "-sS", "-m", "5", &url]),
        None,
        Duration::from_secs(30),
    );
    o.success().then_some(o.stdout)
}

/// A port published on `HOST_IP` (18081) and one on every address
/// (18080): reached from the node and from a peer on the LAN, each where
/// it is published and nowhere else.
fn assert_host_ip_ports(node: &Path, peer: &Path) {
    let hello = Some("hello from busybox\n".to_string());
    for (from, what) in [(node, "node"), (peer, "peer")] {
        assert_eq!(http_get(from, HOST_IP, 18081), hello, "{what} -> hostIP");
        assert_eq!(http_get(from, OTHER_IP, 18080), hello, "{what} -> any");
        assert_eq!(http_get(from, HOST_IP, 18080), hello, "{what} -> any");
        assert_eq!(
            http_get(from, OTHER_IP, 18081),
            None,
            "{what}: published on {HOST_IP} only, answered on {OTHER_IP}"
        );
    }
    assert_eq!(http_get(node, "127.0.0.1", 18081), None, "hostIP, not lo");
}

/// The web pod's ports: 18080 everywhere, 18081 on `HOST_IP` only.
fn web_ports() -> serde_json::Value {
    json!([
        {"containerPort": 80, "hostPort": 18080},
        {"containerPort": 80, "hostPort": 18081, "hostIP": HOST_IP},
    ])
}

#[test]
fn two_containers_share_localhost_and_publish_a_host_port() {
    require_root();
    let n = PodNode::new("pr-web", "10.88.1.1/24");
    let peer = n.add_lan(
        &[&format!("{HOST_IP}/24"), &format!("{OTHER_IP}/24")],
        &format!("{PEER_IP}/24"),
    );
    let spec = json!({
        "name": "web",
        "hostname": "web-host",
        "ports": web_ports(),
        "containers": [
            {"name": "httpd", "image": BUSYBOX, "command": ["httpd", "-f", "-p", "80", "-h", "/www"]},
            sleeper("client"),
        ],
    });
    // No DNS in the CNI result: the node's resolv.conf, its stub
    // resolver dropped (unreachable from the pod's netns).
    let resolv = n.node.dir().join("node-resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch lab.example\noptions ndots:2\n",
    )
    .expect("write resolv.conf");
    let file = n.write_spec("web", &spec);
    let out = n
        .podrun(&[
            "run",
            "--resolv-conf",
            resolv.to_str().expect("utf-8"),
            "-f",
            file.to_str().expect("utf-8"),
        ])
        .expect_ok();
    assert!(!out.stderr.contains("warning"), "{out}");
    let ip = printed_ip(&out);
    assert!(ip.starts_with("10.88.1."), "{out}");

    // Shared netns: the client reaches httpd on 127.0.0.1.
    let got = retry(20, Duration::from_millis(250), || {
        let o = n.podrun(&[
            "exec",
            "web",
            "client",
            "--",
            "wget",
            "-qO-",
            "http://127.0.0.1:80/",
        ]);
        o.success().then_some(o.stdout)
    });
    assert_eq!(got.as_deref(), Some("hello from busybox\n"));

    // Shared UTS: both see the pod hostname; /etc files are in place.
    let o = n
        .podrun(&["exec", "web", "client", "--", "hostname"])
        .expect_ok();
    assert_eq!(o.stdout.trim(), "web-host");
    let o = n
        .podrun(&[
            "exec",
            "web",
            "httpd",
            "--",
            "cat",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
        ])
        .expect_ok();
    assert!(o.stdout.contains(&format!("{ip}\tweb-host")), "{o}");
    assert!(o.stdout.contains("web-host\n"), "{o}");
    assert!(!o.stdout.contains("nameserver 127."), "{o}");
    let r = n
        .podrun(&["exec", "web", "client", "--", "cat", "/etc/resolv.conf"])
        .expect_ok();
    assert_eq!(
        r.stdout, "nameserver 192.0.2.53\nsearch lab.example\noptions ndots:2\n",
        "{r}"
    );
    assert_host_ip_ports(n.node.path(), peer.path());

    // The pod IP and the published hostPort, from the node netns.
    let direct = n
        .node
        .exec(&["curl", "-sS", "-m", "5", &format!("http://{ip}:80/")]);
    assert_eq!(direct.stdout, "hello from busybox\n", "{direct}");
    let published = n
        .node
        .exec(&["curl", "-sS", "-m", "5", "http://127.0.0.1:18080/"]);
    assert_eq!(published.stdout, "hello from busybox\n", "{published}");

    let ps = n.podrun(&["ps"]).expect_ok();
    assert!(
        ps.stdout
            .contains(&format!("web\trunning\t{ip}\thttpd\trunning")),
        "{ps}"
    );
    let ps = n.podrun(&["ps", "--json"]).expect_ok();
    let pods: serde_json::Value = serde_json::from_str(&ps.stdout).expect("ps --json");
    let web = &pods[0];
    assert_eq!(
        (&web["name"], &web["phase"], &web["ip"]),
        (&json!("web"), &json!("running"), &json!(ip)),
        "{ps}"
    );
    let httpd = web["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "httpd"));
    assert_eq!(
        httpd.map(|c| (&c["state"], &c["exit"], &c["restarts"])),
        Some((&json!("running"), &json!(null), &json!(0))),
        "{ps}"
    );
    n.podrun(&["check", "web"]).expect_ok();
    n.podrun(&["gc"]).expect_ok();
    n.podrun(&["check", "web"]).expect_ok();

    n.podrun(&["rm", "web"]).expect_ok();
    n.assert_clean();
    // Idempotent.
    n.podrun(&["rm", "web"]).expect_ok();
}

#[test]
fn env_args_mounts_and_hostname() {
    require_root();
    // DNS in the network config: netboot-cni (native) puts it in the
    // result as the bridge plugin does, and every container gets exactly
    // that as /etc/resolv.conf.
    let dns = json!({"nameservers": ["10.88.0.53", "10.88.0.54"], "search": ["pods.example", "example"], "options": ["ndots:3", "timeout:1"]});
    let n = PodNode::with("pr-env", "10.88.2.1/24", "native", &json!({"dns": dns}));
    let data = n.node.data_dir("data-ro");
    std::fs::write(data.join("f"), "from-host\n").expect("write");
    let rw = n.node.data_dir("data-rw");
    let spec = pod_spec(
        "envpod",
        json!([{
            "name": "main",
            "image": BUSYBOX,
            "command": ["sh", "-c"],
            "args": ["echo started $GREETING; sleep 1000"],
            "env": {"GREETING": "hi", "N": 5},
            "workingDir": "/tmp",
            "mounts": [
                {"hostPath": data, "containerPath": "/ro", "readOnly": true},
                {"hostPath": rw, "containerPath": "/rw"},
            ],
        }]),
    );
    n.run_pod(&spec);
    let e = |args: &[&str]| {
        let mut argv = vec!["exec", "envpod", "main", "--"];
        argv.extend_from_slice(args);
        n.podrun(&argv)
    };
    assert_eq!(
        e(&["sh", "-c", "echo $GREETING-$N"]).expect_ok().stdout,
        "hi-5\n"
    );
    assert_eq!(e(&["sh", "-c", "pwd"]).expect_ok().stdout, "/tmp\n");
    assert_eq!(e(&["cat", "/ro/f"]).expect_ok().stdout, "from-host\n");
    let w = e(&["touch", "/ro/new"]);
    assert!(!w.success(), "write to a readOnly mount succeeded: {w}");
    // stderr stays stderr (podrun's log driver, not containerd's `file`
    // IO, which merges both streams).
    assert!(w.stderr.contains("Read-only"), "{w}");
    assert!(!w.stdout.contains("Read-only"), "{w}");
    e(&["touch", "/rw/new"]).expect_ok();
    assert!(rw.join("new").exists());
    assert_eq!(e(&["hostname"]).expect_ok().stdout, "envpod\n");
    assert_eq!(
        e(&["cat", "/etc/resolv.conf"]).expect_ok().stdout,
        "nameserver 10.88.0.53\nnameserver 10.88.0.54\nsearch pods.example example\n\
         options ndots:3 timeout:1\n"
    );
    let code = e(&["sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "{code}");
    let logs = retry(20, Duration::from_millis(200), || {
        let l = n.podrun(&["logs", "envpod", "main"]).expect_ok();
        l.stdout.contains("started hi").then_some(l)
    });
    assert!(logs.is_some(), "no log line");
    n.podrun(&["rm", "envpod", "--grace", "1"]).expect_ok();
    n.assert_clean();
}

/// The limits as runc wrote them into the cgroup v1 files (read here
/// directly, and by `podrun check`), the OOM kill reported by `ps`.
///
/// cgroup v2 cannot be tested for real on this machine: it runs the
/// hybrid layout (/sys/fs/cgroup is a tmpfs of v1 hierarchies, cgroup2 is
/// mounted at /sys/fs/cgroup/unified), and the kernel binds each
/// controller to one hierarchy only. memory, cpu and cpuset are bound to
/// their v1 hierarchies (memory holds the machine's own cgroups, e.g.
/// /process_api), so the unified hierarchy offers only `hugetlb` in its
/// cgroup.controllers; a fresh cgroup2 mount in a private mount namespace
/// shows the same single hierarchy. runc pointed at it would find no
/// memory.max, cpu.max or cpuset.cpus to write. Freeing the controllers
/// means unmounting the machine's v1 hierarchies, which tests must never
/// do. The v2 side (file names, runc's conversions, memory.events,
/// detection) is covered by podrun's unit tests (`limits`, `cgroup`)
/// against the kernel's file layout.
#[test]
fn memory_limit_oom_kills_and_cpuset_applies() {
    require_root();
    let n = PodNode::new("pr-oom", "10.88.3.1/24");
    let spec = pod_spec(
        "res",
        json!([
            {
                "name": "hog",
                "image": BUSYBOX,
                "command": ["sh", "-c", "sleep 1; x=aaaaaaaa; while true; do x=$x$x; done"],
                "resources": {"memory": "16Mi"},
            },
            {
                "name": "pinned",
                "image": BUSYBOX,
                "command": ["sleep", "1000"],
                "resources": {"cpuset": "0", "cpus": 0.5, "cpuShares": 256},
            },
        ]),
    );
    n.run_pod(&spec);
    let o = n
        .podrun(&[
            "exec",
            "res",
            "pinned",
            "--",
            "grep",
            "Cpus_allowed_list",
            "/proc/self/status",
        ])
        .expect_ok();
    assert!(o.stdout.trim().ends_with("\t0"), "{o}");
    let cg = |ctrl: &str, c: &str, file: &str| {
        let p = format!(
            "/sys/fs/cgroup/{ctrl}/{NAMESPACE}/res-{}.{c}/{file}",
            n.pr.instance()
        );
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    };
    assert_eq!(cg("memory", "hog", "memory.limit_in_bytes"), "16777216");
    assert_eq!(cg("cpu", "pinned", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cg("cpu", "pinned", "cpu.cfs_period_us"), "100000");
    assert_eq!(cg("cpu", "pinned", "cpu.shares"), "256");
    assert_eq!(cg("cpuset", "pinned", "cpuset.cpus"), "0");
    n.podrun(&["check", "res"]).expect_ok();
    let ps = retry(60, Duration::from_millis(500), || {
        let ps = n.podrun(&["ps"]).expect_ok();
        ps.stdout.contains("hog\toomkilled").then_some(ps)
    });
    assert!(
        ps.is_some(),
        "hog was not reported OOM-killed: {}",
        n.podrun(&["ps"])
    );
    n.podrun(&["stop", "res", "--grace", "1"]).expect_ok();
    let ps = n.podrun(&["ps"]).expect_ok();
    assert!(ps.stdout.contains("hog\toomkilled\t137"), "{ps}");
    let ps = n.podrun(&["ps", "--json"]).expect_ok();
    let pods: serde_json::Value = serde_json::from_str(&ps.stdout).expect("ps --json");
    let hog = pods[0]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "hog"));
    assert_eq!(
        hog.map(|h| (&h["state"], &h["exit"])),
        Some((&json!("oomkilled"), &json!(137))),
        "{ps}"
    );
    n.podrun(&["rm", "res"]).expect_ok();
    n.assert_clean();
}

#[test]
fn broken_specs_leave_nothing() {
    require_root();
    let n = PodNode::new("pr-bad", "10.88.4.1/24");
    let bad = [
        (
            json!({"name": "b1", "containers": [{"name": "c", "image": BUSYBOX, "resources": {"memory": "12Q"}}]}),
            "containers[0].resources.memory: \"12Q\" is not a size",
        ),
        (
            json!({"name": "b2", "containers": [{"name": "c", "image": "docker.io/library/nope:1"}]}),
            "containers[0].image",
        ),
        (
            json!({"name": "b3", "containers": [{"name": "c", "image": BUSYBOX, "mounts": [{"hostPath": "rel", "containerPath": "/x"}]}]}),
            "containers[0].mounts[0].hostPath",
        ),
        (
            json!({"name": "b4", "extra": 1, "containers": [sleeper("c")]}),
            "unknown field `extra`",
        ),
        // hostIP of a family the pod has no address of: found after CNI
        // ADD (the pod's addresses come from it), and undone.
        (
            json!({"name": "b6", "ports": [{"containerPort": 80, "hostPort": 18090, "hostIP": "2001:db8::1"}], "containers": [sleeper("c")]}),
            "ports[0].hostIP: 2001:db8::1 is IPv6 but the pod has only IPv4 addresses",
        ),
        (
            json!({"name": "b7", "ports": [{"containerPort": 80, "hostPort": 18090, "hostIP": "192.0.2.300"}], "containers": [sleeper("c")]}),
            "ports[0].hostIP: invalid IP address syntax",
        ),
        // Valid spec, fails at runc exec after the pause, CNI ADD and
        // the first container exist: everything must be undone.
        (
            json!({"name": "b5", "containers": [sleeper("ok"), {"name": "c", "image": BUSYBOX, "command": ["/nonexistent"]}]}),
            "nonexistent",
        ),
    ];
    for (spec, want) in bad {
        let name = spec["name"].as_str().expect("name").to_string();
        let file = n.write_spec(&name, &spec);
        let out = n.podrun(&["run", "-f", file.to_str().expect("utf-8")]);
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains(want), "{name}: want {want:?}: {out}");
        n.assert_clean();
    }
}

#[test]
fn concurrent_run_and_rm_of_a_pod_are_serialized() {
    require_root();
    let n = PodNode::new("pr-lock", "10.88.6.1/24");
    let spec = pod_spec("locked", json!([sleeper("a"), sleeper("b")]));
    let file = n.write_spec("locked", &spec);
    let file = file.to_str().expect("utf-8");

    // Two runs of the same pod: exactly one creates it.
    let spawn_run = || {
        n.podrun_cmd(&["run", "-f", file])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn podrun run")
    };
    let (a, b) = (spawn_run(), spawn_run());
    let (a, b) = (
        a.wait_with_output().expect("wait"),
        b.wait_with_output().expect("wait"),
    );
    assert_ne!(
        a.status.success(),
        b.status.success(),
        "exactly one run must win: {a:?} {b:?}"
    );
    let loser = if a.status.success() { &b } else { &a };
    assert!(
        String::from_utf8_lossy(&loser.stderr).contains("already exists"),
        "{loser:?}"
    );
    n.podrun(&["rm", "locked", "--grace", "0"]).expect_ok();
    n.assert_clean();

    // rm while run is still creating the pod (its record exists, written
    // under the lock): rm waits for run, then removes everything.
    let mut waited = false;
    for _ in 0..3 {
        let run = spawn_run();
        let record = n.pr.pod_dir("locked").join("pod.json");
        let seen = retry(400, Duration::from_millis(5), || {
            record.exists().then_some(())
        });
        assert!(seen.is_some(), "run never wrote its record");
        let rm = n.podrun(&["rm", "locked", "--grace", "0"]);
        let run = run.wait_with_output().expect("wait run");
        assert!(run.status.success(), "run: {run:?}");
        waited |= rm.stderr.contains("waiting for another podrun");
        rm.expect_ok();
        n.assert_clean();
    }
    assert!(waited, "rm never had to wait for a run in progress");
}

/// IPAM reservations (`<ipam dir>/<network>/<ip>` files) under `dir`.
fn reserved_ips(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("podnet"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn rm_deletes_with_the_config_of_run_after_the_conflist_changed_or_went() {
    require_root();
    let n = PodNode::new("pr-conf", "10.88.7.1/24");
    let ip_of = |spec: &serde_json::Value| n.pr.run_pod_ip(spec);
    let ip1 = ip_of(&pod_spec("changed", json!([sleeper("c")])));
    let ip2 = ip_of(&pod_spec("removed", json!([sleeper("c")])));
    let ipam = n.node.dir().join("ipam");
    let mut both = vec![ip1.clone(), ip2.clone()];
    both.sort();
    assert_eq!(reserved_ips(&ipam), both);
    assert_eq!(n.node.veths().len(), 2, "{:?}", n.node.veths());

    // The conflist now points IPAM elsewhere: a DEL with it would not
    // release ip1. rm must DEL with the config the pod was added with.
    let conf = n.pr.conf_dir().join("10-podnet.conflist");
    let mut list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&conf).expect("read")).expect("json");
    list["plugins"][0]["ipam"]["dataDir"] = json!(n.node.data_dir("ipam-new"));
    std::fs::write(&conf, list.to_string()).expect("write");
    n.podrun(&["rm", "changed", "--grace", "0"]).expect_ok();
    assert_eq!(reserved_ips(&ipam), vec![ip2.clone()], "ip1 not released");

    // No conflist at all: check, gc and rm still work.
    std::fs::remove_file(&conf).expect("rm conflist");
    n.podrun(&["check", "removed"]).expect_ok();
    n.podrun(&["gc"]).expect_ok();
    n.podrun(&["check", "removed"]).expect_ok();
    n.podrun(&["rm", "removed", "--grace", "0"]).expect_ok();
    assert_eq!(
        reserved_ips(&ipam),
        Vec::<String>::new(),
        "ip2 not released"
    );
    assert_eq!(n.node.veths(), Vec::<String>::new(), "veth left");
    n.assert_clean();
}

#[test]
fn run_attach_streams_both_streams_apart_and_returns_the_exit_code() {
    require_root();
    let n = PodNode::new("pr-att", "10.88.8.1/24");
    // `chatty` writes ~39 KB to each stream: with 4 KiB files, 3 per
    // stream, the log driver keeps the last 8-12 KiB of each.
    let chatty = "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; echo \"err $i\" >&2; \
                  i=$((i+1)); done";
    let spec = pod_spec(
        "att",
        json!([
            {"name": "a", "image": BUSYBOX, "command": ["sh", "-c", "echo out-a; echo err-a >&2; sleep 1; echo late-a"]},
            {"name": "b", "image": BUSYBOX, "command": ["sh", "-c", "echo out-b; echo err-b >&2; sleep 2; exit 3"]},
            {"name": "chatty", "image": BUSYBOX, "command": ["sh", "-c", chatty]},
        ]),
    );
    let file = n.write_spec("att", &spec);
    // The node's resolv.conf names only a stub resolver: the pod gets
    // no nameserver, and podrun says why.
    let resolv = n.node.dir().join("stub-resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
    )
    .expect("write resolv.conf");
    let out = n.podrun(&[
        "run",
        "--attach",
        "--log-max-size",
        "4Ki",
        "--log-max-files",
        "3",
        "--resolv-conf",
        resolv.to_str().expect("utf-8"),
        "-f",
        file.to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(3), "{out}");
    assert!(
        out.stderr
            .contains("names only loopback nameservers (127.0.0.53)"),
        "{out}"
    );
    let pod_resolv = n.pr.pod_dir("att").join("etc/resolv.conf");
    assert_eq!(
        std::fs::read_to_string(&pod_resolv).expect("pod resolv.conf"),
        "search lan\noptions edns0 trust-ad\n"
    );
    assert_rotated_logs(&n, "line", "stdout");
    assert_rotated_logs(&n, "err", "stderr");
    for want in ["out-a", "late-a", "out-b"] {
        assert!(out.stdout.contains(want), "{want}: {out}");
        assert!(!out.stderr.contains(want), "{want}: {out}");
    }
    for want in ["err-a", "err-b"] {
        assert!(out.stderr.contains(want), "{want}: {out}");
        assert!(!out.stdout.contains(want), "{want}: {out}");
    }
    let logs = n.podrun(&["logs", "att", "b"]).expect_ok();
    assert_eq!(logs.stdout, "out-b\n", "{logs}");
    assert_eq!(logs.stderr, "err-b\n", "{logs}");
    let ps = n.podrun(&["ps"]).expect_ok();
    assert!(ps.stdout.contains("att\trunning\t"), "{ps}");
    assert!(ps.stdout.contains("b\texited\t3"), "{ps}");
    n.podrun(&["rm", "att", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

/// `chatty`'s `stream`: exactly 3 files of at most 4 KiB, and `podrun
/// logs` gives their content in order: the last lines `<word> N` written,
/// consecutive up to N = 2999, the first one possibly cut.
#[track_caller]
fn assert_rotated_logs(n: &PodNode, word: &str, stream: &str) {
    let base = n.pr.pod_dir("att").join("logs");
    let file = |suffix: &str| base.join(format!("chatty.{stream}{suffix}"));
    for suffix in ["", ".1", ".2"] {
        let len = std::fs::metadata(file(suffix))
            .unwrap_or_else(|e| panic!("{}: {e}", file(suffix).display()))
            .len();
        assert!(len <= 4096, "{}: {len} bytes", file(suffix).display());
    }
    assert!(!file(".3").exists(), "more than --log-max-files files");
    let logs = n.podrun(&["logs", "att", "chatty"]).expect_ok();
    let (text, other) = if stream == "stdout" {
        (&logs.stdout, &logs.stderr)
    } else {
        (&logs.stderr, &logs.stdout)
    };
    assert!(
        !other.contains(&format!("{word} ")),
        "streams mixed: {logs}"
    );
    assert!(
        (2 * 4096..=3 * 4096).contains(&text.len()),
        "{stream}: {} bytes kept",
        text.len()
    );
    let lines: Vec<&str> = text.lines().skip(1).collect();
    let numbers: Vec<u32> = lines
        .iter()
        .map(|l| {
            l.strip_prefix(&format!("{word} "))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{stream}: bad line {l:?}"))
        })
        .collect();
    let last = *numbers.last().expect("lines");
    assert_eq!(last, 2999, "{stream}: the newest line is kept");
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..=last).collect::<Vec<_>>(),
        "{stream}: lines missing or out of order"
    );
}

/// netboot-cni in bridge mode (the reference bridge + host-local, and the
/// reference portmap for hostPorts): a port with `hostIP` answers on that
/// node address only, from the node and from a LAN peer; the bridge
/// plugin's `dns` comes back in the result and is the pod's resolv.conf.
#[test]
fn bridge_mode_publishes_on_the_host_ip_only_and_passes_dns_through() {
    require_root();
    let dns =
        json!({"nameservers": ["10.88.0.53"], "search": ["pods.example"], "options": ["ndots:3"]});
    let n = PodNode::with("pr-brg", "10.88.9.1/24", "bridge", &json!({"dns": dns}));
    let peer = n.add_lan(
        &[&format!("{HOST_IP}/24"), &format!("{OTHER_IP}/24")],
        &format!("{PEER_IP}/24"),
    );
    let spec = json!({
        "name": "brweb",
        "ports": web_ports(),
        "containers": [
            {"name": "httpd", "image": BUSYBOX, "command": ["httpd", "-f", "-p", "80", "-h", "/www"]},
        ],
    });
    let ip = n.pr.run_pod_ip(&spec);
    assert!(ip.starts_with("10.88.9."), "{ip}");
    // portmap's rule for the hostIP mapping names the address.
    let rules = n.node.iptables_save();
    assert!(
        rules.contains(&format!("-d {HOST_IP}/32 -p tcp -m tcp --dport 18081")),
        "{rules}"
    );
    let r = n
        .podrun(&["exec", "brweb", "httpd", "--", "cat", "/etc/resolv.conf"])
        .expect_ok();
    assert_eq!(
        r.stdout,
        "nameserver 10.88.0.53\nsearch pods.example\noptions ndots:3\n"
    );
    assert_host_ip_ports(n.node.path(), peer.path());
    n.podrun(&["rm", "brweb", "--grace", "0"]).expect_ok();
    n.assert_clean();
    let rules = n.node.iptables_save();
    assert!(!rules.contains("--dport 18081"), "DNAT left: {rules}");
}

/// The `pause` of a plain `cargo build` (dynamically linked, beside
/// podrun, no `--pause-bin`) runs a pod: podrun copies its loader and
/// libraries into the pause rootfs. The pause process lives, maps libc,
/// holds the pod's networked netns; `rm` removes it all.
#[test]
fn a_dynamically_linked_pause_beside_podrun_runs_a_pod() {
    require_root();
    let pause = netboot_tests::bin_path("podrun").with_file_name("pause");
    let ldd = exec::run_argv(&["ldd", pause.to_str().expect("utf-8")]);
    assert!(
        ldd.success() && ldd.stdout.contains("libc.so"),
        "{} must be the dynamic build of `cargo build`: {ldd}",
        pause.display()
    );
    let mut n = PodNode::new("pr-dyn", "10.88.13.1/24");
    n.pr.use_pause_beside_podrun();

    // One whose library the host lacks (a DT_NEEDED name patched, same
    // length) is refused before anything is made, with the fix named.
    let bytes = std::fs::read(&pause).expect("read pause");
    let (from, to) = (b"libgcc_s.so.1\0", b"libnope_.so.1\0");
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pause links libgcc_s");
    let mut broken = bytes.clone();
    broken[at..at + to.len()].copy_from_slice(to);
    let broken_path = n.node.dir().join("broken-pause");
    std::fs::write(&broken_path, &broken).expect("write broken pause");
    let file = n.write_spec("dyn", &pod_spec("dyn", json!([sleeper("c")])));
    let out = n.podrun(&[
        "--pause-bin",
        broken_path.to_str().expect("utf-8"),
        "run",
        "-f",
        file.to_str().expect("utf-8"),
    ]);
    assert!(!out.success(), "{out}");
    for want in [
        "dynamically linked",
        "libnope_.so.1",
        "crt-static",
        "--pause-bin",
    ] {
        assert!(out.stderr.contains(want), "no {want:?} in: {out}");
    }
    n.assert_clean();

    let ip = n.pr.run_pod_ip(&pod_spec("dyn", json!([sleeper("c")])));
    assert!(ip.starts_with("10.88.13."), "{ip}");

    let sid = n.pr.sandbox_id("dyn");
    let tasks = n.ctd.ctr(&["tasks", "ls"]).expect_ok().stdout;
    let task = tasks
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.first() == Some(&sid.as_str()))
        .unwrap_or_else(|| panic!("no pause task {sid} in {tasks}"));
    assert_eq!(task.get(2), Some(&"RUNNING"), "{tasks}");
    let pid = task[1].to_string();
    // Alive, and that very binary with the host's libc mapped.
    let proc = Path::new("/proc").join(&pid);
    let maps = std::fs::read_to_string(proc.join("maps")).expect("pause maps");
    assert!(
        maps.contains("libc.so"),
        "pause {pid} maps no libc:\n{maps}"
    );
    let exe = std::fs::read(proc.join("exe")).expect("pause exe");
    assert!(exe == bytes, "pause {pid} is not {}", pause.display());
    let rootfs = n.state_dir().join("pause/rootfs");
    assert!(rootfs.join("etc/ld.so.cache").is_file(), "loader cache");

    // Its netns is the pod's: the pod IP is there and answers the node.
    let pause_net = proc.join("ns/net");
    let addrs = exec::run(
        exec::nsenter(&pause_net, &["ip", "-o", "addr", "show"]),
        None,
        Duration::from_secs(10),
    )
    .expect_ok();
    assert!(addrs.stdout.contains(&format!("inet {ip}/")), "{addrs}");
    assert!(netboot_tests::ping(n.node.path(), &ip), "node -> pod {ip}");
    n.podrun(&["check", "dyn"]).expect_ok();

    n.podrun(&["rm", "dyn", "--grace", "0"]).expect_ok();
    n.assert_clean();
    assert!(!proc.exists(), "pause {pid} still alive after rm");
}
