//! A pod's lifecycle with real containers (podrun + our own containerd +
//! runc, netboot-cni in native mode inside a node netns): init
//! containers, restartPolicy and its back-off, the grace period of
//! `stop`, `podrun inspect`, and the supervisor's end.

use std::path::{Path, PathBuf};
use std::time::Duration;

use netboot_tests::containerd::{printed_ip, PodNode, BUSYBOX};
use netboot_tests::{require_root, retry};
use serde_json::{json, Value};

/// Writes a Kubernetes manifest (YAML) into the node dir.
fn manifest(n: &PodNode, name: &str, yaml: &str) -> PathBuf {
    let p = n.node.dir().join(format!("{name}.yaml"));
    std::fs::write(&p, yaml.replace("BUSYBOX", BUSYBOX)).expect("write manifest");
    p
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8")
}

#[track_caller]
fn inspect(n: &PodNode, pod: &str) -> Value {
    let out = n.podrun(&["inspect", pod]).expect_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("inspect {pod}: {e}: {out}"))
}

/// The container `name` of `pod` as `inspect` shows it.
#[track_caller]
fn container(n: &PodNode, pod: &str, name: &str) -> Value {
    let v = inspect(n, pod);
    v["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no container {name} in {v}"))
}

/// Waits until `name` of `pod` has restarted at least `n` times.
#[track_caller]
fn await_restarts(node: &PodNode, pod: &str, name: &str, n: u64) -> Value {
    retry(240, Duration::from_millis(250), || {
        let c = container(node, pod, name);
        (c["restarts"].as_u64() >= Some(n)).then_some(c)
    })
    .unwrap_or_else(|| {
        panic!(
            "{pod}/{name}: fewer than {n} restarts: {}",
            inspect(node, pod)
        )
    })
}

/// Whether process `pid` runs (not gone, not a zombie). A supervisor
/// that ended is reaped here when it is this test's (it is re-parented
/// to the test process, a child subreaper).
fn running(pid: u64) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .unwrap_or("X");
    if state == "Z" {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
    }
    !matches!(state, "Z" | "X")
}

/// Milliseconds since the epoch of inspect's `2026-01-02T03:04:05.678Z`.
fn millis(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().expect("digits") };
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    // Days from civil (Howard Hinnant), as podrun formats them.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + n(20, 23)
}

