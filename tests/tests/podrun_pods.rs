//! podrun against a real containerd (our own, in a temp dir) and runc,
//! networked by netboot-cni (native mode) inside a node netns.

use std::time::Duration;

use netboot_tests::containerd::{pod_spec, PodNode, BUSYBOX, NAMESPACE};
use netboot_tests::{exec, require_root, retry};
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
    // containerd 1.6's `file` IO may put stderr in the stdout file.
    assert!(
        format!("{}{}", w.stdout, w.stderr).contains("Read-only"),
        "{w}"
    );
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
fn sigkill_during_run_then_rm_leaves_nothing() {
    require_root();
    let n = PodNode::new("pr-kill", "10.88.5.1/24");
    let spec = pod_spec("crash", json!([sleeper("a"), sleeper("b")]));
    let file = n.write_spec("crash", &spec);
    for delay_ms in [50, 200, 350, 500] {
        let mut child = n
            .podrun_cmd(&["run", "-f", file.to_str().expect("utf-8")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn podrun");
        std::thread::sleep(Duration::from_millis(delay_ms));
        // Our own child only (nsenter execs podrun in place).
        let _ = child.kill();
        let _ = child.wait();
        n.podrun(&["rm", "crash", "--grace", "1"]).expect_ok();
        n.assert_clean();
        // No shim of this pod may survive either (a Create left in flight
        // by the killed run would orphan one).
        let shims = exec::run_argv(&["pgrep", "-f", &format!("{} -id crash-", NAMESPACE)]);
        assert!(
            shims.stdout.trim().is_empty(),
            "orphaned shim after delay {delay_ms}: {shims}"
        );
    }
}
