//! `netboot agent`'s backend options on a cluster of namespaces, each
//! checked on the kernel state it shapes and on pod traffic: the vxlan
//! options (MTU, GBP, Learning, Port, MacPrefix ignored), transmit
//! checksum offload, DirectRouting and host-gw across two L2 segments
//! joined by a router, switching vxlan ↔ host-gw, reservations, and
//! `netboot leave` after host-gw and DirectRouting. Needs root; nothing
//! touches the root netns.

use std::time::Duration;

use netboot_tests::agent_support::lease_id;
use netboot_tests::cluster::{tcp_transfer, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::cluster_opts::{
    all_pairs_reach, cluster_gw_routes, expect_within, fdb_dsts, leased_subnet, link_details,
    net_config, network_addr, tx_checksum, GwRoute, PodRef, Routed,
};
use netboot_tests::require_root;

const FAST: &[&str] = &["--resync-interval=5s", "--device-check-interval=1s"];
const CONVERGE: Duration = Duration::from_secs(30);

fn config_key() -> String {
    format!("{PREFIX}/config")
}

/// [`FAST`] and `extra`.
fn with<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    FAST.iter().chain(extra).copied().collect()
}

/// How many times `needle` is in the node's agent log.
fn count(node: &AgentNode, needle: &str) -> usize {
    node.log().matches(needle).count()
}

/// Restart `node`'s agent and wait until it is ready again (its
/// `ready_before + 1`-th "ready after" line).
fn restart(node: &mut AgentNode, ep: &str, args: &[&str]) {
    let ready = count(node, "ready after");
    node.start_agent(ep, args);
    expect_within(
        CONVERGE,
        &format!("agent on {} not ready after its restart", node.ip),
        || count(node, "ready after") > ready,
        || node.log(),
    );
}

#[track_caller]
fn reach(pods: &[PodRef]) {
    if let Err(e) = all_pairs_reach(pods, CONVERGE) {
        panic!("{e}");
    }
}

