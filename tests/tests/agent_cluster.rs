//! `netboot agent` on a cluster of namespaces: an underlay bridge in its own
//! netns, etcd members and nodes attached to it, pods attached with
//! netboot-cni in native mode. Needs root; nothing touches the root netns.

use std::time::{Duration, Instant};

use netboot_tests::agent_support::{etcd_in_use, lease_id, leases_of, signal, subnet_of};
use netboot_tests::cluster::{
    in_ns, ping_within, tcp_transfer, wait_until, AgentNode, EtcdCluster, Underlay, CONFIG, PREFIX,
};
use netboot_tests::exec::run;
use netboot_tests::require_root;
use serde::Deserialize;

const FAST: &[&str] = &["--resync-interval=5s", "--device-check-interval=1s"];
const CONVERGE: Duration = Duration::from_secs(30);

/// flanneld's `lease.LeaseAttrs` with the vxlan backend data, decoded
/// strictly: any other field is an error.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct LeaseAttrs {
    PublicIP: String,
    PublicIPv6: Option<String>,
    BackendType: String,
    BackendData: VxlanLeaseAttrs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
struct VxlanLeaseAttrs {
    VNI: u32,
    VtepMAC: String,
}

fn payload(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &c| {
        (h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3)
    })
}

#[track_caller]
fn assert_reach(from: &AgentNode, pod: usize, ip: &str, what: &str) {
    assert!(
        ping_within(from.pod(pod), ip, CONVERGE),
        "{what}: no ping reply from {ip}\n--- agent log on {} ---\n{}\nroutes: {:?}",
        from.ip,
        from.log(),
        from.flannel_routes()
    );
}

