//! Load on the agent (issue 8): two real `netboot agent` nodes (a pod each)
//! and 100 simulated nodes whose leases the test writes to etcd in
//! flanneld's exact format, with churn: every step some simulated nodes
//! leave (key deleted, etcd lease revoked, or lease left to expire), some
//! join, some restart (same subnet, new VtepMAC and/or PublicIP) and one
//! moves (new subnet, same VtepMAC and PublicIP). After every step both
//! agents' routes, permanent ARP entries and FDB entries on flannel.1 must
//! equal exactly the live leases other than their own; the time to get
//! there, from the step's last etcd write (or the expiry of its keys), is
//! recorded (the floor, ~6 ms, is one read of both nodes' tables by this
//! debug-built test). Pod traffic between the real nodes runs throughout.
//! Then etcd history is compacted, the etcd member restarted, and a paused
//! agent's watch cancelled by etcd for compaction: the agents must resync
//! from a fresh read and follow the watch again.
//!
//! A second test measures the periodic resync over 100 unchanged leases and
//! its repair of entries changed behind the agent's back.
//!
//! `NETBOOT_CHURN_SECS` (default 20) is the churn time, `NETBOOT_CHURN_NODES`
//! (default 100) the simulated nodes, `NETBOOT_CHURN_SEED` replays a run,
//! `NETBOOT_CHURN_RESYNC` sets the agents' `--resync-interval` (default
//! 60s). Prints `agent churn: …` and `agent resync: …` lines (campaign.sh
//! reads them). No timing is asserted; a step that never converges within
//! [`DEADLINE`] fails.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netboot_tests::agent_load::{clock_ticks, EtcdV3, ProcSample};
use netboot_tests::cluster::{ping_within, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::lease_sim::{self, converge, tail, Fleet, Pinger, Sim, Watched, DEADLINE};
use netboot_tests::require_root;

/// 250 subnets: room for 100 simulated nodes, 2 real ones and churn.
const CONFIG: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.250.0","Backend":{"Type":"vxlan"}}"#;
/// Time between the starts of two churn steps.
const PERIOD: Duration = Duration::from_secs(2);
fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `60s`, `5m`, `90` (seconds) as `netboot agent` takes them.
fn netboot_agent_duration(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .unwrap_or_else(|_| panic!("NETBOOT_CHURN_RESYNC={s:?}: use 30s, 5m, ..."));
    Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => panic!("NETBOOT_CHURN_RESYNC={s:?}: use 30s, 5m, ..."),
    })
}

/// Agent log lines that show a resync repairing what the watch missed.
fn repairs(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("found on resync")
                || l.contains("removing stale")
                || l.contains("repairing")
                || l.contains("put back what someone removed")
        })
        .map(str::to_string)
        .collect()
}

/// Compacts etcd's whole history up to now (physically): watches from an
/// older revision are cancelled.
fn compact_history(etcd: &EtcdV3) {
    let (_, rev) = etcd.list(PREFIX);
    etcd.must("compact", |mut c| async move {
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .map(|_| ())
    });
}

