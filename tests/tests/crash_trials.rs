//! Crash trials (issue 8): netboot-cni SIGKILLed at a random point of ADD
//! or DEL, in every mode, then recovered the way a runtime recovers, and
//! the node compared with its state before the trial.
//!
//! Per trial: a fresh pod netns; for mid-DEL trials the pod is first ADDed
//! completely. The plugin runs inside the node (`nsenter` execs it, so the
//! child's PID is the plugin's) and is killed after a random delay spread
//! uniformly over 0..1.25x the operation's measured (median) duration, in
//! one of three ways, taken in turn (see [`Kill`]): its PID only (a
//! runtime's timeout: delegates keep running, orphaned), its process
//! group, or every process of the attachment frozen and killed (a cgroup
//! kill: host-local or iptables die halfway too).
//!
//! Recovery, alternating: DEL (repeated until it succeeds, at most 3
//! times), or, once the pod's netns is gone, GC with the valid attachments
//! (one "keeper" pod lives through the whole run and must survive every
//! GC). Then, once every process of the killed call has ended, the node
//! must equal its snapshot from before the trial: `ip -j` link, addr,
//! route and neigh (configured entries) of the node netns,
//! `iptables-save`, `nft list ruleset`, and every file of the node
//! (records, flannel scratch files, the host-local store), with only the
//! round-robin hint `last_reserved_ip.*` and carrier flags ignored. Any
//! difference is a failure and its diff is printed.
//!
//! `NETBOOT_CRASH_ROUNDS` is the number of trials per mode *and* phase
//! (CI: 4, so 8 per mode; `scripts/campaign.sh`: 500, so 1000 per mode).
//! If none of those kills landed mid-operation, up to 8 more rounds draw
//! their delay from the first quarter of the spread until one does.
//! `NETBOOT_CRASH_BANDWIDTH=1` adds bandwidth shaping (ifb, qdiscs) to
//! every attachment. `NETBOOT_TEST_SEED` replays the random delays. Each test prints one
//! tally line that `scripts/campaign.sh` parses:
//! `crash trial <mode> mid-<PHASE>: N rounds, K killed mid-op, F finished first, X failures (...)`.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use netboot_tests::crash_support::{
    env_count, median, procs_of, reference_plugins_present, wait_gone, Kill, Mode, ModeNode,
};
use netboot_tests::native_support::Rng;
use netboot_tests::plugin_support::{cid, plugin_bin, Snapshot};
use netboot_tests::PluginCall;
use netboot_tests::{plugin_command, require_root, retry, Netns};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Add,
    Del,
}

impl Phase {
    fn command(self) -> &'static str {
        match self {
            Phase::Add => "ADD",
            Phase::Del => "DEL",
        }
    }
}

/// What happened over a run, for the tally line.
#[derive(Debug, Default)]
struct Tally {
    rounds: u32,
    /// The plugin died of the SIGKILL (the kill landed mid-operation).
    killed_mid_op: u32,
    /// The plugin had already exited when the kill came.
    finished_first: u32,
    /// Trials where processes of the call outlived the plugin.
    orphaned: u32,
    by_kill: [u32; 3],
    recovered_by_del: u32,
    /// DELs beyond the first one a recovery needed.
    extra_dels: u32,
    recovered_by_gc: u32,
    failures: u32,
    max_delay: Duration,
}

/// One `#[test]` per mode and phase, each running [`trials`].
macro_rules! trial_tests {
    ($($name:ident: $mode:ident, $phase:ident;)*) => {
        $(
            #[test]
            fn $name() {
                trials(Mode::$mode, Phase::$phase);
            }
        )*
    };
}

trial_tests! {
    native_killed_mid_add: Native, Add;
    native_killed_mid_del: Native, Del;
    bridge_killed_mid_add: Bridge, Add;
    bridge_killed_mid_del: Bridge, Del;
    flannel_killed_mid_add: Flannel, Add;
    flannel_killed_mid_del: Flannel, Del;
}