#[test]
fn agents_connect_pods_across_nodes_and_follow_joins_leaves_and_restarts() {
    require_root();
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();

    // An agent started before the config exists says so and waits.
    let mut n1 = AgentNode::new(&ul, "n1", 11);
    n1.start_agent(&ep, FAST);
    assert!(
        wait_until(Duration::from_secs(15), || n1
            .log()
            .contains("netboot init")),
        "no hint about `netboot init`:\n{}",
        n1.log()
    );
    assert!(!n1.subnet_file().exists());
    assert!(n1.agent_exited().is_none(), "the agent must keep waiting");
    etcd.put(&format!("{PREFIX}/config"), CONFIG);

    let mut n2 = AgentNode::new(&ul, "n2", 12);
    let mut n3 = AgentNode::new(&ul, "n3", 13);
    let t0 = Instant::now();
    n2.start_agent(&ep, FAST);
    n3.start_agent(&ep, FAST);
    let s1 = n1.wait_subnet(CONVERGE);
    let s2 = n2.wait_subnet(CONVERGE);
    let s3 = n3.wait_subnet(CONVERGE);
    assert!(s1 != s2 && s2 != s3 && s1 != s3, "{s1} {s2} {s3}");
    let env = std::fs::read_to_string(n1.subnet_file()).unwrap();
    assert_eq!(
        env,
        format!("FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET={s1}\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n")
    );

    let (p1, ip1) = n1.add_pod("p1");
    let (p2, ip2) = n2.add_pod("p2");
    let (p3, ip3) = n3.add_pod("p3");
    assert_reach(&n1, p1, &ip2, "node1 pod -> node2 pod");
    eprintln!(
        "[timing] agent start -> cross-node pod reachability: {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert_reach(&n1, p1, &ip3, "node1 pod -> node3 pod");
    assert_reach(&n3, p3, &ip1, "node3 pod -> node1 pod");

    // TCP across nodes carries data intact.
    let data = payload(1 << 20);
    let got = tcp_transfer(n2.pod(p2), &ip2, n1.pod(p1), &data);
    assert_eq!(got.len(), data.len(), "TCP transfer length");
    assert_eq!(checksum(&got), checksum(&data), "TCP transfer content");

    // Our lease is flanneld's exact JSON.
    let key = n1.lease_key();
    let raw = etcd.get(&key).expect("own lease");
    let attrs: LeaseAttrs = serde_json::from_str(&raw).expect("strict flanneld lease decode");
    let mac = n1.vtep_mac().expect("flannel.1");
    assert_eq!(attrs.PublicIP, n1.ip);
    assert_eq!(attrs.BackendType, "vxlan");
    assert_eq!(attrs.BackendData.VNI, 1);
    assert_eq!(attrs.BackendData.VtepMAC, mac);
    assert_eq!(
        raw,
        format!(
            r#"{{"PublicIP":"{}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{mac}"}}}}"#,
            n1.ip
        )
    );
    let ttl = etcd.key_ttl(&key).expect("lease TTL");
    assert!(ttl > 23 * 3600, "default TTL is 24h, got {ttl}");

    // A foreign lease written by hand as flanneld writes it is programmed
    // (outside SubnetMin..SubnetMax, so it cannot be an agent's own key).
    let foreign_key = format!("{PREFIX}/subnets/10.2.200.0-24");
    let foreign = r#"{"PublicIP":"192.168.100.99","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:99"}}"#;
    etcd.put_with_lease(&foreign_key, foreign, 600);
    assert!(
        wait_until(CONVERGE, || n1
            .flannel_routes()
            .contains(&"10.2.200.0/24".to_string())
            && n1
                .neigh_text()
                .contains("10.2.200.0 lladdr aa:bb:cc:00:00:99 PERMANENT")
            && n1
                .fdb_text()
                .contains("aa:bb:cc:00:00:99 dst 192.168.100.99")),
        "foreign lease not programmed: routes {:?}\n{}\n{}\n{}",
        n1.flannel_routes(),
        n1.neigh_text(),
        n1.fdb_text(),
        n1.log()
    );
    etcd.delete(&foreign_key);
    assert!(
        wait_until(CONVERGE, || !n1
            .flannel_routes()
            .contains(&"10.2.200.0/24".to_string())
            && !n1.fdb_text().contains("aa:bb:cc:00:00:99")
            && !n1.neigh_text().contains("10.2.200.0 ")),
        "deleted foreign lease still programmed"
    );

    // A 4th node joins; the others pick it up without a restart.
    let mut n4 = AgentNode::new(&ul, "n4", 14);
    let t4 = Instant::now();
    n4.start_agent(&ep, FAST);
    n4.wait_subnet(CONVERGE);
    let (p4, ip4) = n4.add_pod("p4");
    assert_reach(&n1, p1, &ip4, "node1 pod -> new node4 pod");
    eprintln!(
        "[timing] 4th node agent start -> reachable from node1: {:.2} s",
        t4.elapsed().as_secs_f64()
    );
    assert_reach(&n4, p4, &ip3, "node4 pod -> node3 pod");

    // Restarting an agent keeps its subnet; SIGTERM keeps lease and device.
    let key2 = n2.lease_key();
    n2.stop_agent();
    assert!(etcd.get(&key2).is_some(), "SIGTERM must keep the lease");
    assert!(n2.vtep_mac().is_some(), "SIGTERM must keep flannel.1");
    assert_reach(&n1, p1, &ip2, "node2 pod while its agent is stopped");
    let mac2 = n2.vtep_mac();
    n2.start_agent(&ep, FAST);
    assert!(
        wait_until(CONVERGE, || n2.log().matches("ready after").count() >= 2),
        "restarted agent not ready:\n{}",
        n2.log()
    );
    assert_eq!(n2.wait_subnet(CONVERGE), s2, "restart changed the subnet");
    assert_eq!(n2.vtep_mac(), mac2, "restart changed the VtepMAC");
    assert_reach(&n1, p1, &ip2, "node2 pod after agent restart");

    // flannel.1 deleted by someone else is recreated with its routes.
    n2.exec(&["ip", "link", "del", "flannel.1"]).expect_ok();
    assert!(
        wait_until(CONVERGE, || n2.flannel_routes().len() >= 3),
        "flannel.1 not recreated with routes:\n{}",
        n2.log()
    );
    assert_eq!(
        n2.vtep_mac(),
        mac2,
        "recreated device must keep the VtepMAC"
    );
    assert_reach(
        &n2,
        p2,
        &ip1,
        "node2 pod -> node1 pod after device recreation",
    );

    // etcd restart: traffic keeps flowing, and the watch comes back.
    etcd.members[0].stop();
    assert_reach(&n1, p1, &ip3, "node1 -> node3 with etcd down");
    etcd.members[0].restart();
    etcd.wait_healthy();
    assert_reach(&n3, p3, &ip2, "node3 -> node2 after etcd restart");
    etcd.put_with_lease(&foreign_key, foreign, 600);
    assert!(
        wait_until(Duration::from_secs(45), || n1
            .flannel_routes()
            .contains(&"10.2.200.0/24".to_string())),
        "no lease events after the etcd restart:\n{}",
        n1.log()
    );
    etcd.delete(&foreign_key);
    assert!(
        etcd.get(&key).is_some(),
        "node1's lease survived the etcd restart"
    );

    // A node that leaves disappears from the others.
    let s3_net = subnet_of(&s3);
    let mac3 = n3.vtep_mac().unwrap();
    n3.stop_agent();
    let out = n3.leave(&ep);
    assert!(out.success(), "leave failed: {out}");
    assert!(etcd.get(&n1.lease_key()).is_some());
    assert!(
        !etcd
            .keys(&format!("{PREFIX}/subnets/"))
            .iter()
            .any(|k| k.ends_with(&s3_net.replace('/', "-"))),
        "node3's lease still in etcd"
    );
    assert!(
        wait_until(CONVERGE, || !n1.flannel_routes().contains(&s3_net)
            && !n1.fdb_text().contains(&mac3)
            && !n4.flannel_routes().contains(&s3_net)),
        "node3 still programmed on the others: {:?} {}",
        n1.flannel_routes(),
        n1.fdb_text()
    );
    assert!(n3.vtep_mac().is_none(), "leave must delete flannel.1");
    assert!(!n3.subnet_file().exists(), "leave must remove subnet.env");
    assert_reach(&n1, p1, &ip4, "remaining nodes still reach each other");
}

#[test]
fn agents_survive_losing_the_etcd_member_they_use() {
    require_root();
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 3);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    // Short leases so renewals happen during the test (every ~6 s).
    let args = [FAST, &["--lease-ttl=20s", "--renew-margin=14s"]].concat();
    let mut n1 = AgentNode::new(&ul, "f1", 21);
    let mut n2 = AgentNode::new(&ul, "f2", 22);
    n1.start_agent(&ep, &args);
    n2.start_agent(&ep, &args);
    n1.wait_subnet(CONVERGE);
    n2.wait_subnet(CONVERGE);
    let (p1, _ip1) = n1.add_pod("fp1");
    let (_p2, ip2) = n2.add_pod("fp2");
    assert_reach(&n1, p1, &ip2, "pods across nodes on a 3-member cluster");

    // Stop the member node1's agent talks to.
    let url = etcd_in_use(&n1).expect("agent names its etcd endpoint");
    let i = etcd
        .members
        .iter()
        .position(|m| m.url() == url)
        .expect("endpoint is a member");
    eprintln!("stopping etcd member {url} used by node1");
    let before = n1.log().len();
    etcd.members[i].stop();
    assert_reach(&n1, p1, &ip2, "traffic with the used member stopped");

    // Lease events still arrive (the watch failed over).
    let foreign_key = format!("{PREFIX}/subnets/10.2.201.0-24");
    etcd.put(
        &foreign_key,
        r#"{"PublicIP":"192.168.100.98","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"aa:bb:cc:00:00:98"}}"#,
    );
    assert!(
        wait_until(Duration::from_secs(45), || n1
            .flannel_routes()
            .contains(&"10.2.201.0/24".to_string())),
        "no lease events after losing the member:\n{}",
        n1.log()
    );
    // Renewals keep the 20 s lease alive past its original expiry.
    std::thread::sleep(Duration::from_secs(25));
    let key = n1.lease_key();
    assert!(etcd.get(&key).is_some(), "lease expired:\n{}", n1.log());
    let after = &n1.log()[before..];
    assert!(
        after.contains("renewed the lease"),
        "no renewal after failover:\n{after}"
    );
    assert!(n1.agent_exited().is_none(), "agent died:\n{}", n1.log());
    // etcd errors are one plain line each: endpoint and cause, no
    // tonic/hyper wrapper chains or status dumps.
    eprintln!("--- node1 agent after losing its etcd member ---\n{after}");
    for noise in [
        "MetadataMap",
        "details: [",
        "tcp connect error",
        "(os error",
        "transport error",
    ] {
        assert!(
            !after.contains(noise),
            "{noise:?} in the agent log:\n{after}"
        );
    }
    assert!(
        ping_within(n1.pod(p1), &ip2, CONVERGE),
        "traffic after renewals through another member failed\n--- node1 ---\n{}\n--- node2 ---\n{}\nroutes on node1: {:?}",
        n1.log(),
        n2.log(),
        n1.flannel_routes()
    );
    etcd.members[i].restart();
    etcd.wait_healthy();
}

