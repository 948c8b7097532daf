//! podrun under faults (issue 8), against a real containerd of our own
//! and runc, networked by netboot-cni (native mode) in a node netns:
//! containerd restarted under running pods, podrun SIGKILLed at random
//! points of `run` (NETBOOT_PODRUN_KILL_ROUNDS rounds, back to back;
//! NETBOOT_PODRUN_KILL_LOAD busy loops beside them), the pause process
//! killed, and the CNI plugin missing at `rm`. Each fault prints one
//! `podrun fault <name>: ...` line that scripts/campaign.sh reads.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use netboot_tests::containerd::{pod_spec, PodNode, BUSYBOX};
use netboot_tests::podfaults::{
    fake_shim, leftovers, names, reserved_ips, shim_starting, shims, Load, Rng,
};
use netboot_tests::{exec, reaper, require_root, retry};
use nix::sys::signal::Signal;
use serde_json::{json, Value};

fn sleeper(name: &str) -> Value {
    json!({"name": name, "image": BUSYBOX, "command": ["sleep", "1000"]})
}

/// A pod with a published port (DNAT rules to undo) and two containers.
fn kill_spec(name: &str, host_port: u16) -> Value {
    json!({
        "name": name,
        "ports": [{"containerPort": 80, "hostPort": host_port}],
        "containers": [sleeper("a"), sleeper("b")],
    })
}