fn trials(mode: Mode, phase: Phase) {
    require_root();
    if mode != Mode::Native {
        assert!(
            reference_plugins_present(),
            "{} mode needs the reference bridge, host-local and portmap in /usr/lib/cni",
            mode.name()
        );
    }
    let rounds = env_count("NETBOOT_CRASH_ROUNDS", 4);
    let node = ModeNode::new(&format!("k{}", &mode.name()[..3]), mode);
    // A valid attachment for the whole run: every GC must leave it alone.
    let keeper = node.pod("keep");
    node.run(&node.call("ADD", &keeper)).expect_ok();
    let keeper_id = cid(&keeper);
    let op_time = measure(&node, phase);
    let mut baseline = node.stable_snapshot();
    let mut rng = Rng::from_env_or_clock();
    let mut t = Tally::default();
    let spread = (op_time.as_micros() as u64 * 5 / 4).max(1000);
    // When every random kill came too late (a fast operation on a quiet
    // machine), extra rounds draw from the first quarter of the spread until
    // one lands mid-operation, so each run proves recovery from a real kill.
    let extra = if rounds >= 4 { 8 } else { 0 };
    for round in 0..rounds + extra {
        if round >= rounds && t.killed_mid_op > 0 {
            break;
        }
        let kill = Kill::ALL[round as usize % Kill::ALL.len()];
        let window = if round < rounds { spread } else { spread / 4 };
        let delay = Duration::from_micros(rng.below(window + 1));
        t.max_delay = t.max_delay.max(delay);
        let by_del = round % 2 == 0;
        let plan = Plan {
            phase,
            kill,
            delay,
            by_del,
        };
        let problem = trial(&node, &plan, &keeper_id, &baseline, &mut t);
        t.rounds += 1;
        if let Some(problem) = problem {
            t.failures += 1;
            eprintln!(
                "FAILURE {} mid-{} round {round}: kill {} after {delay:?}, recovery by {}:\n{problem}",
                mode.name(),
                phase.command(),
                kill.name(),
                if by_del { "DEL" } else { "GC" },
            );
            // Later rounds are judged against the node as it is now.
            let _ = node.gc(&[&keeper_id]);
            baseline = node.stable_snapshot();
        }
    }
    // The keeper survived every GC and still detaches cleanly.
    netboot_tests::assert_ping(&keeper, &node.gateway());
    node.run(&node.call("DEL", &keeper)).expect_ok();
    eprintln!(
        "crash trial {} mid-{}: {} rounds, {} killed mid-op, {} finished first, {} failures \
         (op {op_time:?}, delays 0..{:?}; kills pid/group/tree {:?}; {} with orphaned \
         delegates; recovered by DEL {} (+{} retries), by GC {})",
        mode.name(),
        phase.command(),
        t.rounds,
        t.killed_mid_op,
        t.finished_first,
        t.failures,
        Duration::from_micros(spread),
        t.by_kill,
        t.orphaned,
        t.recovered_by_del,
        t.extra_dels,
        t.recovered_by_gc,
    );
    assert_eq!(t.failures, 0, "{t:?}");
    if rounds >= 4 {
        assert!(t.killed_mid_op > 0, "no kill landed mid-operation: {t:?}");
    }
}

/// Median duration of the phase's operation over 3 attachments, after a
/// first one that creates the node-wide state (cni0, shared chains, store)
/// and is not counted.
fn measure(node: &ModeNode, phase: Phase) -> Duration {
    let mut times = Vec::new();
    for i in 0..4 {
        let pod = node.pod("w");
        let t = Instant::now();
        node.run(&node.call("ADD", &pod)).expect_ok();
        let add = t.elapsed();
        let t = Instant::now();
        node.run(&node.call("DEL", &pod)).expect_ok();
        let del = t.elapsed();
        if i > 0 {
            times.push(if phase == Phase::Add { add } else { del });
        }
    }
    median(times)
}

