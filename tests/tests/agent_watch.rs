//! The agent follows etcd and the kernel by events alone (issue 20). Every
//! agent here runs with `--resync-interval=0` (no kernel compare) and a
//! device check an hour away, so no timer can heal anything within the
//! test: each heal below passes through a notification, or the test fails.
//!
//! - kernel drift: a peer's route, ARP or FDB entry deleted or changed by
//!   hand, entries no lease explains, the device's address, the device
//!   itself (vxlan), and a host-gw route: each put back (or swept) from
//!   rtnetlink notifications;
//! - etcd: a restart, then a member cut off and back: the watch resumes
//!   from the last revision applied, without a second list; progress
//!   answers keep that revision current across a compaction of a quiet
//!   history; a compaction while the agent is cut off makes it list again;
//! - this node's own lease rewritten by someone else: a new lease.
//!
//! Lists are counted from the agent's debug log (`-v=1`: "listed the
//! leases"). Needs root; nothing touches the root netns.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use netboot_tests::agent_load::{EtcdV3, TableReader};
use netboot_tests::agent_support::subnet_of;
use netboot_tests::cluster::{wait_until, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::lease_sim::{self, converge, tail, Fleet, Sim, Watched, DEADLINE};
use netboot_tests::require_root;

/// 250 subnets: room for the simulated nodes and churn.
const CONFIG: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.250.0","Backend":{"Type":"vxlan"}}"#;
const HOST_GW: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"host-gw"}}"#;
/// No timer heals anything during a test.
const EVENTS_ONLY: &[&str] = &["--resync-interval=0", "--device-check-interval=1h", "-v=1"];

fn third(subnet: &str) -> u8 {
    subnet.split('.').nth(2).unwrap().parse().unwrap()
}

/// Lists of every lease the agent made so far (one at start).
fn lists(n: &AgentNode) -> usize {
    n.log()
        .matches("listed the leases at etcd revision")
        .count()
}

fn run(n: &AgentNode, cmd: &str) {
    n.ns.exec_line(cmd).expect_ok();
}

/// `ip -j addr show dev flannel.1` holds `addr`.
fn has_addr(n: &AgentNode, addr: &str) -> bool {
    n.exec(&["ip", "-o", "addr", "show", "dev", "flannel.1"])
        .stdout
        .contains(addr)
}

#[test]
fn kernel_drift_is_put_back_from_notifications_alone() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "kd1", 81);
    let pid = n1.start_agent(&etcd.endpoints(), EVENTS_ONLY);
    let s1 = n1.wait_subnet(DEADLINE);
    let member = &etcd.members[0];
    let fleet = Fleet::joined(
        EtcdV3::new(member.ns.path(), &member.url()),
        [third(&s1)].into(),
        20,
        10,
    );
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let leases = fleet.check_store(&real);
    let mut nodes = vec![Watched::of(&n1, pid)];
    converge(&mut nodes, &leases, "initial join");

    // Entries of five peers deleted or changed, and a route, ARP and FDB
    // entry nobody leased.
    let sims: Vec<Sim> = fleet.live.values().take(5).cloned().collect();
    let net = |s: &Sim| format!("10.2.{}.0", s.subnet);
    let mac = |s: &Sim| netkit::fmt_mac(&s.mac);
    let from = n1.log().len();
    for cmd in lease_sim::drift(&sims) {
        run(&n1, &cmd);
    }
    let took = converge(&mut nodes, &leases, "entries changed by hand");
    eprintln!(
        "agent watch: drift put back {:.0} ms after it was made",
        took.as_secs_f64() * 1e3
    );
    let log = n1.log()[from..].to_string();
    for s in &sims {
        let sn = format!("{}/24", net(s));
        assert!(
            log.lines()
                .any(|l| l.contains("put back what someone removed") && l.contains(&sn)),
            "{sn} not named as put back:\n{log}"
        );
    }
    for stale in [
        "removing stale route 10.2.251.0/24".to_string(),
        "removing stale ARP entry 10.2.251.0".into(),
        "removing stale FDB entry 0a:58:5e:ff:ff:02 dst 172.31.9.8".into(),
        format!("removing stale FDB entry {} dst 172.31.9.9", mac(&sims[4])),
    ] {
        assert!(log.contains(&stale), "no {stale:?} in the log:\n{log}");
    }

    // The device's only address removed: the kernel also flushes its
    // routes and ARP entries, without a notification for the routes.
    let own = subnet_of(&s1).replace("/24", "/32");
    run(&n1, &format!("ip addr del {own} dev flannel.1"));
    converge(&mut nodes, &leases, "address removed");
    assert!(
        has_addr(&n1, &own),
        "{own} not back on flannel.1:\n{}",
        tail(&n1.log())
    );

    // The device deleted: rebuilt with every peer, from the leases held.
    let mac_before = n1.vtep_mac();
    run(&n1, "ip link del flannel.1");
    converge(&mut nodes, &leases, "flannel.1 deleted");
    assert_eq!(n1.vtep_mac(), mac_before, "the VtepMAC changed");
    assert!(has_addr(&n1, &own));

    // None of this was a timer's doing, nor a second read of etcd.
    let log = n1.log();
    assert!(!log.contains("resync at etcd revision"), "{}", tail(&log));
    assert_eq!(lists(&n1), 1, "{}", tail(&log));
}