#[test]
fn agent_replaces_stale_devices_and_reports_an_exhausted_range() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    // Room for exactly one subnet.
    etcd.put(
        &format!("{PREFIX}/config"),
        r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.1.0","Backend":{"Type":"vxlan"}}"#,
    );
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "s1", 31);
    // Left over from an old config: flannel.1 with another VNI and port,
    // flannel.2, and cni0 with an old subnet's address and no pods.
    for argv in [
        &[
            "ip",
            "link",
            "add",
            "flannel.1",
            "type",
            "vxlan",
            "id",
            "7",
            "local",
            "192.168.100.31",
            "dev",
            "eth0",
            "dstport",
            "4789",
        ][..],
        &[
            "ip",
            "link",
            "add",
            "flannel.2",
            "type",
            "vxlan",
            "id",
            "2",
            "dstport",
            "8472",
        ],
        &["ip", "link", "add", "cni0", "type", "bridge"],
        &["ip", "addr", "add", "10.2.9.1/24", "dev", "cni0"],
    ] {
        n1.exec(argv).expect_ok();
    }
    let masq = [FAST, &["--ip-masq"]].concat();
    n1.start_agent(&ep, &masq);
    assert_eq!(n1.wait_subnet(CONVERGE), "10.2.1.1/24");
    let env = std::fs::read_to_string(n1.subnet_file()).unwrap();
    assert!(env.contains("FLANNEL_IPMASQ=true\n"), "{env}");
    let nft = n1
        .exec(&["nft", "list", "table", "inet", "netboot"])
        .expect_ok()
        .stdout;
    assert!(
        nft.contains(
            "ip saddr 10.2.1.0/24 ip daddr != 224.0.0.0/4 ip daddr != 10.2.0.0/16 masquerade"
        ),
        "{nft}"
    );
    assert!(nft.contains("ip saddr 10.2.0.0/16 accept"), "{nft}");
    assert!(nft.contains("ip daddr 10.2.0.0/16 accept"), "{nft}");
    assert_eq!(
        n1.exec(&["sysctl", "-n", "net.ipv4.ip_forward"])
            .stdout
            .trim(),
        "1"
    );
    let d = n1.ip_json(&["-d", "link", "show", "flannel.1"]);
    let info = &d[0]["linkinfo"]["info_data"];
    assert_eq!(info["id"], 1, "{d}");
    assert_eq!(info["port"], 8472, "{d}");
    assert_eq!(info["local"], "192.168.100.31", "{d}");
    assert_eq!(d[0]["mtu"], 1450, "{d}");
    let links = n1.ns.link_names();
    assert!(!links.contains(&"flannel.2".to_string()), "{links:?}");
    assert!(
        !links.contains(&"cni0".to_string()),
        "stale cni0 kept: {links:?}"
    );
    assert_eq!(
        n1.ns.ipv4_addrs("flannel.1"),
        vec!["10.2.1.0/32".to_string()]
    );
    let log = n1.log();
    assert!(log.contains("does not match"), "{log}");

    // A second node finds the range exhausted and says so.
    let mut n2 = AgentNode::new(&ul, "s2", 32);
    n2.start_agent(&ep, FAST);
    assert!(
        wait_until(CONVERGE, || n2.agent_exited().is_some()),
        "agent with an exhausted range kept running:\n{}",
        n2.log()
    );
    assert!(n2.log().contains("no free subnet"), "{}", n2.log());
    assert!(!n2.subnet_file().exists());

    // The lease key deleted behind the agent's back comes back (flanneld
    // would exit here).
    let key = n1.lease_key();
    etcd.delete(&key);
    assert!(
        wait_until(CONVERGE, || etcd.get(&key).is_some()),
        "lease not re-acquired:\n{}",
        n1.log()
    );
    assert!(n1.agent_exited().is_none());

    // leave removes the rules too.
    n1.stop_agent();
    let out = n1.leave(&ep);
    assert!(out.success(), "{out}");
    assert!(etcd.get(&key).is_none());
    let nft = n1.exec(&["nft", "list", "table", "inet", "netboot"]).stdout;
    assert!(
        !nft.contains("10.2.1.0/24") && !nft.contains("10.2.0.0/16 accept"),
        "{nft}"
    );
    eprintln!("--- agent log (node s1) ---\n{}", n1.log());
    eprintln!("--- leave output ---\n{}", out.stderr);
}