/// How one trial kills and recovers.
#[derive(Clone, Copy)]
struct Plan {
    phase: Phase,
    kill: Kill,
    delay: Duration,
    /// Recover by DEL (else by GC).
    by_del: bool,
}

/// Starts netboot-cni on `call` in a process group of its own (so a group
/// kill reaches its delegates), its output discarded.
fn spawn_in_own_group(call: &PluginCall) -> Child {
    let mut cmd = plugin_command(&plugin_bin(), call);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().expect("spawn netboot-cni");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(call.stdin.as_bytes());
    }
    child
}

/// One trial; `Some(description)` when the node was not restored.
fn trial(
    node: &ModeNode,
    plan: &Plan,
    keeper: &str,
    baseline: &Snapshot,
    t: &mut Tally,
) -> Option<String> {
    let Plan {
        phase,
        kill,
        delay,
        by_del,
    } = *plan;
    let pod = node.pod("k");
    let id = cid(&pod);
    if phase == Phase::Del {
        node.run(&node.call("ADD", &pod)).expect_ok();
    }
    let call = node.call(phase.command(), &pod);
    let mut child = spawn_in_own_group(&call);
    thread::sleep(delay);
    kill.apply(child.id() as i32, &id);
    let status = child.wait().expect("wait for the plugin");
    t.by_kill[Kill::ALL.iter().position(|k| *k == kill).unwrap_or(0)] += 1;
    if status.signal() == Some(9) {
        t.killed_mid_op += 1;
    } else {
        t.finished_first += 1;
    }
    let orphans = procs_of(&id);
    t.orphaned += u32::from(!orphans.is_empty());
    let mut problems = Vec::new();
    if by_del {
        // A runtime DELs right away, orphans or not, and again on failure.
        let mut failed = Vec::new();
        for _ in 0..3 {
            let out = node.run(&node.call("DEL", &pod));
            if out.success() {
                break;
            }
            failed.push(format!("DEL {} failed: {}", failed.len(), out.output));
        }
        if failed.len() < 3 {
            t.recovered_by_del += 1;
            t.extra_dels += failed.len() as u32;
            if let Some(first) = failed.first() {
                eprintln!("note: recovery needed {} DELs; {first}", failed.len() + 1);
            }
        } else {
            problems.extend(failed);
        }
    } else {
        // GC runs once the sandbox is gone (SPEC: the netns may be gone).
        drop(pod);
        let out = node.gc(&[keeper]);
        if out.success() {
            t.recovered_by_gc += 1;
        } else {
            problems.push(format!("GC failed: {}", out.output));
        }
        return finish(node, None, &orphans, baseline, problems);
    }
    finish(node, Some(&pod), &orphans, baseline, problems)
}

/// Waits for the killed call's orphans, then compares the node with
/// `baseline` (and checks the pod, when it still exists, lost its eth0).
fn finish(
    node: &ModeNode,
    pod: Option<&Netns>,
    orphans: &[netboot_tests::crash_support::Proc],
    baseline: &Snapshot,
    mut problems: Vec<String>,
) -> Option<String> {
    if !wait_gone(orphans, Duration::from_secs(30)) {
        problems.push(format!(
            "processes of the killed call still run: {orphans:?}"
        ));
    }
    if let Some(pod) = pod {
        if pod.link_names().iter().any(|l| l == "eth0") {
            problems.push("eth0 left in the pod".into());
        }
    }
    let diff = node.settled_diff(baseline);
    if !diff.is_empty() {
        problems.push(format!("node differs from before the trial:\n{diff}"));
    }
    (!problems.is_empty()).then(|| problems.join("\n"))
}

// Deterministic regressions for what the trials found.

/// One attachment made and removed, so node-wide state (cni0, shared
/// chains, the store) exists before a snapshot.
fn warm_up(node: &ModeNode) {
    let pod = node.pod("w");
    node.run(&node.call("ADD", &pod)).expect_ok();
    node.run(&node.call("DEL", &pod)).expect_ok();
}