#[test]
fn init_containers_run_in_order_before_the_app_which_sees_their_output() {
    require_root();
    let n = PodNode::new("lc-init", "10.88.161.1/24");
    // An emptyDir shared by the init containers and the app, and a
    // hostPath (created by its type) where the test reads what the app
    // saw.
    let host = n.node.dir().join("shared");
    let file = manifest(
        &n,
        "initpod",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: initpod}}\nspec:\n\
             \x20 restartPolicy: Never\n\
             \x20 volumes:\n\
             \x20 - {{name: work, emptyDir: {{}}}}\n\
             \x20 - {{name: out, hostPath: {{path: {}, type: DirectoryOrCreate}}}}\n\
             \x20 initContainers:\n\
             \x20 - name: first\n\
             \x20   image: BUSYBOX\n\
             \x20   command: [sh, -c, 'echo first >> /work/order; echo out-first; echo err-first >&2']\n\
             \x20   volumeMounts: [{{name: work, mountPath: /work}}]\n\
             \x20 - name: second\n\
             \x20   image: BUSYBOX\n\
             \x20   command: [sh, -c, 'grep -qx first /work/order || exit 9; echo second >> /work/order']\n\
             \x20   volumeMounts: [{{name: work, mountPath: /work}}]\n\
             \x20 containers:\n\
             \x20 - name: app\n\
             \x20   image: BUSYBOX\n\
             \x20   command: [sh, -c, 'cp /work/order /out/seen; sleep 1000']\n\
             \x20   volumeMounts: [{{name: work, mountPath: /work}}, {{name: out, mountPath: /out}}]\n",
            host.display()
        ),
    );
    n.podrun(&["run", "-f", path(&file)]).expect_ok();
    let seen = retry(40, Duration::from_millis(250), || {
        std::fs::read_to_string(host.join("seen")).ok()
    });
    assert_eq!(seen.as_deref(), Some("first\nsecond\n"), "what the app saw");
    let logs = n.podrun(&["logs", "initpod", "first"]).expect_ok();
    assert_eq!(
        (logs.stdout.as_str(), logs.stderr.as_str()),
        ("out-first\n", "err-first\n")
    );
    // The init containers are gone from containerd once done.
    let ids = n.ctd.ids("containers");
    assert!(
        ids.iter()
            .all(|id| !id.ends_with(".first") && !id.ends_with(".second")),
        "{ids:?}"
    );
    let v = inspect(&n, "initpod");
    let inits = v["initContainers"].as_array().expect("initContainers");
    let names: Vec<&Value> = inits.iter().map(|c| &c["name"]).collect();
    assert_eq!(names, [&json!("first"), &json!("second")], "{v}");
    for c in inits {
        assert_eq!(
            (&c["state"], &c["exit"]),
            (&json!("exited"), &json!(0)),
            "{v}"
        );
        assert!(millis(&c["finishedAt"]) >= millis(&c["startedAt"]), "{v}");
    }
    assert!(
        millis(&inits[1]["startedAt"]) >= millis(&inits[0]["finishedAt"]),
        "second started before first ended: {v}"
    );
    let app = &v["containers"][0];
    assert!(
        millis(&app["startedAt"]) >= millis(&inits[1]["finishedAt"]),
        "{v}"
    );
    assert_eq!(v["restartPolicy"], "Never", "{v}");
    assert_eq!(v["supervisor"], Value::Null, "{v}");
    n.podrun(&["rm", "initpod", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

/// podrun's own format: `Never` unless it says otherwise, no supervisor.
#[test]
fn a_podrun_spec_defaults_to_never_and_its_init_containers_run_too() {
    require_root();
    let n = PodNode::new("lc-own", "10.88.168.1/24");
    let spec = json!({
        "name": "own",
        "initContainers": [{"name": "prep", "image": BUSYBOX, "command": ["sh", "-c", "echo prepared"]}],
        "containers": [{"name": "once", "image": BUSYBOX, "command": ["sh", "-c", "exit 1"]}],
    });
    let file = n.write_spec("own", &spec);
    n.podrun(&["run", "-f", path(&file)]).expect_ok();
    let v = inspect(&n, "own");
    assert_eq!(
        (
            &v["restartPolicy"],
            &v["supervisor"],
            &v["terminationGracePeriodSeconds"]
        ),
        (&json!("Never"), &Value::Null, &json!(10)),
        "{v}"
    );
    assert_eq!(v["initContainers"][0]["exit"], 0, "{v}");
    let logs = n.podrun(&["logs", "own", "prep"]).expect_ok();
    assert_eq!(logs.stdout, "prepared\n", "{logs}");
    n.podrun(&["rm", "own", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

#[test]
fn a_failing_init_container_fails_run_with_its_name_and_code_and_leaves_nothing() {
    require_root();
    let n = PodNode::new("lc-badinit", "10.88.162.1/24");
    let yaml = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{policy}\
             \x20 initContainers:\n\
             \x20 - {{name: ok, image: BUSYBOX, command: [\"true\"]}}\n\
             \x20 - {{name: setup, image: BUSYBOX, command: [sh, -c, 'echo broken config >&2; exit 3']}}\n\
             \x20 containers:\n\
             \x20 - {{name: app, image: BUSYBOX, command: [sleep, '1000']}}\n"
        )
    };
    let never = manifest(&n, "never", &yaml("never", "  restartPolicy: Never\n"));
    let out = n.podrun(&["run", "-f", path(&never)]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("init container \"setup\" exited with code 3"),
        "{out}"
    );
    assert!(out.stderr.contains("broken config"), "stderr quoted: {out}");
    assert!(!out.stderr.contains("restartPolicy"), "{out}");
    n.assert_clean();
    // The manifest default (Always): the kubelet would retry, podrun says
    // it does not.
    let always = manifest(&n, "always", &yaml("always", ""));
    let out = n.podrun(&["run", "-f", path(&always)]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("init container \"setup\" exited with code 3"),
        "{out}"
    );
    assert!(out.stderr.contains("spec.restartPolicy Always"), "{out}");
    n.assert_clean();
}

#[test]
fn restart_always_restarts_with_a_growing_back_off_on_a_fresh_rootfs() {
    require_root();
    let n = PodNode::new("lc-always", "10.88.163.1/24");
    // No restartPolicy: a manifest's default is Always, exit 0 included.
    let file = manifest(
        &n,
        "always",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: always}\nspec:\n\
         \x20 containers:\n\
         \x20 - name: blink\n\
         \x20   image: BUSYBOX\n\
         \x20   command: [sh, -c, 'test -e /marker && echo dirty; touch /marker; echo run']\n",
    );
    n.podrun(&["run", "--restart-backoff", "500ms", "-f", path(&file)])
        .expect_ok();
    let c = await_restarts(&n, "always", "blink", 3);
    let v = inspect(&n, "always");
    assert_eq!(v["restartPolicy"], "Always", "{v}");
    let pid = v["supervisor"]["pid"].as_u64().expect("supervisor pid");
    assert_eq!(v["supervisor"]["running"], true, "{v}");
    assert!(running(pid));
    // Each restart waited longer than the one before: the back-off
    // doubles (500ms, 1s, 2s). Gaps compared with each other only.
    let recent = c["recentRestarts"].as_array().expect("recentRestarts");
    let waits: Vec<i64> = recent
        .iter()
        .map(|r| millis(&r["restartedAt"]) - millis(&r["finishedAt"]))
        .collect();
    assert!(waits.len() >= 3, "{c}");
    assert!(
        waits.windows(2).all(|w| w[1] > w[0]),
        "waits not growing: {waits:?} {c}"
    );
    let starts: Vec<i64> = recent.iter().map(|r| millis(&r["restartedAt"])).collect();
    let gaps: Vec<i64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]),
        "gaps not growing: {gaps:?} {c}"
    );
    assert!(recent.iter().all(|r| r["exit"] == 0), "{c}");
    // A restarted container starts from the image again.
    let logs = n.podrun(&["logs", "always", "blink"]).expect_ok();
    assert!(logs.stdout.matches("run").count() >= 3, "{logs}");
    assert!(
        !logs.stdout.contains("dirty"),
        "rootfs kept across a restart: {logs}"
    );
    // The supervisor says what it did, in the pod's directory.
    let log = std::fs::read_to_string(n.pr.pod_dir("always").join("supervisor.log"))
        .expect("supervisor.log");
    for want in [
        "container \"blink\" exited with code 0: restart 1 in 500ms",
        "container \"blink\" exited with code 0: restart 2 in 1s",
        "container \"blink\" started again (restart 2)",
    ] {
        assert!(log.contains(want), "{want}: {log}");
    }
    // rm ends the supervisor before anything else.
    n.podrun(&["rm", "always", "--grace", "1"]).expect_ok();
    assert!(!running(pid), "supervisor {pid} still running after rm");
    n.assert_clean();
}

#[test]
fn on_failure_restarts_failures_only_and_never_restarts_nothing() {
    require_root();
    let n = PodNode::new("lc-onfail", "10.88.164.1/24");
    let pod = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n\
             \x20 restartPolicy: {policy}\n\
             \x20 containers:\n\
             \x20 - {{name: fails, image: BUSYBOX, command: [sh, -c, 'exit 1']}}\n\
             \x20 - {{name: succeeds, image: BUSYBOX, command: [sh, -c, 'exit 0']}}\n"
        )
    };
    let onf = manifest(&n, "onf", &pod("onf", "OnFailure"));
    let nev = manifest(&n, "nev", &pod("nev", "Never"));
    for f in [&nev, &onf] {
        n.podrun(&["run", "--restart-backoff", "200ms", "-f", path(f)])
            .expect_ok();
    }
    let fails = await_restarts(&n, "onf", "fails", 2);
    assert_eq!(fails["exit"], 1, "{fails}");
    let ok = container(&n, "onf", "succeeds");
    assert_eq!(
        (&ok["state"], &ok["exit"], &ok["restarts"]),
        (&json!("exited"), &json!(0), &json!(0)),
        "{ok}"
    );
    // By now the OnFailure pod restarted twice with the same back-off;
    // the Never pod has no supervisor and nothing restarted.
    let v = inspect(&n, "nev");
    assert_eq!(v["supervisor"], Value::Null, "{v}");
    for c in v["containers"].as_array().expect("containers") {
        assert_eq!(c["restarts"], 0, "{v}");
        assert_eq!(c["state"], "exited", "{v}");
    }
    assert_eq!(container(&n, "nev", "fails")["exit"], 1);
    let sup = inspect(&n, "onf")["supervisor"]["pid"]
        .as_u64()
        .expect("pid");
    n.podrun(&["stop", "onf", "--grace", "0"]).expect_ok();
    assert!(!running(sup), "supervisor {sup} still running after stop");
    let v = inspect(&n, "onf");
    assert_eq!(
        (&v["phase"], &v["supervisor"]["running"]),
        (&json!("stopped"), &json!(false)),
        "{v}"
    );
    for p in ["onf", "nev"] {
        n.podrun(&["rm", p, "--grace", "0"]).expect_ok();
    }
    n.assert_clean();
}

