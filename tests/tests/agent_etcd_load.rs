//! What the agent asks of etcd (issue 20), measured on etcd's side where
//! it can be:
//!
//! - start-up reads the leases once: etcd's gRPC bytes sent while an agent
//!   starts against 400 leases come to one list of them, not one per
//!   start-up step (the VtepMACs, the lease choice, the first programming);
//! - progress requests: writes outside the lease prefix move etcd's
//!   revision without a single watch event, and the agent's
//!   `netboot_agent_watch_revision` follows them through the answers
//!   alone (etcd's own progress notifications come every 10 minutes, far
//!   beyond the test's deadline);
//! - a member frozen under the watch (SIGSTOP: the TCP connection stays up
//!   and the kernel still acknowledges, so nothing breaks by itself) is
//!   found by the unanswered progress request, before the HTTP/2
//!   keepalive would find it, and the watch moves to another member.
//!
//! Needs root; nothing touches the root netns.

use std::collections::BTreeSet;

use netboot_tests::agent_load::EtcdV3;
use netboot_tests::agent_support::etcd_in_use;
use netboot_tests::cluster::{wait_until, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::lease_sim::{converge, tail, Fleet, Watched, DEADLINE};
use netboot_tests::require_root;
use netboot_tests::scale::{write_sims, RouteCounter, Scrape};

/// 250 subnets: room for the simulated nodes.
const CONFIG: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.250.0","Backend":{"Type":"vxlan"}}"#;
const PORT: u16 = 9471;

/// The agent's metrics, from inside its node.
fn metrics(n: &AgentNode) -> String {
    n.metrics(PORT)
}

/// The value of sample `name` (with its labels as printed), if served.
fn metric(n: &AgentNode, name: &str) -> Option<f64> {
    n.metric(PORT, name)
}

/// etcd's revision now, from its first serving member.
fn etcd_revision(etcd: &EtcdCluster) -> i64 {
    let out = etcd.ctl(&["endpoint", "status", "-w", "json"]).expect_ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("status JSON");
    v[0]["Status"]["header"]["revision"]
        .as_i64()
        .expect("revision")
}

fn third(subnet: &str) -> u8 {
    subnet.split('.').nth(2).unwrap().parse().unwrap()
}

#[test]
fn start_up_lists_the_leases_once() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let member = &etcd.members[0];
    let v3 = EtcdV3::new(member.ns.path(), &member.url());
    etcd.put(&format!("{PREFIX}/config"), netboot_tests::scale::CONFIG);
    const N: u32 = 400;
    write_sims(&v3, 0, N);
    let sent = || {
        Scrape::take(member.ns.path(), &member.url())
            .expect("etcd metrics")
            .sent_bytes()
    };
    // What one list of the leases costs etcd, as the test makes it.
    let before = sent();
    let (listed, _) = v3.list(&format!("{PREFIX}/subnets/"));
    assert_eq!(listed.len(), N as usize);
    let one_list = sent() - before;

    let mut n1 = AgentNode::new(&ul, "ls1", 91);
    let before = sent();
    n1.start_agent(&etcd.endpoints(), &[&format!("--healthz-port={PORT}")]);
    n1.wait_subnet(DEADLINE);
    let mut routes = RouteCounter::new(n1.ns.path());
    assert!(
        wait_until(DEADLINE, || routes.count() == N as usize),
        "{} of {N} routes:\n{}",
        routes.count(),
        tail(&n1.log())
    );
    assert!(wait_until(DEADLINE, || n1.log().contains("ready after")));
    let start_up = sent() - before;
    eprintln!(
        "agent etcd load: start-up sent {start_up:.0} bytes; one list of {N} leases is \
         {one_list:.0}"
    );
    // Everything else start-up asks (the config, a grant, a txn, the
    // watch and its own lease's event) is a few hundred bytes; each extra
    // list would add a whole `one_list`.
    assert!(
        start_up >= one_list * 0.9,
        "start-up read less than one list"
    );
    assert!(
        start_up < one_list * 1.5,
        "start-up cost {:.2} lists of the leases",
        start_up / one_list
    );
    let lists = metric(
        &n1,
        "netboot_agent_etcd_request_duration_seconds_count{op=\"list\"}",
    );
    assert_eq!(lists, Some(1.0), "{}", metrics(&n1));
}