#[test]
fn agents_converge_exactly_under_churn_of_100_simulated_nodes() {
    require_root();
    let secs = env_num("NETBOOT_CHURN_SECS", 20);
    let target = env_num("NETBOOT_CHURN_NODES", 100) as usize;
    assert!(
        (1..=200).contains(&target),
        "NETBOOT_CHURN_NODES={target}: 1..=200 (the range holds 250 subnets)"
    );
    let seed = env_num(
        "NETBOOT_CHURN_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    );
    eprintln!("churn: seed {seed} (NETBOOT_CHURN_SEED replays), {target} nodes, {secs} s");

    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "c1", 71);
    let mut n2 = AgentNode::new(&ul, "c2", 72);
    // The agent's own default (60 s) unless NETBOOT_CHURN_RESYNC says.
    let resync = std::env::var("NETBOOT_CHURN_RESYNC").unwrap_or_else(|_| "60s".into());
    let args = [format!("--resync-interval={resync}")];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agents_up = Instant::now();
    let pid1 = n1.start_agent(&ep, &args);
    let pid2 = n2.start_agent(&ep, &args);
    let s1 = n1.wait_subnet(DEADLINE);
    let s2 = n2.wait_subnet(DEADLINE);
    let (p1, ip1) = n1.add_pod("cp1");
    let (p2, ip2) = n2.add_pod("cp2");
    assert!(
        ping_within(n1.pod(p1), &ip2, DEADLINE),
        "pods do not reach each other before churn:\n{}",
        n1.log()
    );
    let real: BTreeSet<String> = [n1.lease_key(), n2.lease_key()].into();
    let third = |s: &str| -> u8 { s.split('.').nth(2).unwrap().parse().unwrap() };

    let member = &etcd.members[0];
    let mut fleet = Fleet::new(
        EtcdV3::new(member.ns.path(), &member.url()),
        [third(&s1), third(&s2)].into(),
        seed,
    );
    let mut nodes = vec![Watched::of(&n1, pid1), Watched::of(&n2, pid2)];

    // 100 nodes join at once.
    let t = Instant::now();
    for _ in 0..target {
        fleet.join();
    }
    let written = t.elapsed();
    let leases = fleet.check_store(&real);
    let initial = converge(&mut nodes, &leases, "initial join");
    eprintln!(
        "churn: {target} leases written in {:.2} s; agents converged {:.0} ms later",
        written.as_secs_f64(),
        initial.as_secs_f64() * 1e3
    );
    fleet.counts.clear();

    // Churn.
    let ticks = clock_ticks() as f64;
    let before: Vec<ProcSample> = nodes
        .iter()
        .map(|n| ProcSample::of(n.pid).expect("agent alive"))
        .collect();
    let pinger = Pinger::start(n1.pod(p1), &ip2, secs + 2);
    let churn_start = Instant::now();
    let mut lat = Vec::new();
    let mut step = 0u64;
    while churn_start.elapsed() < Duration::from_secs(secs) {
        let t0 = Instant::now();
        let expiring = fleet.step(target, step);
        fleet.wait_expired(&expiring);
        let leases = fleet.check_store(&real);
        let took = converge(&mut nodes, &leases, &format!("churn step {step}"));
        lat.push(took.as_secs_f64() * 1e3);
        for n in &nodes {
            assert!(
                ProcSample::of(n.pid).is_some(),
                "agent on {} exited:\n{}",
                n.node.ip,
                n.node.log()
            );
        }
        step += 1;
        if let Some(rest) = PERIOD.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let wall = churn_start.elapsed().as_secs_f64();
    let after: Vec<ProcSample> = nodes
        .iter()
        .map(|n| ProcSample::of(n.pid).expect("agent alive"))
        .collect();
    let (sent, got) = pinger.finish();
    eprintln!(
        "churn: pod {ip1} -> {ip2} during churn: {got}/{sent} pings answered; ops {:?}",
        fleet.counts
    );
    assert!(
        sent > 0 && got * 10 >= sent * 9,
        "cross-node pod traffic broke during churn: {got}/{sent} pings answered"
    );
    // Unless a periodic resync ran (NETBOOT_CHURN_RESYNC shorter than the
    // churn), the watch alone kept the agents exact: nothing was repaired
    // by a resync. (A resync racing the watch may legitimately "repair" an
    // event it read before the watch delivered it.)
    let resync_ran = agents_up.elapsed() >= netboot_agent_duration(&resync);
    for n in &nodes {
        let r = repairs(&n.node.log());
        eprintln!(
            "churn: agent on {}: {} resync repair(s)",
            n.node.ip,
            r.len()
        );
        for line in &r {
            eprintln!("churn:   {line}");
        }
        assert!(
            resync_ran || r.is_empty(),
            "agent on {} needed a resync to repair its tables:\n{}",
            n.node.ip,
            r.join("\n")
        );
    }

    // Nothing drifts once churn stops.
    std::thread::sleep(Duration::from_secs(2));
    let leases = fleet.check_store(&real);
    converge(&mut nodes, &leases, "settled after churn");

    // Compaction of the whole history, then the etcd member restarted with
    // churn right behind it: the agents lose their watch, resync from a
    // fresh read and watch again from its revision.
    compact_history(&fleet.etcd);
    let expiring = fleet.step(target, step);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_compact = converge(&mut nodes, &leases, "churn after compaction");
    let log_len: Vec<usize> = nodes.iter().map(|n| n.node.log().len()).collect();
    etcd.members[0].stop();
    etcd.members[0].restart();
    etcd.wait_healthy();
    let expiring = fleet.step(target, step + 1);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_restart = converge(&mut nodes, &leases, "churn after an etcd restart");
    for (n, from) in nodes.iter().zip(&log_len) {
        let log = n.node.log();
        assert!(
            log[*from..].contains("the lease watch broke"),
            "agent on {} did not notice the etcd restart:\n{}",
            n.node.ip,
            &log[*from..]
        );
    }
    // The watch is live again: one more step reaches the agents through it
    // (no periodic resync has run yet unless the run is long).
    let log_len: Vec<usize> = nodes.iter().map(|n| n.node.log().len()).collect();
    let expiring = fleet.step(target, step + 2);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_rewatch = converge(&mut nodes, &leases, "churn after re-watch");
    for (n, from) in nodes.iter().zip(&log_len) {
        let later = repairs(&n.node.log()[*from..]);
        assert!(
            agents_up.elapsed() >= netboot_agent_duration(&resync) || later.is_empty(),
            "after the etcd restart, changes reached {} only by a resync:\n{}",
            n.node.ip,
            later.join("\n")
        );
    }

    // A watch etcd cancels because its history was compacted: node 1's
    // agent is paused (SIGSTOP) while etcd sends it more than the stream
    // buffers (400 writes of 32 KB to an ignored key), so etcd parks the
    // watcher behind; churn and a compaction follow; after SIGCONT etcd
    // answers the watch with its compact revision. The agent must resync
    // from a fresh read and watch again from there.
    let from = n1.log().len();
    signal(pid1, nix::sys::signal::Signal::SIGSTOP);
    let junk = format!("{PREFIX}/subnets/churn-flood");
    fleet.etcd.must("flood the watch", |mut c| async move {
        // More than the HTTP/2 stream window (2 MB) plus etcd's 128
        // buffered responses of the watch stream can hold.
        let blob = "x".repeat(32 << 10);
        for _ in 0..400 {
            c.put(junk.clone(), blob.clone(), None).await?;
        }
        c.delete(junk, None).await.map(|_| ())
    });
    let expiring = fleet.step(target, step + 3);
    fleet.wait_expired(&expiring);
    compact_history(&fleet.etcd);
    signal(pid1, nix::sys::signal::Signal::SIGCONT);
    let leases = fleet.check_store(&real);
    let after_cancel = converge(&mut nodes, &leases, "churn across a compacted watch");
    let log = n1.log()[from..].to_string();
    eprintln!(
        "churn: node 1 agent across the compacted watch:\n{}",
        tail(&log)
    );
    assert!(
        log.contains("cancelled by etcd"),
        "etcd did not cancel the paused agent's watch (the test's premise):\n{log}"
    );
    // And it watches again: the next step reaches it through the watch
    // (no periodic resync has run yet unless the run is long).
    let from = n1.log().len();
    let expiring = fleet.step(target, step + 4);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    converge(&mut nodes, &leases, "churn after the compacted watch");
    let later = repairs(&n1.log()[from..]);
    assert!(
        agents_up.elapsed() >= netboot_agent_duration(&resync) || later.is_empty(),
        "after the cancelled watch, changes reached the agent only by a resync:\n{}",
        later.join("\n")
    );

    assert!(ping_within(n1.pod(p1), &ip2, DEADLINE), "pod 1 -> pod 2");
    assert!(ping_within(n2.pod(p2), &ip1, DEADLINE), "pod 2 -> pod 1");

    let per_step: Vec<String> = lat.iter().map(|l| format!("{l:.0}")).collect();
    eprintln!("churn: convergence per step (ms): {}", per_step.join(" "));
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    // utime+stime at the clock tick (10 ms steps), and the exact figure
    // from schedstat that the share of wall time is computed from.
    let cpu_ticks: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_ticks - b.cpu_ticks) as f64 / ticks)
        .collect();
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_ns - b.cpu_ns) as f64 / 1e9)
        .collect();
    let fmt = |v: &[f64], d: usize| {
        v.iter()
            .map(|x| format!("{x:.d$}"))
            .collect::<Vec<_>>()
            .join("/")
    };
    let child_cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.child_ticks - b.child_ticks) as f64 / ticks)
        .collect();
    let pct: Vec<f64> = cpu.iter().map(|c| c / wall * 100.0).collect();
    let rss: Vec<f64> = after.iter().map(|a| a.rss_kb as f64 / 1024.0).collect();
    let hwm: Vec<f64> = after.iter().map(|a| a.hwm_kb as f64 / 1024.0).collect();
    let ops: u64 = fleet.counts.values().sum();
    eprintln!(
        "churn: after compaction {:.0} ms, after etcd restart {:.0} ms, after re-watch {:.0} ms, \
         across a compacted watch {:.0} ms",
        after_compact.as_secs_f64() * 1e3,
        after_restart.as_secs_f64() * 1e3,
        after_rewatch.as_secs_f64() * 1e3,
        after_cancel.as_secs_f64() * 1e3
    );
    eprintln!(
        "agent churn: nodes={target} steps={} ops={ops} duration={wall:.1}s \
         converge_ms min={:.0} median={:.0} max={:.0} agent_cpu_s={} sched_cpu_s={} \
         cpu_pct={} children_cpu_s={} rss_mb={} peak_rss_mb={}",
        lat.len(),
        percentile(&sorted, 0.0),
        percentile(&sorted, 0.5),
        percentile(&sorted, 1.0),
        fmt(&cpu_ticks, 2),
        fmt(&cpu, 3),
        fmt(&pct, 2),
        fmt(&child_cpu, 2),
        fmt(&rss, 1),
        fmt(&hwm, 1),
    );
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal the agent");
}