#[test]
fn attach_supervises_in_the_foreground_until_on_failure_is_satisfied() {
    require_root();
    let n = PodNode::new("lc-attach", "10.88.165.1/24");
    // Fails twice, then succeeds: the count survives restarts in a
    // hostPath volume (the rootfs does not).
    let state = n.node.dir().join("count");
    let file = manifest(
        &n,
        "flaky",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: flaky}}\nspec:\n\
             \x20 restartPolicy: OnFailure\n\
             \x20 volumes: [{{name: state, hostPath: {{path: {}, type: DirectoryOrCreate}}}}]\n\
             \x20 containers:\n\
             \x20 - name: try\n\
             \x20   image: BUSYBOX\n\
             \x20   volumeMounts: [{{name: state, mountPath: /state}}]\n\
             \x20   command: [sh, -c, 'n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); \
                     echo $n > /state/n; echo try $n; [ $n -ge 3 ]']\n",
            state.display()
        ),
    );
    let out = n.podrun(&[
        "run",
        "--attach",
        "--restart-backoff",
        "200ms",
        "-f",
        path(&file),
    ]);
    assert_eq!(out.status.code(), Some(0), "{out}");
    for t in ["try 1", "try 2", "try 3"] {
        assert!(out.stdout.contains(t), "{t}: {out}");
    }
    let c = container(&n, "flaky", "try");
    assert_eq!(
        (&c["restarts"], &c["state"], &c["exit"]),
        (&json!(2), &json!("exited"), &json!(0)),
        "{c}"
    );
    let v = inspect(&n, "flaky");
    assert_eq!(v["supervisor"]["running"], false, "attach is over: {v}");
    n.podrun(&["rm", "flaky", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

#[test]
fn stop_uses_the_pods_grace_period_unless_grace_is_given() {
    require_root();
    let n = PodNode::new("lc-grace", "10.88.166.1/24");
    // On SIGTERM the container takes 6s to finish, then exits 42: a
    // grace period shorter than that ends in SIGKILL (137).
    let pod = |name: &str, grace: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n\
             \x20 restartPolicy: Never\n{grace}\
             \x20 containers:\n\
             \x20 - name: slow\n\
             \x20   image: BUSYBOX\n\
             \x20   command: [sh, -c, 'trap \"sleep 6; exit 42\" TERM; echo up; while true; do sleep 1; done']\n"
        )
    };
    let cases = [
        ("short", "  terminationGracePeriodSeconds: 2\n", vec![], 137),
        (
            "override",
            "  terminationGracePeriodSeconds: 2\n",
            vec!["--grace", "20"],
            42,
        ),
        // The manifest default: 30s.
        ("default", "", vec![], 42),
    ];
    for (name, grace, _, _) in &cases {
        let f = manifest(&n, name, &pod(name, grace));
        n.podrun(&["run", "-f", path(&f)]).expect_ok();
    }
    for (name, _, _, _) in &cases {
        let up = retry(40, Duration::from_millis(250), || {
            let l = n.podrun(&["logs", name, "slow"]).expect_ok();
            l.stdout.contains("up").then_some(())
        });
        assert!(up.is_some(), "{name}: the trap is not set yet");
    }
    assert_eq!(inspect(&n, "default")["terminationGracePeriodSeconds"], 30);
    assert_eq!(inspect(&n, "short")["terminationGracePeriodSeconds"], 2);
    for (name, _, flags, want) in &cases {
        let mut args = vec!["stop", name];
        args.extend(flags);
        n.podrun(&args).expect_ok();
        let c = container(&n, name, "slow");
        assert_eq!(
            (&c["state"], &c["exit"]),
            (&json!("exited"), &json!(want)),
            "{name}: {c}"
        );
        assert!(c["finishedAt"].is_string(), "{c}");
    }
    for (name, _, _, _) in &cases {
        n.podrun(&["rm", name]).expect_ok();
    }
    n.assert_clean();
}