#[test]
fn progress_answers_carry_the_revision_of_a_quiet_watch() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "pg1", 92);
    n1.start_agent(
        &etcd.endpoints(),
        &[
            &format!("--healthz-port={PORT}"),
            "--watch-progress-interval=1s",
        ],
    );
    n1.wait_subnet(DEADLINE);
    let rev = || metric(&n1, "netboot_agent_watch_revision").unwrap_or(0.0) as i64;
    let now = etcd_revision(&etcd);
    assert!(
        wait_until(DEADLINE, || rev() == now),
        "watch revision {} while etcd is at {now}",
        rev()
    );
    // Writes outside the prefix: etcd's revision moves, the lease watch
    // gets no event.
    for i in 0..20 {
        etcd.put(&format!("/elsewhere/k{i}"), "x");
    }
    let now = etcd_revision(&etcd);
    assert!(
        wait_until(DEADLINE, || rev() == now),
        "watch revision {} while etcd is at {now}: the progress answers did not carry it\n{}",
        rev(),
        tail(&n1.log())
    );
    let log = n1.log();
    assert!(!log.contains("the lease watch broke"), "{}", tail(&log));
    assert_eq!(metric(&n1, "netboot_agent_watch_restarts_total"), Some(0.0));
}

#[test]
fn a_frozen_member_is_found_by_the_progress_request_and_the_watch_moves() {
    require_root();
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 3);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "fz1", 93);
    // Progress asked every second, due within 3 s; the keepalive pings
    // 6 s after the last thing read and waits 3 s more.
    let pid = n1.start_agent(
        &etcd.endpoints(),
        &["--watch-progress-interval=1s", "--etcd-timeout=3", "-v=1"],
    );
    let s1 = n1.wait_subnet(DEADLINE);
    let used = etcd_in_use(&n1).expect("a member in use");
    let frozen = etcd
        .members
        .iter()
        .position(|m| m.url() == used)
        .expect("member in use");
    let live = &etcd.members[(frozen + 1) % 3];
    let mut fleet = Fleet::new(
        EtcdV3::new(live.ns.path(), &live.url()),
        [third(&s1)].into(),
        31,
    );
    for _ in 0..5 {
        fleet.join();
    }
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let mut nodes = vec![Watched {
        node: &n1,
        key: n1.lease_key(),
        reader: netboot_tests::agent_load::TableReader::new(n1.ns.path(), "flannel.1"),
        pid,
    }];
    converge(&mut nodes, &fleet.check_store(&real), "initial join");

    let from = n1.log().len();
    etcd.members[frozen].pause();
    assert!(
        wait_until(DEADLINE, || n1.log()[from..].contains(
            "the lease watch broke (no answer to a progress request within 3 s)"
        )),
        "the frozen member was not found by a progress request:\n{}",
        tail(&n1.log()[from..])
    );
    // Changes made meanwhile come through the watch, resumed elsewhere.
    for _ in 0..5 {
        fleet.join();
    }
    converge(&mut nodes, &fleet.check_store(&real), "member frozen");
    let moved_to = etcd_in_use(&n1).expect("a member in use");
    assert_ne!(moved_to, used, "{}", tail(&n1.log()[from..]));
    let log = n1.log();
    assert!(log[from..].contains("resuming it from revision"), "{log}");
    assert_eq!(
        log.matches("listed the leases at etcd revision").count(),
        1,
        "listed again:\n{}",
        tail(&log)
    );
    etcd.members[frozen].resume();
}