#[test]
fn periodic_resync_of_100_leases_costs_three_dumps_and_repairs_only_drift() {
    require_root();
    let target = env_num("NETBOOT_CHURN_NODES", 100) as usize;
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "r1", 73);
    let pid = n1.start_agent(&etcd.endpoints(), &["--resync-interval=1s"]);
    let s1 = n1.wait_subnet(DEADLINE);
    let own: u8 = s1.split('.').nth(2).unwrap().parse().unwrap();
    let member = &etcd.members[0];
    let fleet = Fleet::joined(
        EtcdV3::new(member.ns.path(), &member.url()),
        [own].into(),
        7,
        target,
    );
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let leases = fleet.check_store(&real);
    let mut nodes = vec![Watched::of(&n1, pid)];
    converge(&mut nodes, &leases, "initial join");

    // Idle: one resync a second over unchanged leases and kernel.
    eprintln!("agent resync: agent PID {pid}");
    std::thread::sleep(Duration::from_secs(2));
    let log_from = n1.log().len();
    let ticks = clock_ticks() as f64;
    let before = ProcSample::of(pid).expect("agent alive");
    let idle = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let after = ProcSample::of(pid).expect("agent alive");
    let secs = idle.elapsed().as_secs_f64();
    eprintln!(
        "agent resync: leases={target} interval=1s idle={secs:.1}s \
         agent_cpu_ms_per_resync={:.2} children_cpu_ms_per_resync={:.1}",
        (after.cpu_ns - before.cpu_ns) as f64 / 1e6 / secs,
        (after.child_ticks - before.child_ticks) as f64 / ticks / secs * 1e3,
    );
    let idle_log = n1.log()[log_from..].to_string();
    assert!(
        repairs(&idle_log).is_empty(),
        "resyncs over an unchanged node changed something:\n{idle_log}"
    );

    // Drift behind the agent's back: five leases' entries deleted or
    // changed, and a stale route, ARP and FDB entry nobody leased.
    let sims: Vec<Sim> = fleet.live.values().take(5).cloned().collect();
    let net = |s: &Sim| format!("10.2.{}.0", s.subnet);
    let mac = |s: &Sim| netkit::fmt_mac(&s.mac);
    let mut drift = lease_sim::drift(&sims);
    // A second stale route, via an address that is no peer's VTEP.
    drift.insert(
        6,
        "ip route add 10.2.252.0/24 via 10.2.252.7 dev flannel.1 onlink".into(),
    );
    for cmd in &drift {
        n1.ns.exec_line(cmd).expect_ok();
    }
    let took = converge(&mut nodes, &leases, "drift repaired by the periodic resync");
    eprintln!(
        "agent resync: drift repaired {:.0} ms after it was made",
        took.as_secs_f64() * 1e3
    );
    let log = n1.log()[log_from..].to_string();
    // Whichever sees it first repairs it: the periodic resync, or the
    // agent's netlink subscription noticing the delete ("put back").
    for s in &sims {
        let sn = format!("{}/24", net(s));
        assert!(
            log.lines().any(|l| (l.contains("repairing")
                || l.contains("put back what someone removed"))
                && l.contains(&format!(" {sn}"))),
            "{sn} not named as repaired:\n{log}"
        );
    }
    for stale in [
        "removing stale route 10.2.251.0/24",
        "removing stale route 10.2.252.0/24",
        "removing stale ARP entry 10.2.251.0",
        "removing stale FDB entry 0a:58:5e:ff:ff:02 dst 172.31.9.8",
    ] {
        assert!(log.contains(stale), "no {stale:?} in the log:\n{log}");
    }
    assert!(
        log.contains(&format!(
            "removing stale FDB entry {} dst 172.31.9.9",
            mac(&sims[4])
        )),
        "the wrong FDB destination was not removed:\n{log}"
    );
}