#[test]
fn vxlan_options_shape_the_device_and_checksum_offload_is_turned_off() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    etcd.put(
        &config_key(),
        &net_config(
            1,
            20,
            r#"{"Type":"vxlan","MTU":1400,"GBP":true,"Learning":true,"Port":4789,"MacPrefix":"0E-2A"}"#,
        ),
    );
    let mut n1 = AgentNode::new(&ul, "vo1", 11);
    let mut n2 = AgentNode::new(&ul, "vo2", 12);
    n1.start_agent(&ep, FAST);
    n2.start_agent(&ep, &with(&["--keep-tx-checksum-offload"]));
    let s1 = leased_subnet(&n1);
    let s2 = leased_subnet(&n2);

    for n in [&n1, &n2] {
        let d = link_details(n, "flannel.1").expect("flannel.1 exists");
        assert_eq!(d["mtu"], 1350, "device MTU = MTU - 50: {d}");
        let info = &d["linkinfo"]["info_data"];
        assert_eq!(d["linkinfo"]["info_kind"], "vxlan", "{d}");
        assert_eq!(info["gbp"], true, "GBP: {d}");
        assert_eq!(info["learning"], true, "Learning: {d}");
        assert_eq!(info["port"], 4789, "Port: {d}");
        assert_eq!(info["id"], 1, "VNI: {d}");
        let env = std::fs::read_to_string(n.subnet_file()).unwrap();
        assert!(env.contains("FLANNEL_MTU=1350\n"), "subnet.env:\n{env}");
        assert!(
            n.log().contains("ignoring Backend MacPrefix: Windows-only"),
            "MacPrefix not reported as ignored:\n{}",
            n.log()
        );
    }

    let (p1, ip1) = n1.add_pod("vp1");
    let (p2, ip2) = n2.add_pod("vp2");
    reach(&[PodRef::new(&n1, p1, &ip1), PodRef::new(&n2, p2, &ip2)]);
    // The pods got the MTU subnet.env gave.
    let pod_link = netboot_tests::run(
        netboot_tests::nsenter(n1.pod(p1), &["ip", "-j", "link", "show", "eth0"]),
        None,
        Duration::from_secs(10),
    )
    .expect_ok();
    assert!(
        pod_link.stdout.contains("\"mtu\":1350"),
        "pod eth0: {}",
        pod_link.stdout
    );
    assert!(n1.flannel_routes().contains(&s2) && n2.flannel_routes().contains(&s1));
    // Full-size TCP segments cross the GBP tunnel at the smaller MTU.
    let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
    let got = tcp_transfer(n2.pod(p2), &ip2, n1.pod(p1), &data);
    assert!(
        got == data,
        "TCP across the tunnel: {} of {} bytes arrived intact",
        got.len(),
        data.len()
    );

    // Transmit checksum offload: off by default, kept with the flag.
    assert_eq!(tx_checksum(&n1, "flannel.1"), Some(false), "default: off");
    assert_eq!(
        tx_checksum(&n2, "flannel.1"),
        Some(true),
        "--keep-tx-checksum-offload leaves the kernel's default (on)"
    );
    // Turned on behind the agent's back: the device check turns it off.
    let offs = count(&n1, "turned transmit checksum offload off");
    n1.exec(&["ethtool", "-K", "flannel.1", "tx", "on"])
        .expect_ok();
    expect_within(
        CONVERGE,
        "tx checksum offload turned on by hand was not turned off again",
        || {
            count(&n1, "turned transmit checksum offload off") > offs
                && tx_checksum(&n1, "flannel.1") == Some(false)
        },
        || n1.log(),
    );
    // With the flag it stays on: a route removed by hand is put back by
    // the same device check, and the offload is still on afterwards.
    let puts = count(&n2, "put back what someone removed");
    n2.exec(&["ip", "route", "del", &s1, "dev", "flannel.1"])
        .expect_ok();
    expect_within(
        CONVERGE,
        "the device check did not put the route back",
        || count(&n2, "put back what someone removed") > puts && n2.flannel_routes().contains(&s1),
        || n2.log(),
    );
    assert_eq!(
        tx_checksum(&n2, "flannel.1"),
        Some(true),
        "the device check must leave tx checksum offload on with --keep-tx-checksum-offload"
    );
    assert_eq!(count(&n2, "turned transmit checksum offload off"), 0);
    reach(&[PodRef::new(&n1, p1, &ip1), PodRef::new(&n2, p2, &ip2)]);
}

/// Three nodes for the routed tests: two on segment A, one on B, each
/// with its agent started and one pod.
struct Three {
    ep: String,
    nodes: Vec<AgentNode>,
    subnets: Vec<String>,
    pod_ips: Vec<String>,
}

impl Three {
    fn start(net: &Routed, etcd: &EtcdCluster, tag: &str) -> Three {
        let ep = etcd.endpoints();
        let mut nodes = vec![
            net.node_a(&format!("{tag}1"), 11),
            net.node_a(&format!("{tag}2"), 12),
            net.node_b(&format!("{tag}3"), 21),
        ];
        for n in &mut nodes {
            n.start_agent(&ep, FAST);
        }
        let subnets: Vec<String> = nodes.iter().map(leased_subnet).collect();
        let mut pod_ips = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            let (p, ip) = n.add_pod(&format!("{tag}p{i}"));
            assert_eq!(p, 0);
            pod_ips.push(ip);
        }
        Three {
            ep,
            nodes,
            subnets,
            pod_ips,
        }
    }

    fn pods(&self, which: &[usize]) -> Vec<PodRef<'_>> {
        which
            .iter()
            .map(|&i| PodRef::new(&self.nodes[i], 0, &self.pod_ips[i]))
            .collect()
    }

    fn direct(&self, i: usize) -> GwRoute {
        GwRoute {
            dst: self.subnets[i].clone(),
            gw: self.nodes[i].ip.clone(),
            onlink: false,
        }
    }
}

/// `netboot leave` on a stopped node: succeeds, and leaves no gateway
/// route into the cluster network on eth0, no vxlan device, no
/// subnet.env.
#[track_caller]
fn leave_cleanly(node: &mut AgentNode, ep: &str) {
    node.stop_agent();
    let out = node.leave(ep);
    assert!(out.success(), "leave failed: {out}");
    assert_eq!(
        cluster_gw_routes(node, "eth0"),
        Vec::new(),
        "leave must remove the gateway routes into the cluster network on eth0"
    );
    assert!(link_details(node, "flannel.1").is_none(), "flannel.1 left");
    assert!(!node.subnet_file().exists(), "subnet.env left");
}