/// `iptables-save -t filter` in a node.
fn filter_table(n: &AgentNode) -> String {
    n.exec(&["iptables-save", "-t", "filter"])
        .expect_ok()
        .stdout
}

#[test]
fn agents_forward_under_iptables_drop_and_recover_revoked_and_expired_leases() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "d1", 41);
    let mut n2 = AgentNode::new(&ul, "d2", 42);
    // What Docker does to a node: forwarded traffic is dropped unless a
    // rule in iptables filter FORWARD accepts it.
    for n in [&n1, &n2] {
        n.exec(&["iptables", "-P", "FORWARD", "DROP"]).expect_ok();
    }
    n1.start_agent(&ep, FAST);
    // node2's lease is short, to let it expire while its agent is stopped.
    let short = [FAST, &["--lease-ttl=6s", "--renew-margin=3s"]].concat();
    let pid2 = n2.start_agent(&ep, &short);
    let s1 = n1.wait_subnet(CONVERGE);
    let s2 = n2.wait_subnet(CONVERGE);
    let (p1, ip1) = n1.add_pod("dp1");
    let (p2, ip2) = n2.add_pod("dp2");
    assert_reach(&n1, p1, &ip2, "node1 pod -> node2 pod under FORWARD DROP");
    assert_reach(&n2, p2, &ip1, "node2 pod -> node1 pod under FORWARD DROP");
    let data = payload(256 << 10);
    let got = tcp_transfer(n2.pod(p2), &ip2, n1.pod(p1), &data);
    assert_eq!(checksum(&got), checksum(&data), "TCP under FORWARD DROP");
    let jump = "-A FORWARD -m comment --comment \"netboot forward\" -j NETBOOT-FWD";
    let f = filter_table(&n1);
    assert!(f.contains(":FORWARD DROP"), "{f}");
    assert!(f.contains(jump), "{f}");
    assert!(
        f.contains(
            "-A NETBOOT-FWD -s 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT"
        ) && f.contains(
            "-A NETBOOT-FWD -d 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT"
        ),
        "{f}"
    );

    // Control: without the jump node1 drops the traffic (so the rules are
    // what lets it through); a restarted agent puts exactly one back.
    n1.stop_agent();
    n1.exec(&[
        "iptables",
        "-D",
        "FORWARD",
        "-m",
        "comment",
        "--comment",
        "netboot forward",
        "-j",
        "NETBOOT-FWD",
    ])
    .expect_ok();
    assert!(
        !ping_within(n1.pod(p1), &ip2, Duration::from_secs(3)),
        "traffic flowed under FORWARD DROP without our rules:\n{}",
        filter_table(&n1)
    );
    n1.start_agent(&ep, FAST);
    assert_reach(&n1, p1, &ip2, "node1 pod -> node2 pod after agent restart");
    let f = filter_table(&n1);
    assert_eq!(f.matches(jump).count(), 1, "{f}");

    // The agent's etcd lease revoked by ID under it: the key goes with it,
    // the agent re-grants and puts the same subnet back.
    let key1 = n1.lease_key();
    let id = lease_id(&etcd, &key1).expect("node1's key has an etcd lease");
    let before = n1.log().len();
    etcd.ctl(&["lease", "revoke", &format!("{id:x}")])
        .expect_ok();
    assert!(
        wait_until(CONVERGE, || lease_id(&etcd, &key1).is_some_and(|l| l != id)),
        "lease not re-acquired after revoke:\n{}",
        n1.log()
    );
    assert_eq!(n1.wait_subnet(CONVERGE), s1, "revoke changed the subnet");
    assert_eq!(leases_of(&etcd, &n1.ip), vec![key1.clone()]);
    assert!(n1.agent_exited().is_none(), "agent died:\n{}", n1.log());
    assert_reach(&n2, p2, &ip1, "node2 pod -> node1 pod after the revoke");
    eprintln!(
        "--- node1 agent after `etcdctl lease revoke` ---\n{}",
        &n1.log()[before..]
    );

    // node2's agent paused (SIGSTOP) past its 6 s lease: the key expires;
    // after SIGCONT the agent notices and takes the same subnet again.
    let key2 = n2.lease_key();
    let before = n2.log().len();
    signal(pid2, nix::sys::signal::Signal::SIGSTOP);
    let expired = wait_until(Duration::from_secs(20), || etcd.get(&key2).is_none());
    std::thread::sleep(Duration::from_secs(2));
    signal(pid2, nix::sys::signal::Signal::SIGCONT);
    assert!(
        expired,
        "node2's lease did not expire while its agent was stopped"
    );
    assert!(
        wait_until(CONVERGE, || etcd.get(&key2).is_some()),
        "lease not re-acquired after SIGCONT:\n{}",
        n2.log()
    );
    assert_eq!(
        n2.wait_subnet(CONVERGE),
        s2,
        "the subnet changed after SIGCONT"
    );
    assert_eq!(
        leases_of(&etcd, &n2.ip),
        vec![key2.clone()],
        "duplicate leases for node2"
    );
    assert_reach(&n1, p1, &ip2, "node1 pod -> node2 pod after SIGCONT");
    // It keeps renewing the short lease afterwards.
    std::thread::sleep(Duration::from_secs(8));
    assert!(etcd.get(&key2).is_some(), "lease lost again:\n{}", n2.log());
    assert!(n2.agent_exited().is_none(), "agent died:\n{}", n2.log());
    eprintln!(
        "--- node2 agent after SIGSTOP past the lease TTL, SIGCONT ---\n{}",
        &n2.log()[before..]
    );

    // leave removes the iptables rules (and leaves the policy alone).
    n1.stop_agent();
    let out = n1.leave(&ep);
    assert!(out.success(), "{out}");
    let f = filter_table(&n1);
    assert!(!f.contains("NETBOOT-FWD"), "{f}");
    assert!(f.contains(":FORWARD DROP"), "{f}");
}