#[test]
fn host_gw_routes_removed_or_added_by_hand_are_healed_from_notifications() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), HOST_GW);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "hg1", 83);
    let mut n2 = AgentNode::new(&ul, "hg2", 84);
    n1.start_agent(&ep, EVENTS_ONLY);
    n2.start_agent(&ep, EVENTS_ONLY);
    n1.wait_subnet(DEADLINE);
    let s2 = n2.wait_subnet(DEADLINE);
    let dst = format!("10.2.{}.0/24", third(&s2));
    let route = |n: &AgentNode| n.exec(&["ip", "route", "show", &dst]).stdout;
    assert!(
        wait_until(DEADLINE, || route(&n1).contains(&n2.ip)),
        "no route to node 2:\n{}",
        n1.log()
    );
    run(&n1, &format!("ip route del {dst} via {} dev eth0", n2.ip));
    assert!(
        wait_until(DEADLINE, || route(&n1).contains(&n2.ip)),
        "route to node 2 not put back:\n{}",
        n1.log()
    );
    // In the network but outside SubnetMin..SubnetMax: never a lease.
    run(
        &n1,
        "ip route add 10.2.200.0/24 via 192.168.100.99 dev eth0",
    );
    assert!(
        wait_until(DEADLINE, || !n1
            .exec(&["ip", "route", "show", "10.2.200.0/24"])
            .stdout
            .contains("via")),
        "stale route not swept:\n{}",
        n1.log()
    );
    let log = n1.log();
    assert!(
        log.contains(&format!(
            "put back what someone removed or changed: route {dst}"
        )),
        "{log}"
    );
    assert!(
        log.contains("removing stale route 10.2.200.0/24 via 192.168.100.99 on eth0"),
        "{log}"
    );
    assert_eq!(lists(&n1), 1, "{log}");
}

/// `etcdctl` in the member's netns (works while it is cut off).
fn ctl(etcd: &EtcdCluster, args: &[&str]) -> String {
    let m = &etcd.members[0];
    let mut cmd = netboot_tests::exec::nsenter(m.ns.path(), &["etcdctl"]);
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={}", m.url()))
        .args(args);
    netboot_tests::exec::run(cmd, None, Duration::from_secs(15))
        .expect_ok()
        .stdout
}

