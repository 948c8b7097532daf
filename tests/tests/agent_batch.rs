//! A burst of lease changes reaches the kernel batched (issue 20): 300
//! nodes joining at once (flanneld's writes: a Grant, then a Put with it,
//! 64 in flight) are 900 neighbour, FDB and route requests, and the agent
//! sends them many to a netlink datagram, as its
//! `netboot_agent_netlink_{datagrams,requests}_total` counters show. An
//! agent applying the burst lease by lease (or a datagram per request)
//! would send a datagram per three requests (or per request).
//!
//! Needs root; nothing touches the root netns.

use std::collections::BTreeSet;
use std::time::Instant;

use netboot_tests::agent_load::{EtcdV3, TableReader};
use netboot_tests::cluster::{wait_until, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::lease_sim::{converge, tail, Watched, DEADLINE};
use netboot_tests::require_root;
use netboot_tests::scale::{write_sims, CONFIG};

const PORT: u16 = 9472;
/// Nodes there before the burst, and nodes joining in it.
const BEFORE: u32 = 20;
const BURST: u32 = 300;

/// A counter from the agent's `/metrics`, read from inside its node.
fn counter(n: &AgentNode, name: &str) -> f64 {
    n.metric(PORT, name)
        .unwrap_or_else(|| panic!("no {name} in the agent's metrics:\n{}", n.metrics(PORT)))
}

#[test]
fn a_burst_of_joins_reaches_the_kernel_in_batched_datagrams() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let member = &etcd.members[0];
    let v3 = EtcdV3::new(member.ns.path(), &member.url());
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    write_sims(&v3, 0, BEFORE);

    let mut n1 = AgentNode::new(&ul, "bt1", 94);
    let pid = n1.start_agent(&etcd.endpoints(), &[&format!("--healthz-port={PORT}")]);
    n1.wait_subnet(DEADLINE);
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let mut nodes = vec![Watched {
        node: &n1,
        key: n1.lease_key(),
        reader: TableReader::new(n1.ns.path(), "flannel.1"),
        pid,
    }];
    let prefix = format!("{PREFIX}/subnets/");
    let (leases, _) = v3.list(&prefix);
    assert_eq!(leases.len(), BEFORE as usize + real.len());
    converge(&mut nodes, &leases, "before the burst");
    assert!(wait_until(DEADLINE, || n1.log().contains("ready after")));

    let datagrams = "netboot_agent_netlink_datagrams_total";
    let requests = "netboot_agent_netlink_requests_total";
    let (d0, r0) = (counter(&n1, datagrams), counter(&n1, requests));
    write_sims(&v3, BEFORE, BEFORE + BURST);
    let written = Instant::now();
    let (leases, _) = v3.list(&prefix);
    assert_eq!(leases.len(), (BEFORE + BURST) as usize + real.len());
    // Every route, neighbour and FDB entry of the 320 nodes, checked with
    // netkit and with iproute2.
    converge(&mut nodes, &leases, "after the burst");
    let in_kernel = written.elapsed();
    // The counters are published on the agent's next turn of its loop.
    let want = f64::from(BURST * 3);
    assert!(
        wait_until(DEADLINE, || counter(&n1, requests) - r0 >= want),
        "{} netlink requests for {BURST} joins, want at least {want}\n{}",
        counter(&n1, requests) - r0,
        tail(&n1.log())
    );
    let (sent_d, sent_r) = (counter(&n1, datagrams) - d0, counter(&n1, requests) - r0);
    eprintln!(
        "agent batch: {BURST} joins took {sent_r} netlink requests in {sent_d} datagrams; \
         last entry in the kernel {in_kernel:?} after the last write returned"
    );
    assert!(
        sent_d <= sent_r / 8.0,
        "{sent_r} netlink requests went in {sent_d} datagrams: the burst was not batched\n{}",
        tail(&n1.log())
    );
}
