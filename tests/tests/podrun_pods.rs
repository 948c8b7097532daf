//! podrun against a real containerd (our own, in a temp dir) and runc,
//! networked by netboot-cni (native mode) inside a node netns.

use std::time::Duration;

use netboot_tests::containerd::{pod_spec, PodNode, BUSYBOX};
use netboot_tests::{require_root, retry};
use serde_json::json;

fn sleeper(name: &str) -> serde_json::Value {
    json!({"name": name, "image": BUSYBOX, "command": ["sleep", "1000"]})
}

#[test]
fn two_containers_share_localhost_and_publish_a_host_port() {
    require_root();
    let n = PodNode::new("pr-web", "10.88.1.1/24");
    let spec = json!({
        "name": "web",
        "hostname": "web-host",
        "ports": [{"containerPort": 80, "hostPort": 18080}],
        "containers": [
            {"name": "httpd", "image": BUSYBOX, "command": ["httpd", "-f", "-p", "80", "-h", "/www"]},
            sleeper("client"),
        ],
    });
    let out = n.run_pod(&spec);
    let ip = out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("ip")
        .to_string();
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
    let n = PodNode::new("pr-env", "10.88.2.1/24");
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
        let record = n.state_dir().join("pods/locked/pod.json");
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
    let spec = pod_spec(
        "att",
        json!([
            {"name": "a", "image": BUSYBOX, "command": ["sh", "-c", "echo out-a; echo err-a >&2; sleep 1; echo late-a"]},
            {"name": "b", "image": BUSYBOX, "command": ["sh", "-c", "echo out-b; echo err-b >&2; sleep 2; exit 3"]},
        ]),
    );
    let file = n.write_spec("att", &spec);
    let out = n.podrun(&["run", "--attach", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(3), "{out}");
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