#[test]
fn direct_routing_routes_same_segment_peers_plainly_and_tunnels_the_rest() {
    require_root();
    let net = Routed::new();
    let etcd = net.etcd();
    etcd.put(
        &config_key(),
        &net_config(1, 20, r#"{"Type":"vxlan","DirectRouting":true}"#),
    );
    let mut t = Three::start(&net, &etcd, "dr");
    let macs: Vec<String> = t.nodes.iter().map(|n| n.vtep_mac().unwrap()).collect();

    // Same segment: a plain route via the peer's PublicIP on eth0, no
    // tunnel entries. Other segment: route, ARP and FDB on flannel.1.
    for (me, peer, far) in [(0, 1, 2), (1, 0, 2)] {
        let n = &t.nodes[me];
        let far_gw = network_addr(&t.subnets[far]).to_string();
        expect_within(
            CONVERGE,
            &format!("node {}: peers not programmed as DirectRouting wants", n.ip),
            || {
                cluster_gw_routes(n, "eth0") == vec![t.direct(peer)]
                    && n.flannel_routes() == vec![t.subnets[far].clone()]
                    && fdb_dsts(n, "flannel.1") == vec![t.nodes[far].ip.clone()]
                    && n.neigh_text()
                        .contains(&format!("{far_gw} lladdr {} PERMANENT", macs[far]))
            },
            || {
                format!(
                    "eth0: {:?}\nflannel.1 routes: {:?}\nfdb: {}\nneigh: {}\nlog:\n{}",
                    cluster_gw_routes(n, "eth0"),
                    n.flannel_routes(),
                    n.fdb_text(),
                    n.neigh_text(),
                    n.log()
                )
            },
        );
        let peer_gw = format!("{} ", network_addr(&t.subnets[peer]));
        assert!(
            !n.neigh_text().contains(&peer_gw),
            "no ARP entry for a direct peer: {}",
            n.neigh_text()
        );
        assert!(!n.fdb_text().contains(&macs[peer]), "{}", n.fdb_text());
    }
    // The node on the other segment tunnels to both.
    let b = &t.nodes[2];
    expect_within(
        CONVERGE,
        "segment B node: both peers must go through flannel.1",
        || {
            let mut r = b.flannel_routes();
            r.sort();
            let mut want = vec![t.subnets[0].clone(), t.subnets[1].clone()];
            want.sort();
            let mut f = fdb_dsts(b, "flannel.1");
            f.sort();
            r == want
                && f == vec![t.nodes[0].ip.clone(), t.nodes[1].ip.clone()]
                && cluster_gw_routes(b, "eth0").is_empty()
        },
        || format!("{:?}\n{}\n{}", b.flannel_routes(), b.fdb_text(), b.log()),
    );
    reach(&t.pods(&[0, 1, 2]));

    // DirectRouting turned off (node 1 restarted with the new config):
    // its direct route on eth0 goes, node 2 is tunnelled instead; node 2,
    // still on the old config, keeps its direct route back.
    t.nodes[0].stop_agent();
    etcd.put(&config_key(), &net_config(1, 20, r#"{"Type":"vxlan"}"#));
    restart(&mut t.nodes[0], &t.ep, FAST);
    let n0 = &t.nodes[0];
    expect_within(
        CONVERGE,
        "without DirectRouting every peer goes through flannel.1",
        || {
            let mut r = n0.flannel_routes();
            r.sort();
            let mut want = vec![t.subnets[1].clone(), t.subnets[2].clone()];
            want.sort();
            r == want && cluster_gw_routes(n0, "eth0").is_empty()
        },
        || {
            format!(
                "eth0: {:?}\nflannel.1: {:?}\n{}",
                cluster_gw_routes(n0, "eth0"),
                n0.flannel_routes(),
                n0.log()
            )
        },
    );
    assert_eq!(cluster_gw_routes(&t.nodes[1], "eth0"), vec![t.direct(0)]);
    reach(&t.pods(&[0, 1, 2]));

    // netboot leave on node 2 removes its direct route too; the others
    // drop it.
    let left = t.subnets[1].clone();
    leave_cleanly(&mut t.nodes[1], &t.ep);
    expect_within(
        CONVERGE,
        "the others must drop the node that left",
        || {
            !t.nodes[0].flannel_routes().contains(&left)
                && !t.nodes[2].flannel_routes().contains(&left)
        },
        || format!("{}\n{}", t.nodes[0].log(), t.nodes[2].log()),
    );
    reach(&t.pods(&[0, 2]));
}

#[test]
fn host_gw_refuses_peers_on_another_segment_and_routes_the_rest() {
    require_root();
    let net = Routed::new();
    let etcd = net.etcd();
    etcd.put(&config_key(), &net_config(1, 20, r#"{"Type":"host-gw"}"#));
    let mut t = Three::start(&net, &etcd, "hg");
    let far = &t.nodes[2];
    for (me, peer) in [(0, 1), (1, 0)] {
        let n = &t.nodes[me];
        expect_within(
            CONVERGE,
            &format!(
                "node {}: want one host-gw route (to {}) and a refusal of {}",
                n.ip, t.subnets[peer], far.ip
            ),
            || {
                cluster_gw_routes(n, "eth0") == vec![t.direct(peer)]
                    && n.log().lines().any(|l| {
                        l.contains("ignoring lease")
                            && l.contains(&t.subnets[2].replace('/', "-"))
                            && l.contains(&format!("{} is not on the same L2 segment", far.ip))
                    })
            },
            || format!("{:?}\n{}", cluster_gw_routes(n, "eth0"), n.log()),
        );
        let routes = n.exec(&["ip", "route", "show", &t.subnets[2]]).stdout;
        assert!(
            routes.trim().is_empty(),
            "no route for the refused peer: {routes}"
        );
        assert!(link_details(n, "flannel.1").is_none(), "host-gw: no vxlan");
    }
    expect_within(
        CONVERGE,
        "segment B node must refuse both peers by address",
        || {
            let l = far.log();
            [&t.nodes[0].ip, &t.nodes[1].ip]
                .iter()
                .all(|ip| l.contains(&format!("{ip} is not on the same L2 segment")))
        },
        || far.log(),
    );
    assert_eq!(cluster_gw_routes(far, "eth0"), Vec::new());
    reach(&t.pods(&[0, 1]));

    // A host-gw route removed by hand is put back by the device check.
    let n0 = &t.nodes[0];
    n0.exec(&["ip", "route", "del", &t.subnets[1]]).expect_ok();
    expect_within(
        CONVERGE,
        "a host-gw route removed by hand was not put back",
        || cluster_gw_routes(n0, "eth0") == vec![t.direct(1)],
        || n0.log(),
    );

    // A peer that moves off the segment loses its route: a hand-written
    // lease of a node that does not exist (outside SubnetMin..SubnetMax),
    // first on segment A, then on B.
    let key = format!("{PREFIX}/subnets/10.2.200.0-24");
    let lease =
        |ip: &str| format!(r#"{{"PublicIP":"{ip}","PublicIPv6":null,"BackendType":"host-gw"}}"#);
    let on_a = GwRoute {
        dst: "10.2.200.0/24".into(),
        gw: "192.168.100.99".into(),
        onlink: false,
    };
    etcd.put(&key, &lease("192.168.100.99"));
    expect_within(
        CONVERGE,
        "no host-gw route for a hand-written lease on the segment",
        || cluster_gw_routes(n0, "eth0").contains(&on_a),
        || n0.log(),
    );
    etcd.put(&key, &lease("192.168.101.99"));
    expect_within(
        CONVERGE,
        "the route to a peer that moved off the segment must go",
        || {
            !cluster_gw_routes(n0, "eth0")
                .iter()
                .any(|r| r.dst == on_a.dst)
                && n0
                    .log()
                    .contains("192.168.101.99 is not on the same L2 segment")
        },
        || format!("{:?}\n{}", cluster_gw_routes(n0, "eth0"), n0.log()),
    );
    etcd.delete(&key);
    assert_eq!(cluster_gw_routes(n0, "eth0"), vec![t.direct(1)]);

    leave_cleanly(&mut t.nodes[0], &t.ep);
    let n1 = &t.nodes[1];
    expect_within(
        CONVERGE,
        "the other node must drop the route to the node that left",
        || cluster_gw_routes(n1, "eth0").is_empty(),
        || n1.log(),
    );
}

#[test]
fn switching_backends_removes_the_other_backends_state() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    let vxlan = net_config(1, 20, r#"{"Type":"vxlan"}"#);
    let hostgw = net_config(1, 20, r#"{"Type":"host-gw"}"#);
    etcd.put(&config_key(), &vxlan);
    let mut nodes = [
        AgentNode::new(&ul, "sw1", 11),
        AgentNode::new(&ul, "sw2", 12),
    ];
    // Node 2 never resyncs during the test: what it does about node 1's
    // switch, it does from the watch event alone.
    let slow: &[&str] = &["--resync-interval=10m", "--device-check-interval=1s"];
    nodes[0].start_agent(&ep, FAST);
    nodes[1].start_agent(&ep, slow);
    let subnets: Vec<String> = nodes.iter().map(leased_subnet).collect();
    let mut ips = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        ips.push(n.add_pod(&format!("swp{i}")).1);
    }
    let pods = |nodes: &[AgentNode; 2]| {
        reach(&[
            PodRef::new(&nodes[0], 0, &ips[0]),
            PodRef::new(&nodes[1], 0, &ips[1]),
        ])
    };
    pods(&nodes);
    assert!(nodes[0].flannel_routes().contains(&subnets[1]));

    // vxlan -> host-gw, one node at a time. Node 1 first: node 2, still
    // on vxlan, drops its tunnel entries for node 1 (whose lease now says
    // host-gw) and node 1 routes nothing to node 2's vxlan lease.
    let mac2 = nodes[1].vtep_mac().unwrap();
    nodes[0].stop_agent();
    etcd.put(&config_key(), &hostgw);
    restart(&mut nodes[0], &ep, FAST);
    let n2 = &nodes[1];
    expect_within(
        CONVERGE,
        "a vxlan node must drop the tunnel to a node that switched to host-gw",
        || {
            n2.flannel_routes().is_empty()
                && fdb_dsts(n2, "flannel.1").is_empty()
                && !n2.neigh_text().contains("PERMANENT")
        },
        || format!("{:?}\n{}\n{}", n2.flannel_routes(), n2.fdb_text(), n2.log()),
    );
    let n1 = &nodes[0];
    assert_eq!(cluster_gw_routes(n1, "eth0"), Vec::new());
    assert!(
        n1.log().contains("backend \"vxlan\", not host-gw"),
        "node 1 must say why it skips node 2's lease:\n{}",
        n1.log()
    );
    assert!(!nodes[0].fdb_text().contains(&mac2));
    nodes[1].stop_agent();
    restart(&mut nodes[1], &ep, slow);
    for (me, peer) in [(0, 1), (1, 0)] {
        let n = &nodes[me];
        let want = vec![GwRoute {
            dst: subnets[peer].clone(),
            gw: nodes[peer].ip.clone(),
            onlink: false,
        }];
        expect_within(
            CONVERGE,
            &format!("node {}: host-gw route after the switch", n.ip),
            || cluster_gw_routes(n, "eth0") == want,
            || format!("{:?}\n{}", cluster_gw_routes(n, "eth0"), n.log()),
        );
        assert!(
            link_details(n, "flannel.1").is_none(),
            "flannel.1 must go with vxlan"
        );
        assert!(n
            .log()
            .contains("removing flannel.1 left from an old config"));
        assert_eq!(leased_subnet(n), subnets[me], "the switch kept the subnet");
        let env = std::fs::read_to_string(n.subnet_file()).unwrap();
        assert!(env.contains("FLANNEL_MTU=1500\n"), "{env}");
    }
    pods(&nodes);

    // host-gw -> vxlan.
    for n in &mut nodes {
        n.stop_agent();
    }
    etcd.put(&config_key(), &vxlan);
    restart(&mut nodes[0], &ep, FAST);
    restart(&mut nodes[1], &ep, slow);
    for (me, peer) in [(0, 1), (1, 0)] {
        let n = &nodes[me];
        expect_within(
            CONVERGE,
            &format!("node {}: vxlan state after switching back", n.ip),
            || {
                cluster_gw_routes(n, "eth0").is_empty()
                    && n.flannel_routes() == vec![subnets[peer].clone()]
                    && fdb_dsts(n, "flannel.1") == vec![nodes[peer].ip.clone()]
            },
            || {
                format!(
                    "eth0: {:?}\nflannel.1: {:?}\n{}",
                    cluster_gw_routes(n, "eth0"),
                    n.flannel_routes(),
                    n.log()
                )
            },
        );
        let env = std::fs::read_to_string(n.subnet_file()).unwrap();
        assert!(env.contains("FLANNEL_MTU=1450\n"), "{env}");
    }
    pods(&nodes);
}

#[test]
fn reservations_are_kept_without_a_lease_and_never_taken_by_others() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    // Four subnets, two of them reserved: one for node A (not started
    // yet), one for a node that never comes.
    etcd.put(&config_key(), &net_config(1, 4, r#"{"Type":"vxlan"}"#));
    let res_a = format!("{PREFIX}/subnets/10.2.2.0-24");
    let res_nobody = format!("{PREFIX}/subnets/10.2.3.0-24");
    let nobody = r#"{"PublicIP":"192.168.100.99"}"#;
    etcd.put(&res_a, r#"{"PublicIP":"192.168.100.11"}"#);
    etcd.put(&res_nobody, nobody);
    // Short leases: renewals every ~3 s.
    let args = with(&["--lease-ttl=8s", "--renew-margin=5s"]);

    // B and C take the two free subnets (B its previous one, 10.2.1.0,
    // from the subnet.env it is given); D finds none.
    let mut b = AgentNode::new(&ul, "rb", 12);
    let mut c = AgentNode::new(&ul, "rc", 13);
    std::fs::create_dir_all(b.subnet_file().parent().unwrap()).unwrap();
    std::fs::write(
        b.subnet_file(),
        "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n",
    )
    .unwrap();
    restart(&mut b, &ep, &args);
    restart(&mut c, &ep, &args);
    assert_eq!(leased_subnet(&b), "10.2.1.0/24", "{}", b.log());
    assert_eq!(leased_subnet(&c), "10.2.4.0/24", "reserved subnets taken");
    let mut d = AgentNode::new(&ul, "rd", 14);
    d.start_agent(&ep, &args);
    let d_log = d.log_path();
    expect_within(
        CONVERGE,
        "a 4th node must find no free subnet (the reservations are not free)",
        || d.agent_exited().is_some_and(|s| !s.success()) && d.log().contains("no free subnet"),
        || std::fs::read_to_string(&d_log).unwrap_or_default(),
    );

    // A uses its reservation as is: no lease, no renewal.
    let mut a = AgentNode::new(&ul, "ra", 11);
    a.start_agent(&ep, &args);
    assert_eq!(leased_subnet(&a), "10.2.2.0/24");
    assert!(
        a.log().contains("reusing the reservation 10.2.2.0/24"),
        "{}",
        a.log()
    );
    let mac = a.vtep_mac().unwrap();
    let value = etcd.get(&res_a).unwrap();
    assert!(
        value.contains(&format!("\"VtepMAC\":\"{mac}\"")),
        "A wrote its backend data into the reservation: {value}"
    );
    assert_eq!(lease_id(&etcd, &res_a), None, "a reservation gets no lease");
    // Let B and C renew twice more (A's renew time would have come too).
    let renewed = [
        count(&b, "renewed the lease"),
        count(&c, "renewed the lease"),
    ];
    expect_within(
        CONVERGE,
        "B and C did not renew their leases",
        || {
            count(&b, "renewed the lease") >= renewed[0] + 2
                && count(&c, "renewed the lease") >= renewed[1] + 2
        },
        || format!("{}\n{}", b.log(), c.log()),
    );
    assert_eq!(
        lease_id(&etcd, &res_a),
        None,
        "the reservation still has no lease"
    );
    assert_eq!(count(&a, "renewed the lease"), 0, "{}", a.log());
    assert_eq!(etcd.get(&res_a).as_deref(), Some(value.as_str()));
    assert_eq!(etcd.get(&res_nobody).as_deref(), Some(nobody));
    assert_eq!(lease_id(&etcd, &res_nobody), None);
    assert!(lease_id(&etcd, &b.lease_key()).is_some(), "B holds a lease");

    // A's reserved subnet carries traffic like any lease.
    let (pa, ipa) = a.add_pod("rpa");
    let (pb, ipb) = b.add_pod("rpb");
    reach(&[PodRef::new(&a, pa, &ipa), PodRef::new(&b, pb, &ipb)]);
    // An operator turns C's running lease into a reservation (flannel's
    // documented way: put the value again without a lease). C must stop
    // renewing it, never turning it back into a lease.
    let key_c = c.lease_key();
    let value_c = etcd.get(&key_c).unwrap();
    etcd.put(&key_c, &value_c);
    expect_within(
        CONVERGE,
        "C did not notice that its lease became a reservation",
        || c.log().contains("became a reservation"),
        || c.log(),
    );
    let rb = count(&b, "renewed the lease");
    expect_within(
        CONVERGE,
        "B did not renew its lease",
        || count(&b, "renewed the lease") >= rb + 2,
        || b.log(),
    );
    assert_eq!(
        lease_id(&etcd, &key_c),
        None,
        "C turned its reservation back into a lease:\n{}",
        c.log()
    );
    assert_eq!(etcd.get(&key_c).as_deref(), Some(value_c.as_str()));

    // netboot leave keeps A's reservation (an operator's, no TTL) but
    // takes A's backend data out of it: the others drop their routes to
    // A, and the subnet stays A's.
    a.stop_agent();
    let out = a.leave(&ep);
    assert!(out.success(), "leave failed: {out}");
    assert_eq!(
        etcd.get(&res_a).as_deref(),
        Some(r#"{"PublicIP":"192.168.100.11","PublicIPv6":null,"BackendType":""}"#),
        "leave must keep the reservation, without backend data"
    );
    assert_eq!(lease_id(&etcd, &res_a), None);
    expect_within(
        CONVERGE,
        "B still routes to the node that left",
        || !b.flannel_routes().contains(&"10.2.2.0/24".to_string()),
        || b.log(),
    );
    assert!(link_details(&a, "flannel.1").is_none());

    // A node whose subnet.env names a subnet that now belongs to another
    // node (its own lease expired and was taken) leaves without touching
    // that node's lease or reservation.
    let z = AgentNode::new(&ul, "rz", 15);
    std::fs::create_dir_all(z.subnet_file().parent().unwrap()).unwrap();
    std::fs::copy(b.subnet_file(), z.subnet_file()).unwrap();
    let key_b = b.lease_key();
    let value_b = etcd.get(&key_b).unwrap();
    let out = z.leave(&ep);
    assert!(out.success(), "leave failed: {out}");
    assert!(
        out.stderr.contains("leaving") && out.stderr.contains("alone"),
        "leave must say why it keeps another node's lease: {out}"
    );
    assert_eq!(etcd.get(&key_b).as_deref(), Some(value_b.as_str()));
    assert!(lease_id(&etcd, &key_b).is_some());

    // A reservation for a node that holds a lease wins at its next
    // start, and the lease is released: B moves from 10.2.1.0 to the
    // subnet reserved for nobody so far, now reserved for B (its key sorts
    // after B's lease, which a first-key-wins choice would keep).
    let old_b = b.lease_key();
    etcd.put(&res_nobody, r#"{"PublicIP":"192.168.100.12"}"#);
    b.stop_agent();
    restart(&mut b, &ep, &args);
    assert_eq!(leased_subnet(&b), "10.2.3.0/24", "{}", b.log());
    assert_eq!(etcd.get(&old_b), None, "B's old lease must be released");
    assert_eq!(lease_id(&etcd, &res_nobody), None, "still a reservation");
}