#[test]
fn inspect_shows_the_pod_and_ps_json_shares_its_containers() {
    require_root();
    let n = PodNode::new("lc-inspect", "10.88.167.1/24");
    let file = manifest(
        &n,
        "shown",
        "apiVersion: v1\nkind: Pod\n\
         metadata:\n  name: shown\n  namespace: team\n  labels: {app: web}\n  annotations: {note: hi}\n\
         spec:\n\
         \x20 initContainers:\n\
         \x20 - {name: prep, image: BUSYBOX, command: [\"true\"]}\n\
         \x20 containers:\n\
         \x20 - {name: main, image: BUSYBOX, command: [sleep, '1000']}\n",
    );
    let out = n.podrun(&["run", "-f", path(&file)]).expect_ok();
    let ip = printed_ip(&out);
    let v = inspect(&n, "shown");
    let sid = n.pr.sandbox_id("shown");
    assert_eq!(v["name"], "shown");
    assert_eq!(v["namespace"], "team");
    assert_eq!(v["labels"], json!({"app": "web"}));
    assert_eq!(v["annotations"], json!({"note": "hi"}));
    assert_eq!(v["phase"], "running");
    assert_eq!(v["ips"], json!([ip]));
    assert_eq!(v["hostNetwork"], false);
    assert_eq!(v["network"], "podnet");
    assert_eq!(v["sandboxId"], json!(sid));
    assert_eq!(v["restartPolicy"], "Always");
    assert_eq!(v["supervisor"]["running"], true, "{v}");
    let main = &v["containers"][0];
    assert_eq!(main["id"], json!(format!("{sid}.main")));
    assert_eq!(main["image"], BUSYBOX);
    assert_eq!(
        (&main["state"], &main["exit"], &main["restarts"]),
        (&json!("running"), &Value::Null, &json!(0)),
        "{v}"
    );
    assert!(
        main["startedAt"].is_string() && main["finishedAt"].is_null(),
        "{v}"
    );
    let prep = &v["initContainers"][0];
    assert_eq!(prep["id"], json!(format!("{sid}.prep")));
    assert_eq!(
        (&prep["state"], &prep["exit"]),
        (&json!("exited"), &json!(0)),
        "{v}"
    );
    let ps = n.podrun(&["ps", "--json"]).expect_ok();
    let pods: Value = serde_json::from_str(&ps.stdout).expect("ps --json");
    assert_eq!(pods[0]["containers"][0], *main, "{ps}");
    assert_eq!(pods[0]["initContainers"][0], *prep, "{ps}");
    let table = n.podrun(&["ps"]).expect_ok();
    assert!(
        table
            .stdout
            .contains(&format!("shown\trunning\t{ip}\tmain\trunning\t-\t0")),
        "{table}"
    );
    let sup = v["supervisor"]["pid"].as_u64().expect("pid");
    n.podrun(&["rm", "shown", "--grace", "0"]).expect_ok();
    assert!(!running(sup), "supervisor {sup} still running after rm");
    n.assert_clean();
}