/// A stand-in `bridge` whose ADD notes its PID in `<log>/pid`, sleeps, and
/// only then marks `<log>/late-add`: an ADD still running when
/// netboot-cni is killed.
fn slow_bridge(log: &std::path::Path) -> String {
    format!(
        r#"#!/bin/sh
LOG='{}'
case "$CNI_COMMAND" in
VERSION) echo '{{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}}' ;;
ADD) cat >/dev/null; echo $$ > "$LOG/pid.tmp"; mv "$LOG/pid.tmp" "$LOG/pid"
     sleep 3; touch "$LOG/late-add"; echo '{{"cniVersion":"1.1.0"}}' ;;
*) cat >/dev/null ;;
esac
"#,
        log.display()
    )
}

#[test]
fn a_delegate_orphaned_by_a_pid_kill_is_stopped_by_del() {
    require_root();
    let node = ModeNode::new("orph", Mode::Bridge);
    let log = tempfile::tempdir().unwrap();
    std::fs::remove_file(node.cni_dir().path().join("bridge")).unwrap();
    node.cni_dir().script("bridge", &slow_bridge(log.path()));
    let pod = node.pod("o");
    let id = cid(&pod);
    let call = node.call("ADD", &pod);
    let mut child = spawn_in_own_group(&call);
    let started = retry(200, Duration::from_millis(50), || {
        log.path().join("pid").exists().then_some(())
    });
    assert!(started.is_some(), "the stand-in bridge never ran");
    // The runtime's timeout: SIGKILL to netboot-cni's PID only.
    Kill::Pid.apply(child.id() as i32, &id);
    child.wait().unwrap();
    let orphans = procs_of(&id);
    assert!(
        !orphans.is_empty(),
        "the delegate should outlive the plugin"
    );
    node.run(&node.call("DEL", &pod)).expect_ok();
    assert!(
        wait_gone(&orphans, Duration::from_secs(20)),
        "orphan still running: {orphans:?}"
    );
    assert!(
        !log.path().join("late-add").exists(),
        "the orphaned ADD finished after DEL"
    );
    assert_eq!(node.records(), Vec::<String>::new());
}

#[test]
fn del_without_netns_removes_the_bridge_masquerade_chain() {
    require_root();
    // FLANNEL_IPMASQ=false: bridge masquerades per container.
    let node = ModeNode::new("masq", Mode::Bridge);
    warm_up(&node);
    let pod = node.pod("m");
    let id = cid(&pod);
    let before = node.stable_snapshot();
    node.run(&node.call("ADD", &pod)).expect_ok();
    let chain = netkit::firewall::bridge_masq_chain(netboot_tests::plugin_support::NET, &id);
    assert!(
        node.iptables_save().contains(&chain),
        "no {chain} after ADD"
    );
    // containerd's second DEL without a first one: empty CNI_NETNS, where
    // bridge only releases the IP (plugins#810).
    let del = PluginCall {
        netns: None,
        ..node.call("DEL", &pod)
    };
    node.run(&del).expect_ok();
    drop(pod);
    let rules = node.iptables_save();
    assert!(!rules.contains(&chain), "{chain} left:\n{rules}");
    let diff = node.settled_diff(&before);
    assert!(diff.is_empty(), "{diff}");
}