/// Compact etcd's whole history up to now.
fn compact(etcd: &EtcdCluster) {
    let out = ctl(etcd, &["endpoint", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    let rev = v[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision");
    ctl(etcd, &["compact", &rev.to_string(), "--physical"]);
}

/// Wait for `needle` in the agent's log after byte `from`.
fn logged(n: &AgentNode, from: usize, needle: &str) {
    assert!(
        wait_until(DEADLINE, || n.log()[from..].contains(needle)),
        "no {needle:?} in the agent's log:\n{}",
        tail(&n.log()[from..])
    );
}

#[test]
fn the_watch_resumes_across_outages_and_lists_again_only_after_compaction() {
    require_root();
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "wr1", 85);
    let args: Vec<&str> = EVENTS_ONLY
        .iter()
        .copied()
        .chain(["--watch-progress-interval=1s"])
        .collect();
    let pid = n1.start_agent(&etcd.endpoints(), &args);
    let s1 = n1.wait_subnet(DEADLINE);
    let member = &etcd.members[0];
    let mut fleet = Fleet::joined(
        EtcdV3::new(member.ns.path(), &member.url()),
        [third(&s1)].into(),
        21,
        20,
    );
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let reader = || TableReader::new(n1.ns.path(), "flannel.1");
    let mut nodes = vec![Watched {
        node: &n1,
        key: n1.lease_key(),
        reader: reader(),
        pid,
    }];
    converge(&mut nodes, &fleet.check_store(&real), "initial join");
    assert_eq!(lists(&n1), 1);

    // A quiet watch while the rest of etcd moves on: the progress answers
    // carry the store's revision, so after a compaction of everything up
    // to now and a restart, the watch still resumes (from a revision the
    // history holds) instead of listing again.
    for i in 0..20 {
        ctl(&etcd, &["put", &format!("/elsewhere/k{i}"), "x"]);
    }
    std::thread::sleep(Duration::from_secs(4));
    compact(&etcd);
    let from = n1.log().len();
    etcd.members[0].stop();
    etcd.members[0].restart();
    etcd.wait_healthy();
    logged(&n1, from, "the lease watch broke");
    let expiring = fleet.step(20, 0);
    fleet.wait_expired(&expiring);
    let t = Instant::now();
    converge(
        &mut nodes,
        &fleet.check_store(&real),
        "after an etcd restart",
    );
    eprintln!(
        "agent watch: resumed after a restart, converged in {:?}",
        t.elapsed()
    );
    logged(&n1, from, "resuming it from revision");
    assert_eq!(
        lists(&n1),
        1,
        "listed again after a restart:\n{}",
        tail(&n1.log())
    );

    // Cut off (its link down, no reset): the keepalive or a progress
    // request finds out; the changes made meanwhile come through the
    // resumed watch.
    let from = n1.log().len();
    etcd.members[0].cut_off();
    logged(&n1, from, "the lease watch broke");
    let expiring = fleet.step(20, 1);
    fleet.wait_expired(&expiring);
    etcd.members[0].reconnect();
    converge(&mut nodes, &fleet.check_store(&real), "cut off and back");
    assert_eq!(
        lists(&n1),
        1,
        "listed again after a cut:\n{}",
        tail(&n1.log())
    );

    // Cut off again, and the history compacted past the agent's revision
    // meanwhile: etcd cannot resume the watch, the agent lists again.
    let from = n1.log().len();
    etcd.members[0].cut_off();
    logged(&n1, from, "the lease watch broke");
    let expiring = fleet.step(20, 2);
    fleet.wait_expired(&expiring);
    compact(&etcd);
    etcd.members[0].reconnect();
    converge(
        &mut nodes,
        &fleet.check_store(&real),
        "compacted while cut off",
    );
    logged(&n1, from, "history compacted");
    // The list logs its line after programming what it found, so the
    // kernel can match before the line is written.
    logged(&n1, from, "listed the leases at etcd revision");
    assert_eq!(lists(&n1), 2, "{}", tail(&n1.log()));
    // And watches again from the list's revision.
    let expiring = fleet.step(20, 3);
    fleet.wait_expired(&expiring);
    converge(&mut nodes, &fleet.check_store(&real), "after the list");
    assert_eq!(lists(&n1), 2, "{}", tail(&n1.log()));

    // Our own key rewritten by someone else (another node's value): the
    // agent learns it from the watch and takes a new lease.
    let key = n1.lease_key();
    let other = r#"{"PublicIP":"172.30.9.9","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:5e:09:09:09"}}"#;
    ctl(&etcd, &["put", &key, other]);
    assert!(
        wait_until(DEADLINE, || n1.lease_key() != key),
        "still on {key}:\n{}",
        tail(&n1.log())
    );
    assert!(n1.log().contains("someone else wrote our lease key"));
    let now = n1.lease_key();
    let held = ctl(&etcd, &["get", &now, "--print-value-only"]);
    assert!(held.contains(&n1.ip), "{now} = {held}");
}