#[test]
fn one_agent_per_netns_and_status_shows_it() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "l1", 51);
    let pid = n1.start_agent(&ep, FAST);
    let s1 = n1.wait_subnet(CONVERGE);
    let bin = netboot_tests::bin_path("netboot");
    let bin = bin.to_string_lossy().to_string();
    let ns = n1.ns.path().to_path_buf();
    let second = |subnet_file: &str| {
        let mut cmd = in_ns(&ns, &[&bin, "agent"]);
        cmd.arg(format!("--etcd={ep}"))
            .arg("--iface=eth0")
            .arg(format!("--subnet-file={subnet_file}"))
            .env_remove("NETBOOT_ETCD_PASSWORD");
        run(cmd, None, Duration::from_secs(20))
    };
    let sf = n1.subnet_file().display().to_string();
    let other = n1.dir.path().join("other.env").display().to_string();
    for f in [&sf, &other] {
        let out = second(f);
        assert!(!out.success(), "a second agent ran: {out}");
        assert!(
            out.stderr
                .contains(&format!("another netboot agent (PID {pid}"))
                && out
                    .stderr
                    .contains("already running in this network namespace"),
            "{out}"
        );
        assert_eq!(out.stderr.lines().count(), 1, "{out}");
        eprintln!("second agent ({f}): {}", out.stderr.trim());
    }
    assert!(
        n1.agent_exited().is_none(),
        "first agent died:\n{}",
        n1.log()
    );
    assert_eq!(n1.wait_subnet(CONVERGE), s1);

    let status = || {
        let mut cmd = in_ns(&ns, &[&bin, "status"]);
        cmd.arg(format!("--etcd={ep}"))
            .arg(format!("--subnet-file={sf}"))
            .env_remove("NETBOOT_ETCD_PASSWORD");
        run(cmd, None, Duration::from_secs(30)).expect_ok().stdout
    };
    let st = status();
    assert!(
        st.contains(&format!("agent: running (PID {pid}, subnet file {sf})")),
        "{st}"
    );
    assert!(
        st.contains(&format!("lease: {} (expires in 23h", n1.lease_key())),
        "{st}"
    );
    assert!(
        st.contains("flannel.1") && st.contains("matches the lease"),
        "{st}"
    );
    eprintln!("--- netboot status ---\n{st}");

    // leave refuses while the agent runs (it would take the lease again).
    let out = n1.leave(&ep);
    assert!(!out.success() && out.stderr.contains("is running"), "{out}");
    assert!(etcd.get(&n1.lease_key()).is_some());

    // The lock dies with the agent: status says so, a new agent starts.
    n1.stop_agent();
    assert!(
        status().contains("agent: not running in this network namespace"),
        "{}",
        status()
    );
    n1.start_agent(&ep, FAST);
    assert!(
        wait_until(CONVERGE, || n1.log().matches("ready after").count() >= 2),
        "agent did not start again:\n{}",
        n1.log()
    );
    assert_eq!(n1.wait_subnet(CONVERGE), s1);
}