#[test]
fn flannel_del_replays_or_rebuilds_what_flannel_cannot() {
    require_root();
    let node = ModeNode::new("flrp", Mode::Flannel);
    warm_up(&node);
    let before = node.stable_snapshot();
    // 1. A scratch file at a version the reference bridge refuses (an ADD
    //    killed before netboot-cni retried lower): flannel's own DEL fails.
    // 2. A zero-byte scratch file: flannel's DEL does nothing (flannel#1662).
    for damage in ["version", "empty"] {
        let pod = node.pod("f");
        let id = cid(&pod);
        node.run(&node.call("ADD", &pod)).expect_ok();
        let scratch = node.data_dir.join(&id);
        let mut conf: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&scratch).unwrap()).unwrap();
        if damage == "version" {
            conf["cniVersion"] = "1.1.0".into();
            std::fs::write(&scratch, conf.to_string()).unwrap();
        } else {
            std::fs::write(&scratch, b"").unwrap();
        }
        node.run(&node.call("DEL", &pod)).expect_ok();
        assert!(
            pod.link_names().iter().all(|l| l != "eth0"),
            "{damage}: eth0 left"
        );
        drop(pod);
        let diff = node.settled_diff(&before);
        assert!(diff.is_empty(), "{damage}: {diff}");
    }
}

#[test]
fn bridge_del_is_retried_when_its_masquerade_chain_never_came() {
    require_root();
    // As if bridge's ADD was killed after addressing the pod and before
    // creating its masquerade chain: its DEL then fails on iptables-nft
    // ("Chain ... does not exist", exit status 2) after removing the
    // interface, and only its second DEL succeeds.
    let node = ModeNode::new("retry", Mode::Bridge);
    warm_up(&node);
    let before = node.stable_snapshot();
    let pod = node.pod("r");
    let id = cid(&pod);
    node.run(&node.call("ADD", &pod)).expect_ok();
    let chain = netkit::firewall::bridge_masq_chain(netboot_tests::plugin_support::NET, &id);
    let mut script = String::from("*nat\n");
    for line in node.iptables_save().lines() {
        if let Some(rule) = line.strip_prefix("-A POSTROUTING ") {
            if rule.ends_with(&format!("-j {chain}")) {
                script.push_str(&format!("-D POSTROUTING {rule}\n"));
            }
        }
    }
    script.push_str(&format!("-F {chain}\n-X {chain}\nCOMMIT\n"));
    let file = node.dir().join("unmasq.rules");
    std::fs::write(&file, script).unwrap();
    node.exec(&["iptables-restore", "--noflush", file.to_str().unwrap()])
        .expect_ok();
    std::fs::remove_file(&file).unwrap();
    assert!(!node.iptables_save().contains(&chain));
    node.run(&node.call("DEL", &pod)).expect_ok();
    assert!(pod.link_names().iter().all(|l| l != "eth0"), "eth0 left");
    drop(pod);
    let diff = node.settled_diff(&before);
    assert!(diff.is_empty(), "{diff}");
}

#[test]
fn del_of_an_unfinished_add_releases_the_ip_file_host_local_left_empty() {
    require_root();
    // As if host-local was killed between creating its IP file and writing
    // it (a cgroup kill, or DEL stopping the orphaned delegate): the record
    // of the unfinished ADD names no IP, and host-local's DEL matches files
    // by content, so only netboot-cni can release it.
    let node = ModeNode::new("torn", Mode::Bridge);
    warm_up(&node);
    let store = netboot_tests::crash_support::store_dir(&node);
    // A damaged file from before this ADD is not this attachment's.
    std::fs::write(store.join("10.2.1.201"), b"").unwrap();
    let before = node.stable_snapshot();
    let pod = node.pod("u");
    let id = cid(&pod);
    node.run(&node.call("ADD", &pod)).expect_ok();
    let path = node.record_path(&id);
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    rec.as_object_mut().unwrap().remove("result");
    std::fs::write(&path, rec.to_string()).unwrap();
    std::fs::write(store.join("10.2.1.200"), b"").unwrap();
    node.run(&node.call("DEL", &pod)).expect_ok();
    assert!(!store.join("10.2.1.200").exists(), "torn IP file left");
    assert!(
        store.join("10.2.1.201").exists(),
        "an older torn file was taken"
    );
    drop(pod);
    let diff = node.settled_diff(&before);
    assert!(diff.is_empty(), "{diff}");
}