fn env_count(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Spawns `podrun ARGS`, SIGKILLs it (our own child, by PID: nsenter
/// execs podrun in place) once `wait` returns; whether it was still
/// running then.
fn kill_after(n: &PodNode, args: &[&str], wait: impl FnOnce()) -> bool {
    let mut child = n
        .podrun_cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn podrun");
    wait();
    let running = child.try_wait().ok().flatten().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

#[test]
fn sigkill_at_random_points_of_run_then_rm_leaves_nothing() {
    require_root();
    let rounds = env_count("NETBOOT_PODRUN_KILL_ROUNDS", 3);
    let seed = env_count(
        "NETBOOT_PODRUN_KILL_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    );
    let n = PodNode::new("pf-kill", "10.88.9.1/24");
    let _load = Load::start(env_count("NETBOOT_PODRUN_KILL_LOAD", 0));
    let file = n.write_spec("crash", &kill_spec("crash", 18091));
    let file = file.to_str().expect("utf-8");

    // One undisturbed run sets the range of kill points.
    let t = Instant::now();
    n.podrun(&["run", "-f", file]).expect_ok();
    let full = t.elapsed();
    n.podrun(&["rm", "crash", "--grace", "0"]).expect_ok();
    assert_eq!(leftovers(&n, "crash"), Vec::<String>::new());

    let mut rng = Rng(seed | 1);
    let (mut killed, mut rm_killed, mut orphans) = (0, 0, 0);
    let (mut failures, mut rm_total) = (Vec::new(), Duration::ZERO);
    for round in 0..rounds {
        let t = Instant::now();
        // Odd rounds aim at the narrowest window: while containerd runs
        // `containerd-shim-runc-v2 … start` for one of the pod's tasks
        // (0-19 ms after it appears: before or after it forks the daemon).
        let jitter = Duration::from_millis(rng.below(20));
        let at = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        killed += u32::from(kill_after(&n, &["run", "-f", file], || {
            if round % 2 == 1 {
                while t.elapsed() < full * 2 && !shim_starting(&n, "crash") {
                    std::thread::yield_now();
                }
                std::thread::sleep(jitter);
            } else {
                std::thread::sleep(at);
            }
        }));
        let delay = t.elapsed();
        // Every third round the first rm is killed too (0-399 ms in).
        if round % 3 == 2 {
            let at = Duration::from_millis(rng.below(400));
            let args = ["rm", "crash", "--grace", "0"];
            rm_killed += u32::from(kill_after(&n, &args, || std::thread::sleep(at)));
        }
        let t = Instant::now();
        let rm = n.podrun(&["rm", "crash", "--grace", "0"]);
        rm_total += t.elapsed();
        orphans += rm.stderr.matches("killed orphaned shim").count();
        let left = leftovers(&n, "crash");
        if !rm.success() || !left.is_empty() {
            eprintln!("round {round} (kill at {delay:?}): rm {rm}\nleft: {left:?}");
            failures.push(round);
            // Leave the next round a clean node if a second rm can.
            let _ = n.podrun(&["rm", "crash", "--grace", "0"]);
        }
    }
    let (reaped, zombies) = reaper::reap(&reaper::zombie_shims());
    println!(
        "podrun fault sigkill-run: {rounds} rounds ({killed} killed mid-run, \
         {rm_killed} first rm killed too), {} failures, full run {:.2}s, rm avg {:.2}s, orphaned shims killed by rm {orphans}, \
         zombie shims reaped {reaped}, left {}, seed {seed}",
        failures.len(),
        full.as_secs_f64(),
        rm_total.as_secs_f64() / rounds.max(1) as f64,
        zombies.len()
    );
    assert!(
        failures.is_empty(),
        "rounds that left something: {failures:?} (seed {seed})"
    );
    assert!(zombies.is_empty(), "zombie shims not reaped: {zombies:?}");
}

/// containerd and podrun both killed while containerd starts a shim for
/// the pod (a Create neither finished nor cleaned up), containerd
/// restarted: `rm` still leaves nothing.
#[test]
fn containerd_and_run_killed_mid_create_then_rm_after_restart_leaves_nothing() {
    require_root();
    let rounds = env_count("NETBOOT_PODRUN_RESTART_ROUNDS", 2);
    let seed = env_count("NETBOOT_PODRUN_KILL_SEED", 1);
    let mut n = PodNode::new("pf-both", "10.88.15.1/24");
    let file = n.write_spec("both", &kill_spec("both", 18092));
    let file = file.to_str().expect("utf-8");
    let mut rng = Rng(seed | 1);
    let (mut hit, mut failures, mut orphans, mut half) = (0, Vec::new(), 0, 0);
    for round in 0..rounds {
        let mut child = n
            .podrun_cmd(&["run", "-f", file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn podrun");
        let t = Instant::now();
        let mut seen = false;
        while !seen && t.elapsed() < Duration::from_secs(20) {
            seen = shim_starting(&n, "both");
        }
        hit += u32::from(seen);
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        n.ctd.stop(Signal::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
        n.ctd.start_again();
        let rm = n.podrun(&["rm", "both", "--grace", "0"]);
        orphans += rm.stderr.matches("killed orphaned shim").count();
        half += rm.stderr.matches("deleted half-created task").count();
        let left = leftovers(&n, "both");
        if !rm.success() || !left.is_empty() {
            eprintln!("round {round}: rm {rm}\nleft: {left:?}");
            failures.push(round);
            let _ = n.podrun(&["rm", "both", "--grace", "0"]);
        }
    }
    let (reaped, zombies) = reaper::reap(&reaper::zombie_shims());
    println!(
        "podrun fault crash-restart: {rounds} rounds ({hit} during shim start), {} failures, \
         orphaned shims killed by rm {orphans}, half-created tasks deleted by rm {half}, \
         zombie shims reaped {reaped}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "rounds that left something: {failures:?}"
    );
    assert!(zombies.is_empty(), "zombie shims not reaped: {zombies:?}");
}

#[test]
fn containerd_restart_keeps_pods_running_and_podrun_reconnects() {
    require_root();
    let mut n = PodNode::new("pf-ctd", "10.88.10.1/24");
    let spec = pod_spec(
        "keep",
        json!([
            {"name": "web", "image": BUSYBOX, "command": ["httpd", "-f", "-p", "80", "-h", "/www"]},
            {"name": "talk", "image": BUSYBOX, "command": ["sh", "-c", "while :; do echo tick; sleep 1; done"]},
        ]),
    );
    let ip = n.pr.run_pod_ip(&spec);
    let url = format!("http://{ip}:80/");
    let tasks = |n: &PodNode| {
        let mut v: Vec<String> = n
            .ctd
            .ctr(&["tasks", "ls"])
            .expect_ok()
            .stdout
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    let pids_before = tasks(&n);
    // The shim check of `leftovers` sees the pod's three shims.
    assert_eq!(shims(&n, "keep").len(), 3, "{pids_before:?}");
    let mut back_after = Vec::new();
    for signal in [Signal::SIGTERM, Signal::SIGKILL] {
        n.ctd.stop(signal);
        // Down: the pod keeps serving; podrun says what is wrong and
        // changes nothing.
        let got = n.node.exec(&["curl", "-sS", "-m", "5", &url]);
        assert_eq!(
            got.stdout, "hello from busybox\n",
            "pod while containerd is down: {got}"
        );
        let ps = n.podrun(&["ps"]);
        assert!(!ps.success(), "{ps}");
        assert!(ps.stderr.contains("containerd is not reachable at"), "{ps}");
        let rm = n.podrun(&["rm", "keep"]);
        assert!(!rm.success() && rm.stderr.contains("not reachable"), "{rm}");
        assert!(n.pr.pod_dir("keep").join("pod.json").exists());
        let t = Instant::now();
        n.ctd.start_again();
        // Until containerd has reloaded its shims, ps may not see them.
        let ok = retry(100, Duration::from_millis(100), || {
            let ps = n.podrun(&["ps"]);
            (ps.success() && ps.stdout.contains("web\trunning")).then_some(ps)
        });
        back_after.push(t.elapsed());
        assert!(
            ok.is_some(),
            "{signal}: ps after restart: {}",
            n.podrun(&["ps"])
        );
    }
    // Same tasks (same PIDs) as before the restarts.
    assert_eq!(tasks(&n), pids_before);
    let o = n
        .podrun(&[
            "exec",
            "keep",
            "talk",
            "--",
            "wget",
            "-qO-",
            "http://127.0.0.1/",
        ])
        .expect_ok();
    assert_eq!(o.stdout, "hello from busybox\n");
    let logs = n.podrun(&["logs", "keep", "talk"]).expect_ok();
    assert!(logs.stdout.contains("tick"), "{logs}");
    n.podrun(&["check", "keep"]).expect_ok();
    n.podrun(&["stop", "keep", "--grace", "1"]).expect_ok();
    let ps = n.podrun(&["ps"]).expect_ok();
    assert!(ps.stdout.contains("keep\tstopped"), "{ps}");
    n.podrun(&["rm", "keep"]).expect_ok();
    let left = leftovers(&n, "keep");
    let (reaped, zombies) = reaper::reap(&reaper::zombie_shims());
    println!(
        "podrun fault containerd-restart: 2 restarts (SIGTERM, SIGKILL), {} failures, \
         ps answers {:.2}s / {:.2}s after restart, zombie shims reaped {reaped}",
        usize::from(!left.is_empty()),
        back_after[0].as_secs_f64(),
        back_after[1].as_secs_f64()
    );
    assert_eq!(left, Vec::<String>::new());
    assert_eq!(zombies, Vec::<i32>::new(), "zombie shims not reaped");
}

#[test]
fn killed_pause_makes_the_pod_broken_and_rm_cleans_it() {
    require_root();
    let n = PodNode::new("pf-pause", "10.88.11.1/24");
    n.run_pod(&pod_spec("orphan", json!([sleeper("c")])));
    let sid = format!("orphan-{}", n.pr.instance());
    let tasks = n.ctd.ctr(&["tasks", "ls"]).expect_ok().stdout;
    let pid = tasks
        .lines()
        .find(|l| l.split_whitespace().next() == Some(sid.as_str()))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no pause task {sid} in {tasks}"))
        .to_string();
    // The pod's own pause process, by PID, as the OOM killer would.
    let t = Instant::now();
    exec::run_argv(&["kill", "-KILL", &pid]).expect_ok();
    let ps = retry(100, Duration::from_millis(100), || {
        let ps = n.podrun(&["ps"]).expect_ok();
        ps.stdout.contains("orphan\tbroken").then_some(ps)
    });
    let seen = t.elapsed();
    assert!(ps.is_some(), "ps never said broken: {}", n.podrun(&["ps"]));
    let check = n.podrun(&["check", "orphan"]);
    assert!(!check.success(), "{check}");
    assert!(
        check.stderr.contains("pod is broken: its pause container")
            && check.stderr.contains("exited with status 137"),
        "{check}"
    );
    n.podrun(&["rm", "orphan", "--grace", "1"]).expect_ok();
    let left = leftovers(&n, "orphan");
    println!(
        "podrun fault pause-killed: 1 round, {} failures, ps says broken {:.2}s after the kill, \
         check refused, rm clean",
        usize::from(!left.is_empty()),
        seen.as_secs_f64()
    );
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn missing_cni_plugin_at_rm_keeps_the_teardown_pending_until_it_is_back() {
    require_root();
    let n = PodNode::new("pf-noplug", "10.88.12.1/24");
    let ip_a = n.pr.run_pod_ip(&pod_spec("pa", json!([sleeper("c")])));
    let ip_b = n.pr.run_pod_ip(&pod_spec("pb", json!([sleeper("c")])));
    let plugin = n.pr.dir().join("bin/netboot-cni");
    let away = n.pr.dir().join("netboot-cni.away");
    fs::rename(&plugin, &away).expect("move plugin away");
    let bin_dir = n.pr.dir().join("bin");

    for pod in ["pa", "pb"] {
        for attempt in 0..2 {
            let rm = n.podrun(&["rm", pod, "--grace", "0"]);
            assert!(!rm.success(), "{rm}");
            for want in [
                "network teardown pending",
                "failed to find plugin \"netboot-cni\" in path",
                &bin_dir.display().to_string(),
                &format!("podrun rm {pod}"),
            ] {
                assert!(
                    rm.stderr.contains(want),
                    "attempt {attempt}: want {want:?}: {rm}"
                );
            }
        }
    }
    // Containers and tasks are gone; what releasing the IPs needs stays.
    let id = n.pr.instance();
    assert!(!n.ctd.ids("containers").iter().any(|c| c.contains(&id)));
    assert!(!n.ctd.ids("tasks").iter().any(|c| c.contains(&id)));
    let mut both = vec![ip_a.clone(), ip_b.clone()];
    both.sort();
    let mut reserved = reserved_ips(&n);
    reserved.sort();
    assert_eq!(
        reserved, both,
        "IPs must stay reserved while DEL cannot run"
    );
    assert_eq!(names(&n.cache_dir().join("results")).len(), 2);
    assert_eq!(n.pr.netns().len(), 2);
    let ps = n.podrun(&["ps"]).expect_ok();
    assert!(ps.stdout.contains("pa\tteardown-pending"), "{ps}");
    // stop of a third pod fails the same way and keeps its netns.
    fs::rename(&away, &plugin).expect("plugin back for run");
    let ip_c = n.pr.run_pod_ip(&pod_spec("pc", json!([sleeper("c")])));
    fs::rename(&plugin, &away).expect("move plugin away again");
    let stop = n.podrun(&["stop", "pc", "--grace", "0"]);
    assert!(
        !stop.success()
            && stop.stderr.contains("network teardown pending")
            && stop.stderr.contains("`podrun stop pc` or `podrun rm pc`"),
        "{stop}"
    );
    assert_eq!(n.pr.netns().len(), 3);
    assert!(reserved_ips(&n).contains(&ip_c));
    let gc = n.podrun(&["gc"]);
    assert!(
        !gc.success() && gc.stderr.contains("network teardown pending"),
        "{gc}"
    );

    // Back: rm finishes one pod, gc the other.
    fs::rename(&away, &plugin).expect("plugin back");
    n.podrun(&["rm", "pa", "--grace", "0"]).expect_ok();
    let mut want = vec![ip_b.clone(), ip_c.clone()];
    want.sort();
    let mut reserved = reserved_ips(&n);
    reserved.sort();
    assert_eq!(reserved, want, "rm released {ip_a}");
    n.podrun(&["gc"]).expect_ok();
    assert_eq!(reserved_ips(&n), vec![ip_c.clone()], "gc released {ip_b}");
    n.podrun(&["rm", "pc", "--grace", "0"]).expect_ok();
    let left: Vec<String> = ["pa", "pb", "pc"]
        .iter()
        .flat_map(|p| leftovers(&n, p))
        .collect();
    println!(
        "podrun fault cni-plugin-missing: 2 pods x 2 rm attempts and 1 stop refused (pending), \
         {} failures, released by rm and by gc once the plugin was back",
        usize::from(!left.is_empty())
    );
    assert_eq!(left, Vec::<String>::new());
    n.assert_clean();
}

#[test]
fn rm_waits_for_a_shim_with_a_bundle_and_kills_an_orphaned_one() {
    require_root();
    let n = PodNode::new("pf-shim", "10.88.13.1/24");
    n.run_pod(&pod_spec("ghost", json!([sleeper("c")])));
    // Tasks gone, containers kept: the state a killed `run` leaves when
    // containerd was still starting a shim for the app container.
    n.podrun(&["stop", "ghost", "--grace", "0"]).expect_ok();
    let id = format!("ghost-{}.c", n.pr.instance());
    let bundle = n.pr.dir().join("fake-bundle");
    let mut shim = fake_shim(&n, &id, &bundle);
    assert_eq!(shims(&n, "ghost"), vec![shim.id().to_string()]);

    // Its bundle exists: containerd may still be creating the task, so
    // rm waits for that to end one way or the other.
    let mut rm = n
        .podrun_cmd(&["rm", "ghost", "--grace", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rm");
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let waited = rm.try_wait().expect("rm status").is_none();
    // containerd gives up on the Create: the bundle goes, the shim stays.
    fs::remove_dir_all(&bundle).expect("remove bundle");
    let out = rm.wait_with_output().expect("wait rm");
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let status = shim.wait().expect("wait fake shim");
    println!(
        "podrun fault orphaned-shim: 1 round, {} failures, rm waited for the in-flight shim \
         and finished {:.2}s after it started (bundle removed at 1s); gc and run kill orphans",
        usize::from(!(waited && out.status.success())),
        took.as_secs_f64()
    );
    assert!(
        waited,
        "rm did not wait for a shim whose bundle exists: {stderr}"
    );
    assert!(out.status.success(), "rm: {stderr}");
    assert!(
        stderr.contains(&format!("killed orphaned shim (pid {})", shim.id())),
        "{stderr}"
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "fake shim not SIGKILLed: {status:?}"
    );
    assert_eq!(leftovers(&n, "ghost"), Vec::<String>::new());

    // An orphan that shows up after rm (containerd executing a dead
    // run's request late) is killed by `gc`, or by the next `run` of
    // the pod before it creates anything.
    let orphan = |pod: &str| {
        let bundle = n.pr.dir().join(format!("bundle-{pod}"));
        let child = fake_shim(&n, &format!("{pod}-{}", n.pr.instance()), &bundle);
        fs::remove_dir_all(&bundle).expect("remove bundle");
        child
    };
    for (pod, cmd) in [("late", "gc"), ("ghost", "run")] {
        let mut child = orphan(pod);
        let out = if cmd == "gc" {
            n.podrun(&["gc"]).expect_ok()
        } else {
            n.run_pod(&pod_spec(pod, json!([sleeper("c")])))
        };
        let msg = format!("killed orphaned shim (pid {})", child.id());
        assert!(out.stderr.contains(&msg), "{cmd}: {out}");
        let status = child.wait().expect("wait fake shim");
        assert_eq!(status.signal(), Some(9), "{cmd}: {status:?}");
    }
    // That line is logged at info level: hidden by --log-level warn (the
    // shim is killed all the same), a JSON object with --log-format json.
    let mut child = orphan("quiet");
    let out = n.podrun(&["--log-level", "warn", "gc"]).expect_ok();
    assert!(!out.stderr.contains("killed orphaned shim"), "{out}");
    let status = child.wait().expect("wait fake shim");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    let mut child = orphan("json");
    let out = n.podrun(&["--log-format", "json", "gc"]).expect_ok();
    let msg = format!("podrun: killed orphaned shim (pid {})", child.id());
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(&msg))
        .unwrap_or_else(|| panic!("no {msg:?}: {out}"));
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(v["level"], "INFO", "{line}");
    assert!(
        v["timestamp"].as_str().is_some_and(|t| t.contains('T')),
        "{line}"
    );
    assert!(
        v["message"].as_str().is_some_and(|m| m.starts_with(&msg)),
        "{line}"
    );
    let status = child.wait().expect("wait fake shim");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    n.podrun(&["rm", "ghost", "--grace", "0"]).expect_ok();
    assert_eq!(leftovers(&n, "ghost"), Vec::<String>::new());
}

/// What the kill rounds found a killed `run` leaving behind, made
/// deterministically: a pod directory holding only the temp file of its
/// first record, and a temp file of libcni's cache entry.
#[test]
fn rm_removes_the_temp_files_of_a_run_killed_while_writing() {
    require_root();
    let n = PodNode::new("pf-tmp", "10.88.14.1/24");
    let half = n.pr.pod_dir("half");
    fs::create_dir_all(&half).expect("pod dir");
    fs::write(half.join(".pod.json.tmp-4242"), "{\"spec\":").expect("temp record");
    n.podrun(&["rm", "half"]).expect_ok();
    assert!(!half.exists(), "pod dir without record left");

    n.run_pod(&pod_spec("tmpc", json!([sleeper("c")])));
    let results = n.cache_dir().join("results");
    let entry = format!("podnet-tmpc-{}-eth0", n.pr.instance());
    assert!(results.join(&entry).exists(), "{:?}", names(&results));
    fs::write(results.join(format!(".{entry}.tmp-4242")), "{").expect("temp cache");
    // The name earlier podruns gave it.
    fs::write(results.join(format!("{entry}.tmp4242")), "{").expect("old temp cache");
    n.podrun(&["rm", "tmpc", "--grace", "0"]).expect_ok();
    assert_eq!(leftovers(&n, "tmpc"), Vec::<String>::new());
    assert_eq!(leftovers(&n, "half"), Vec::<String>::new());
}