#[test]
fn agent_with_tls_and_auth_etcd() {
    require_root();
    let ul = Underlay::new();
    let mut n1 = AgentNode::new(&ul, "t1", 61);
    // etcd on node1's loopback (its certificate names 127.0.0.1).
    let mut etcd = netboot_tests::etcd::EtcdServer::start_tls_in(n1.ns.path());
    etcd.enable_auth("rootpw", "flannel", "flannelpw", PREFIX);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let pwfile = n1.dir.path().join("password");
    std::fs::write(&pwfile, "flannelpw\n").unwrap();
    let tls = etcd.tls.as_ref().unwrap();
    let args = [
        format!("--cacert={}", tls.ca.display()),
        format!("--cert={}", tls.cert.display()),
        format!("--key={}", tls.key.display()),
        "--user=flannel".to_string(),
        format!("--password-file={}", pwfile.display()),
    ];
    let mut all: Vec<&str> = FAST.to_vec();
    all.extend(args.iter().map(String::as_str));
    n1.start_agent(&etcd.url, &all);
    n1.wait_subnet(CONVERGE);
    let key = n1.lease_key();
    let v = etcd.get(&key).expect("lease written over TLS with auth");
    assert!(v.contains(&format!("\"PublicIP\":\"{}\"", n1.ip)), "{v}");
    assert!(n1.log().contains("ready after"), "{}", n1.log());
    n1.stop_agent();
    etcd.stop();
}
