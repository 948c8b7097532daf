//! `netboot agent`'s backends and address families on a cluster of
//! namespaces: host-gw IPv4, vxlan dual stack (also with DirectRouting),
//! host-gw dual stack, vxlan and host-gw IPv6-only. Each case runs two
//! netboot nodes and a foreign node whose lease and kernel side the test
//! writes as flanneld does (tests/src/foreign.rs). Every netboot node's
//! devices, addresses, routes, neighbour and FDB entries, subnet.env and
//! lease value are compared with what flanneld leaves, built here from
//! flannel's formats (tests/src/cluster6.rs); pods (netboot-cni native
//! mode, every family) ping each other across the nodes, the foreign one
//! included, both ways. Then: off-link and conflicting leases, entries
//! removed by hand, an agent restart, a deleted device, the foreign node's
//! new VtepMACs, its lease deleted, and `netboot leave`. Besides: agents
//! racing for one IPv6 subnet, and backend switches on a dual-stack
//! network. Needs root; nothing touches the root netns.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netboot_tests::cluster::{wait_until, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::cluster6::{
    add_underlay6, dev_addrs, flannel_key, flannel_links, flannel_value, gw_routes,
    ip_json_or_empty, perm_fdb, perm_neighs, ping_from, underlay4, underlay6, vxlan_dev,
    vxlan_line, Backend, PeerLease, NETWORK4, NETWORK6, VNI, VXLAN_PORT,
};
use netboot_tests::exec::{nsenter, run};
use netboot_tests::foreign::ForeignNode;
use netboot_tests::require_root;
use serde_json::Value;

const FAST: &[&str] = &["--resync-interval=5s", "--device-check-interval=1s"];
const CONVERGE: Duration = Duration::from_secs(30);

const HOSTS: [u8; 2] = [11, 12];
const FOREIGN_HOST: u8 = 99;
/// The foreign node's subnets: outside SubnetMin..SubnetMax and
/// IPv6SubnetMin..IPv6SubnetMax, so never one a netboot node picks.
const FOREIGN4: &str = "10.2.200.0/24";
const FOREIGN6: &str = "fd42:10:0:c8::/64";
/// A host-gw lease whose public addresses are on no connected prefix.
const OFFLINK4: (&str, &str) = ("10.2.201.0/24", "192.168.77.5");
const OFFLINK6: (&str, &str) = ("fd42:10:0:c9::/64", "fd00:77::5");
/// The IPv4 subnet and host of a lease that claims a netboot node's IPv6
/// subnet.
const CLAIM4: &str = "10.2.199.0/24";
const CLAIM_HOST: u8 = 98;

#[derive(Clone, Copy)]
enum Config {
    /// A config as an operator writes it for flanneld.
    Json(&'static str),
    /// `netboot init` arguments besides --etcd and the CNI directories.
    Init(&'static [&'static str]),
}

struct Case {
    tag: &'static str,
    backend: Backend,
    /// vxlan's DirectRouting: peers on the same L2 segment get a plain
    /// route via their public address instead of the tunnel.
    direct: bool,
    /// Each netboot node's eth0 also has `fd00:100::b<host>`, added last
    /// (so the interface's preferred IPv6 address), and its agent runs
    /// with `--public-ipv6` naming `fd00:100::<host>`, the one its lease
    /// must name.
    alt6: bool,
    v4: bool,
    v6: bool,
    config: Config,
}

impl Case {
    fn families(&self) -> Vec<bool> {
        [(false, self.v4), (true, self.v6)]
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(v6, _)| v6)
            .collect()
    }

    fn network(v6: bool) -> IpNet {
        let net = if v6 { NETWORK6 } else { NETWORK4 };
        net.parse().unwrap()
    }
}

/// A netboot node as the test learnt it: its lease (key and parse).
struct Known {
    key: String,
    lease: PeerLease,
}

/// One end of a ping: a namespace and its address there.
#[derive(Clone)]
struct End {
    ns: PathBuf,
    ip: String,
    what: String,
}

fn store_config(c: &Case, etcd: &EtcdCluster, ep: &str, n: &AgentNode) {
    let key = format!("{PREFIX}/config");
    let args = match c.config {
        Config::Json(j) => return etcd.put(&key, j),
        Config::Init(a) => a,
    };
    let bin = netboot_tests::bin_path("netboot");
    let mut cmd = nsenter(n.ns.path(), &[&bin.to_string_lossy(), "init"]);
    let d = n.dir.path();
    cmd.arg(format!("--etcd={ep}"))
        .arg(format!("--cni-conf-dir={}", d.join("net.d").display()))
        .arg(format!("--cni-bin-dir={}", d.join("bin").display()))
        .args(args)
        .env_remove("NETBOOT_ETCD_PASSWORD");
    let out = run(cmd, None, Duration::from_secs(30));
    assert!(out.success(), "netboot init: {out}");
    let stored: Value = serde_json::from_str(&etcd.get(&key).expect("config")).unwrap();
    assert_eq!(stored["Backend"]["Type"], c.backend.name(), "{stored}");
    assert_eq!(stored["EnableIPv6"], Value::Bool(c.v6), "{stored}");
    assert_eq!(stored["IPv6Network"], NETWORK6, "{stored}");
    if !c.v4 {
        assert_eq!(stored["EnableIPv4"], Value::Bool(false), "{stored}");
    }
}

/// The agent's options on node `host`.
fn agent_args(c: &Case, host: u8) -> Vec<String> {
    let mut a: Vec<String> = FAST.iter().map(|s| s.to_string()).collect();
    if c.alt6 {
        a.push(format!("--public-ipv6={}", underlay6(host)));
    }
    a
}

/// subnet.env once the agent wrote it.
#[track_caller]
fn wait_env(n: &AgentNode) -> String {
    let mut text = String::new();
    let ok = wait_until(CONVERGE, || {
        text = std::fs::read_to_string(n.subnet_file()).unwrap_or_default();
        text.contains("FLANNEL_IPMASQ=")
    });
    assert!(ok, "no subnet.env on {}:\n{}", n.ip, n.log());
    text
}

/// The value of `KEY=` in subnet.env, as a subnet (`10.2.5.1/24` →
/// `10.2.5.0/24`).
fn env_subnet<N: std::str::FromStr>(text: &str, key: &str) -> Option<N> {
    let v = text.lines().find_map(|l| l.strip_prefix(key))?;
    let (ip, len) = v.split_once('/')?;
    let ip: IpNet = format!("{ip}/{len}").parse().ok()?;
    ip.trunc().to_string().parse().ok()
}

/// The MAC of a device in a node, from the kernel.
fn dev_mac(n: &AgentNode, dev: &str) -> String {
    let l = ip_json_or_empty(n.ns.path(), &["ip", "-j", "link", "show", "dev", dev]);
    l.first()
        .and_then(|l| l["address"].as_str())
        .unwrap_or_else(|| panic!("no {dev} on {}:\n{}", n.ip, n.log()))
        .to_string()
}

/// Check subnet.env and the lease value of a netboot node against
/// flanneld's formats; return the lease as the foreign node reads it.
fn learn(c: &Case, etcd: &EtcdCluster, n: &AgentNode, host: u8) -> Known {
    let env = wait_env(n);
    let v4: Option<Ipv4Net> = env_subnet(&env, "FLANNEL_SUBNET=");
    let v6: Option<Ipv6Net> = env_subnet(&env, "FLANNEL_IPV6_SUBNET=");
    assert_eq!((v4.is_some(), v6.is_some()), (c.v4, c.v6), "{env}");
    // flanneld writes the network and the subnet's first address per
    // family; MTU: the interface's for host-gw, minus 50 for vxlan over
    // IPv4. With an IPv6 tunnel netboot takes the smaller MTU of
    // flannel-v6.1 (minus 70: the kernel's limit) where flanneld writes
    // minus 50 and lets the kernel cut the device's.
    let mut want = String::new();
    if let Some(sn) = v4 {
        assert_eq!(sn.prefix_len(), 24, "{env}");
        assert!((1..=20).contains(&sn.network().octets()[2]), "{env}");
        let first = Ipv4Addr::from(u32::from(sn.network()) + 1);
        want += &format!("FLANNEL_NETWORK={NETWORK4}\nFLANNEL_SUBNET={first}/24\n");
    }
    if let Some(sn) = v6 {
        let seg = sn.network().segments();
        assert_eq!(sn.prefix_len(), 64, "{env}");
        assert!(
            seg[..3] == [0xfd42, 0x10, 0] && (1..=0x14).contains(&seg[3]),
            "{env}"
        );
        let first = Ipv6Addr::from(u128::from(sn.network()) + 1);
        want += &format!("FLANNEL_IPV6_NETWORK={NETWORK6}\nFLANNEL_IPV6_SUBNET={first}/64\n");
    }
    let mtu = match (c.backend, c.v6) {
        (Backend::HostGw, _) => 1500,
        (Backend::Vxlan, false) => 1450,
        (Backend::Vxlan, true) => 1430,
    };
    want += &format!("FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=false\n");
    assert_eq!(env, want, "subnet.env on {}", n.ip);

    let key = flannel_key(v4, v6);
    let raw = etcd
        .get(&key)
        .unwrap_or_else(|| panic!("no lease {key}: {:?}", etcd.keys(PREFIX)));
    let vx = c.backend == Backend::Vxlan;
    let mac4 = (vx && c.v4).then(|| dev_mac(n, &vxlan_dev(false)));
    let mac6 = (vx && c.v6).then(|| dev_mac(n, &vxlan_dev(true)));
    let want = flannel_value(
        c.v4.then(|| underlay4(host)),
        c.v6.then(|| underlay6(host)),
        c.backend,
        mac4.as_deref(),
        mac6.as_deref(),
    );
    assert_eq!(raw, want, "lease value of {} at {key}", n.ip);
    let ttl = etcd.key_ttl(&key).expect("the lease has a TTL");
    assert!(ttl > 23 * 3600, "default TTL is 24h, got {ttl}");
    Known {
        lease: PeerLease::parse(&key, &raw),
        key,
    }
}

type Facets = Vec<(String, BTreeSet<String>)>;

fn set<I: IntoIterator<Item = String>>(i: I) -> BTreeSet<String> {
    i.into_iter().collect()
}

/// What flanneld leaves on a node with lease `me` and `peers` (their
/// subnets and addresses of each family the case runs), facet by facet.
fn expected(c: &Case, me: &PeerLease, peers: &[PeerLease]) -> Facets {
    let vx = c.backend == Backend::Vxlan;
    let mut f = vec![(
        "flannel devices".to_string(),
        set(c.families().into_iter().filter(|_| vx).map(vxlan_dev)),
    )];
    for v6 in c.families() {
        let own: Option<IpNet> = if v6 {
            me.subnet6.map(IpNet::V6)
        } else {
            me.subnet4.map(IpNet::V4)
        };
        let own = own.expect("own subnet");
        let pub_of = |p: &PeerLease| -> Option<String> {
            if v6 {
                p.public_ipv6.map(|a| a.to_string())
            } else {
                p.public_ip.map(|a| a.to_string())
            }
        };
        // (subnet, public address, VtepMAC) of each peer in this family.
        let ps: Vec<(IpNet, String, Option<String>)> = peers
            .iter()
            .filter_map(|p| {
                let sn = if v6 {
                    p.subnet6.map(IpNet::V6)
                } else {
                    p.subnet4.map(IpNet::V4)
                }?;
                let mac = if v6 { &p.mac6 } else { &p.mac4 };
                Some((sn, pub_of(p)?, mac.clone()))
            })
            .collect();
        let net = Case::network(v6);
        let eth0 = format!("eth0 gateway routes into {net}");
        // host-gw, and DirectRouting with every peer on eth0's segment:
        // a route via the peer's public address, no tunnel entries.
        let direct = !vx || c.direct;
        let via_eth0 = ps.iter().filter(|_| direct);
        f.push((eth0, set(via_eth0.map(|(s, p, _)| format!("{s} via {p}")))));
        if !vx {
            continue;
        }
        let ps: Vec<_> = ps.into_iter().filter(|_| !direct).collect();
        let dev = vxlan_dev(v6);
        let mac = if v6 { &me.mac6 } else { &me.mac4 };
        let mtu = if v6 { 1430 } else { 1450 };
        f.push((
            format!("{dev} device"),
            set([format!(
                "vxlan id {VNI} local {} port {VXLAN_PORT} learning false mtu {mtu} mac {}",
                pub_of(me).expect("own public address"),
                mac.as_deref().expect("own VtepMAC")
            )]),
        ));
        let host_len = if v6 { 128 } else { 32 };
        f.push((
            format!("{dev} addresses"),
            set([format!("{}/{host_len}", own.network())]),
        ));
        f.push((
            format!("{dev} routes"),
            set(ps
                .iter()
                .map(|(s, _, _)| format!("{s} via {} onlink", s.network()))),
        ));
        let macs = |(s, p, m): &(IpNet, String, Option<String>)| {
            let m = m
                .clone()
                .unwrap_or_else(|| format!("(no VtepMAC for {s} via {p})"));
            (s.network(), p.clone(), m)
        };
        f.push((
            format!("{dev} neighbours"),
            set(ps
                .iter()
                .map(macs)
                .map(|(g, _, m)| format!("{g} lladdr {m}"))),
        ));
        f.push((
            format!("{dev} FDB"),
            set(ps.iter().map(macs).map(|(_, p, m)| format!("{m} dst {p}"))),
        ));
    }
    f
}

/// The node's kernel state under the same facets as [`expected`].
fn actual(c: &Case, n: &AgentNode) -> Facets {
    let ns = n.ns.path();
    let mut f = vec![("flannel devices".to_string(), flannel_links(ns))];
    for v6 in c.families() {
        let net = Case::network(v6);
        f.push((
            format!("eth0 gateway routes into {net}"),
            gw_routes(ns, "eth0", net),
        ));
        if c.backend != Backend::Vxlan {
            continue;
        }
        let dev = vxlan_dev(v6);
        f.push((format!("{dev} device"), set(vxlan_line(ns, &dev))));
        f.push((format!("{dev} addresses"), dev_addrs(ns, &dev)));
        f.push((format!("{dev} routes"), gw_routes(ns, &dev, net)));
        f.push((format!("{dev} neighbours"), perm_neighs(ns, &dev)));
        f.push((format!("{dev} FDB"), perm_fdb(ns, &dev)));
    }
    f
}

/// Wait until the node's kernel state is flanneld's; fail showing each
/// facet that differs.
#[track_caller]
fn assert_state(c: &Case, n: &AgentNode, me: &PeerLease, peers: &[PeerLease], when: &str) {
    let want = expected(c, me, peers);
    let mut got = Vec::new();
    let ok = wait_until(CONVERGE, || {
        got = actual(c, n);
        got == want
    });
    if !ok {
        let diff: Vec<String> = want
            .iter()
            .zip(&got)
            .filter(|(w, g)| w != g)
            .map(|((name, w), (_, g))| format!("{name}:\n  want {w:?}\n  got  {g:?}"))
            .collect();
        panic!(
            "node {} ({when}): kernel state is not flanneld's:\n{}\n--- agent log ---\n{}",
            n.ip,
            diff.join("\n"),
            n.log()
        );
    }
}

/// Ping every end from every other, from its own address.
#[track_caller]
fn assert_mesh(ends: &[End], nodes: &[AgentNode]) {
    for a in ends {
        for b in ends.iter().filter(|b| b.ip != a.ip) {
            assert!(
                ping_from(&a.ns, &a.ip, &b.ip, CONVERGE),
                "{} ({}) cannot reach {} ({})\n--- agent logs ---\n{}",
                a.what,
                a.ip,
                b.what,
                b.ip,
                nodes
                    .iter()
                    .map(|n| format!("{}:\n{}", n.ip, n.log()))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// The address of a vxlan device of a node: flanneld gives it the
/// subnet's network address (/32, /128) so that the node itself reaches
/// other nodes' pods from an address in its subnet.
fn device_end(n: &AgentNode, me: &PeerLease, v6: bool) -> End {
    let ip = if v6 {
        me.subnet6.map(|s| s.network().to_string())
    } else {
        me.subnet4.map(|s| s.network().to_string())
    };
    End {
        ns: n.ns.path().to_owned(),
        ip: ip.expect("own subnet"),
        what: format!("node {} ({})", n.ip, vxlan_dev(v6)),
    }
}

/// Delete by hand what node `n` programmed for `peer` in one family (and,
/// for a tunnel, the device's addresses).
fn remove_by_hand(c: &Case, n: &AgentNode, peer: &PeerLease, v6: bool) {
    let (sn, public, mac) = if v6 {
        let sn = peer.subnet6.map(IpNet::V6);
        (sn, peer.public_ipv6.map(|a| a.to_string()), &peer.mac6)
    } else {
        let sn = peer.subnet4.map(IpNet::V4);
        (sn, peer.public_ip.map(|a| a.to_string()), &peer.mac4)
    };
    let (sn, public) = (sn.expect("peer subnet"), public.expect("peer address"));
    let dst = sn.to_string();
    if c.backend == Backend::HostGw || c.direct {
        n.exec(&["ip", "route", "del", &dst, "via", &public, "dev", "eth0"])
            .expect_ok();
        return;
    }
    let dev = vxlan_dev(v6);
    let gw = sn.network().to_string();
    let mac = mac.as_deref().expect("peer VtepMAC");
    n.exec(&["ip", "route", "del", &dst, "dev", &dev])
        .expect_ok();
    n.exec(&["ip", "neigh", "del", &gw, "dev", &dev])
        .expect_ok();
    n.exec(&["bridge", "fdb", "del", mac, "dev", &dev, "dst", &public])
        .expect_ok();
    n.exec(&["ip", "addr", "flush", "dev", &dev]).expect_ok();
}

/// The off-link lease of a host-gw case: key and value.
fn offlink_lease(c: &Case) -> (String, String) {
    let sn4: Option<Ipv4Net> = c.v4.then(|| OFFLINK4.0.parse().unwrap());
    let sn6: Option<Ipv6Net> = c.v6.then(|| OFFLINK6.0.parse().unwrap());
    let value = flannel_value(
        c.v4.then(|| OFFLINK4.1.parse().unwrap()),
        c.v6.then(|| OFFLINK6.1.parse().unwrap()),
        Backend::HostGw,
        None,
        None,
    );
    (flannel_key(sn4, sn6), value)
}

fn run_case(c: &Case) {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    let mut nodes: Vec<AgentNode> = HOSTS
        .iter()
        .map(|&h| AgentNode::new(&ul, &format!("{}{h}", c.tag), h))
        .collect();
    if c.v6 {
        for (n, &h) in nodes.iter().zip(&HOSTS) {
            add_underlay6(&n.ns, h);
        }
    }
    store_config(c, &etcd, &ep, &nodes[0]);

    // The foreign node's lease exists before the agents start; its kernel
    // side learns the netboot nodes from their leases, as flanneld would.
    let mut foreign = ForeignNode::new(
        &ul,
        FOREIGN_HOST,
        c.backend,
        c.v4.then(|| FOREIGN4.parse().unwrap()),
        c.v6.then(|| FOREIGN6.parse().unwrap()),
    );
    foreign.direct = c.direct;
    etcd.put_with_lease(&foreign.key(), &foreign.value(), 3600);
    for (n, h) in nodes.iter_mut().zip(HOSTS) {
        if c.alt6 {
            let a = format!("fd00:100::b{h}/64");
            n.exec(&["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"])
                .expect_ok();
        }
        let args = agent_args(c, h);
        n.start_agent(&ep, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let known: Vec<Known> = nodes
        .iter()
        .zip(HOSTS)
        .map(|(n, h)| learn(c, &etcd, n, h))
        .collect();
    assert_ne!(known[0].key, known[1].key);
    for k in &known {
        foreign.program(&k.lease);
    }
    let foreign_lease = PeerLease::parse(&foreign.key(), &foreign.value());
    let peers_of = |i: usize, with_foreign: bool| -> Vec<PeerLease> {
        let mut p: Vec<PeerLease> = known
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, k)| k.lease.clone())
            .collect();
        if with_foreign {
            p.push(foreign_lease.clone());
        }
        p
    };
    for (i, n) in nodes.iter().enumerate() {
        assert_state(c, n, &known[i].lease, &peers_of(i, true), "after start");
    }
    eprintln!("--- node {}: lease {} ---", nodes[0].ip, known[0].key);
    for (name, lines) in actual(c, &nodes[0]) {
        eprintln!("{name}: {lines:?}");
    }

    // Traffic, per family, between every pair of pods on the three nodes
    // (and, for vxlan, the nodes' own device addresses), both ways.
    let mut pods = Vec::new();
    for (i, n) in nodes.iter_mut().enumerate() {
        pods.push(n.add_pod_ips(&format!("{}p{i}", c.tag)));
    }
    for v6 in c.families() {
        let mut ends = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            let (p, ips) = &pods[i];
            let ip = ips
                .iter()
                .find(|a| a.contains(':') == v6)
                .unwrap_or_else(|| {
                    panic!("pod on {} has no {} address: {ips:?}", n.ip, family(v6))
                });
            ends.push(End {
                ns: n.pod(*p).to_owned(),
                ip: ip.clone(),
                what: format!("pod on {}", n.ip),
            });
            if c.backend == Backend::Vxlan {
                ends.push(device_end(n, &known[i].lease, v6));
            }
        }
        ends.push(End {
            ns: foreign.pod.path().to_owned(),
            ip: foreign.pod_ip(v6).expect("foreign pod address"),
            what: "pod on the foreign node".into(),
        });
        assert_mesh(&ends, &nodes);
    }

    // Dual stack: a lease claiming node 1's IPv6 subnet with another IPv4
    // one (a flanneld node that raced it) is refused by node 1 as a
    // whole, in one log line, its kernel state untouched.
    if c.v4 && c.v6 {
        let mine = known[0].lease.subnet6.expect("IPv6 subnet");
        let key = flannel_key(Some(CLAIM4.parse().unwrap()), Some(mine));
        let vx = c.backend == Backend::Vxlan;
        let value = flannel_value(
            Some(underlay4(CLAIM_HOST)),
            Some(underlay6(CLAIM_HOST)),
            c.backend,
            vx.then_some("0e:c1:00:00:04:01"),
            vx.then_some("0e:c1:00:00:06:01"),
        );
        etcd.put_with_lease(&key, &value, 3600);
        let line =
            format!("ignoring lease {key}: its subnet {mine} overlaps this node's own {mine}");
        assert!(
            wait_until(CONVERGE, || nodes[0].log().contains(&line)),
            "no refusal of {key} on {}:\n{}",
            nodes[0].ip,
            nodes[0].log()
        );
        assert_state(
            c,
            &nodes[0],
            &known[0].lease,
            &peers_of(0, true),
            "conflicting lease",
        );
        assert_eq!(
            nodes[0].log().matches(&key).count(),
            1,
            "{}",
            nodes[0].log()
        );
        etcd.delete(&key);
        for (i, n) in nodes.iter().enumerate() {
            assert_state(
                c,
                n,
                &known[i].lease,
                &peers_of(i, true),
                "conflicting lease gone",
            );
        }
    }

    // A restarted agent keeps its lease (key and value: the same VtepMACs)
    // and the kernel state.
    nodes[0].stop_agent();
    let args = agent_args(c, HOSTS[0]);
    nodes[0].start_agent(&ep, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        wait_until(CONVERGE, || nodes[0].log().matches("ready after").count()
            >= 2),
        "restarted agent not ready:\n{}",
        nodes[0].log()
    );
    let again = learn(c, &etcd, &nodes[0], HOSTS[0]);
    assert_eq!(again.key, known[0].key, "restart changed the lease");
    assert_eq!(
        again.lease, known[0].lease,
        "restart changed the lease value"
    );
    assert_state(
        c,
        &nodes[0],
        &known[0].lease,
        &peers_of(0, true),
        "after restart",
    );

    // vxlan: a device deleted behind the agent's back comes back as it
    // was (same MAC, so the lease stays right), with every peer on it.
    if c.backend == Backend::Vxlan {
        for v6 in c.families() {
            let dev = vxlan_dev(v6);
            nodes[0].exec(&["ip", "link", "del", &dev]).expect_ok();
            let what = format!("{dev} deleted");
            assert_state(c, &nodes[0], &known[0].lease, &peers_of(0, true), &what);
        }
    }

    // host-gw refuses a peer it cannot route to without a router.
    if c.backend == Backend::HostGw {
        let (key, value) = offlink_lease(c);
        etcd.put_with_lease(&key, &value, 3600);
        let gws: Vec<&str> = c
            .families()
            .into_iter()
            .map(|v6| if v6 { OFFLINK6.1 } else { OFFLINK4.1 })
            .collect();
        for n in &nodes {
            let said = wait_until(CONVERGE, || {
                let log = n.log();
                log.contains(&format!("ignoring lease {key}"))
                    && gws.iter().all(|gw| {
                        log.contains(&format!("{gw} is not on the same L2 segment as eth0"))
                    })
            });
            assert!(said, "no refusal of {key} on {}:\n{}", n.ip, n.log());
        }
        for (i, n) in nodes.iter().enumerate() {
            assert_state(c, n, &known[i].lease, &peers_of(i, true), "off-link lease");
        }
        etcd.delete(&key);
    }

    // What someone removes by hand on node 1 comes back: a route to node
    // 2 in each family and, for the tunnel, its neighbour and FDB entries
    // and the device's own address.
    for v6 in c.families() {
        remove_by_hand(c, &nodes[0], &known[1].lease, v6);
        let what = format!("{} entries removed by hand", family(v6));
        assert_state(c, &nodes[0], &known[0].lease, &peers_of(0, true), &what);
    }

    // vxlan: the foreign node's devices get new MACs (flanneld recreating
    // them), it programs its peers again and writes its lease again: the
    // netboot nodes move their neighbour and FDB entries, and traffic
    // flows again.
    if c.backend == Backend::Vxlan {
        foreign.change_macs(0x77);
        for k in &known {
            foreign.program(&k.lease);
        }
        etcd.put_with_lease(&foreign.key(), &foreign.value(), 3600);
        let moved = PeerLease::parse(&foreign.key(), &foreign.value());
        for (i, n) in nodes.iter().enumerate() {
            let mut peers = peers_of(i, false);
            peers.push(moved.clone());
            assert_state(c, n, &known[i].lease, &peers, "foreign VtepMACs changed");
        }
        for v6 in c.families() {
            let (p, ips) = &pods[0];
            let ip = ips.iter().find(|a| a.contains(':') == v6).unwrap();
            let fpod = foreign.pod_ip(v6).unwrap();
            let ends = [
                End {
                    ns: nodes[0].pod(*p).to_owned(),
                    ip: ip.clone(),
                    what: format!("pod on {}", nodes[0].ip),
                },
                End {
                    ns: foreign.pod.path().to_owned(),
                    ip: fpod,
                    what: "pod on the foreign node (new VtepMAC)".into(),
                },
            ];
            assert_mesh(&ends, &nodes);
        }
    }

    // The foreign lease gone: its routes (and ARP/FDB entries) go too.
    etcd.delete(&foreign.key());
    for (i, n) in nodes.iter().enumerate() {
        assert_state(
            c,
            n,
            &known[i].lease,
            &peers_of(i, false),
            "foreign lease deleted",
        );
    }

    // `netboot leave` on node 2: its lease goes, the other node drops its
    // routes, and nothing of the agent's stays on node 2.
    nodes[1].stop_agent();
    let out = nodes[1].leave(&ep);
    assert!(out.success(), "netboot leave: {out}");
    assert!(etcd.get(&known[1].key).is_none(), "lease left in etcd");
    assert_state(c, &nodes[0], &known[0].lease, &[], "node 2 left");
    let ns = nodes[1].ns.path();
    assert_eq!(flannel_links(ns), BTreeSet::new(), "devices left by leave");
    for v6 in c.families() {
        let net = Case::network(v6);
        assert_eq!(
            gw_routes(ns, "eth0", net),
            BTreeSet::new(),
            "routes left by leave"
        );
    }
    assert!(!nodes[1].subnet_file().exists(), "subnet.env left by leave");
    eprintln!("--- agent log on {} ---\n{}", nodes[0].ip, nodes[0].log());
    eprintln!("--- netboot leave on {} ---\n{}", nodes[1].ip, out.stderr);
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

#[test]
fn host_gw_ipv4() {
    run_case(&Case {
        tag: "g4",
        backend: Backend::HostGw,
        direct: false,
        alt6: false,
        v4: true,
        v6: false,
        config: Config::Json(
            r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"host-gw"}}"#,
        ),
    });
}

#[test]
fn vxlan_dual_stack() {
    run_case(&Case {
        tag: "x46",
        backend: Backend::Vxlan,
        direct: false,
        alt6: false,
        v4: true,
        v6: true,
        config: Config::Json(
            r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:14::","Backend":{"Type":"vxlan"}}"#,
        ),
    });
}

/// vxlan dual stack with DirectRouting: every node shares eth0's segment,
/// so every peer gets a plain route in both families, as flanneld does.
#[test]
fn vxlan_dual_stack_direct_routing() {
    run_case(&Case {
        tag: "d46",
        backend: Backend::Vxlan,
        direct: true,
        alt6: false,
        v4: true,
        v6: true,
        config: Config::Json(
            r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:14::","Backend":{"Type":"vxlan","DirectRouting":true}}"#,
        ),
    });
}

#[test]
fn host_gw_dual_stack() {
    run_case(&Case {
        tag: "g46",
        backend: Backend::HostGw,
        direct: false,
        alt6: false,
        v4: true,
        v6: true,
        config: Config::Init(&[
            "--network=10.2.0.0/16",
            "--subnet-min=10.2.1.0",
            "--subnet-max=10.2.20.0",
            "--ipv6-network=fd42:10::/56",
            "--ipv6-subnet-min=fd42:10:0:1::",
            "--ipv6-subnet-max=fd42:10:0:14::",
            "--backend=host-gw",
        ]),
    });
}

/// IPv6-only vxlan, configured by `netboot init --no-ipv4`; the agents run
/// with `--public-ipv6` naming an address that is not eth0's preferred.
#[test]
fn vxlan_ipv6_only() {
    run_case(&Case {
        tag: "x6",
        backend: Backend::Vxlan,
        direct: false,
        alt6: true,
        v4: false,
        v6: true,
        config: Config::Init(&[
            "--no-ipv4",
            "--ipv6-network=fd42:10::/56",
            "--ipv6-subnet-min=fd42:10:0:1::",
            "--ipv6-subnet-max=fd42:10:0:14::",
            "--backend=vxlan",
        ]),
    });
}

/// IPv6-only host-gw, with `--public-ipv6` as in [`vxlan_ipv6_only`].
#[test]
fn host_gw_ipv6_only() {
    run_case(&Case {
        tag: "g6",
        backend: Backend::HostGw,
        direct: false,
        alt6: true,
        v4: false,
        v6: true,
        config: Config::Json(
            r#"{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:14::","Backend":{"Type":"host-gw"}}"#,
        ),
    });
}

/// Agents starting together on a dual-stack network with one IPv6 subnet
/// and plenty of IPv4 ones: exactly one gets a lease, the others say the
/// IPv6 range is full. Each picks a different IPv4 subnet, so their keys
/// differ (`10.2.3.0-24&fd42:10:0:1::-64`, `10.2.4.0-24&fd42:10:0:1::-64`)
/// and etcd's check that a key is new cannot stop two of them sharing the
/// IPv6 subnet: the agent's create must fail when any lease appeared
/// after it chose.
#[test]
fn racing_agents_never_share_a_subnet_of_either_family() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    etcd.put(
        &format!("{PREFIX}/config"),
        r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.200.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:1::","Backend":{"Type":"host-gw"}}"#,
    );
    let hosts = [21u8, 22, 23, 24, 25, 26];
    let mut nodes: Vec<AgentNode> = hosts
        .iter()
        .map(|&h| AgentNode::new(&ul, &format!("r{h}"), h))
        .collect();
    for (n, &h) in nodes.iter().zip(&hosts) {
        add_underlay6(&n.ns, h);
    }
    for n in &mut nodes {
        n.start_agent(&ep, FAST);
    }
    let settled = wait_until(CONVERGE, || {
        nodes
            .iter_mut()
            .all(|n| n.subnet_file().exists() || n.agent_exited().is_some())
    });
    assert!(settled, "agents did not settle");
    let keys = etcd.keys(&format!("{PREFIX}/subnets/"));
    let winners: Vec<&AgentNode> = nodes.iter().filter(|n| n.subnet_file().exists()).collect();
    assert_eq!(keys.len(), 1, "leases: {keys:?}");
    assert_eq!(
        winners.len(),
        1,
        "nodes with a subnet.env: {}",
        winners.len()
    );
    for n in nodes.iter().filter(|n| !n.subnet_file().exists()) {
        assert!(n.log().contains("no free subnet"), "{}", n.log());
    }
    eprintln!(
        "lease: {keys:?}\n--- a loser's log ---\n{}",
        nodes
            .iter()
            .find(|n| !n.subnet_file().exists())
            .map(AgentNode::log)
            .unwrap_or_default()
    );
}

/// A dual-stack network switched from host-gw to vxlan and back, each
/// time with the agents restarted (as flanneld needs): the leases keep
/// their subnets and change their values, the old backend's routes or
/// devices go, and pods reach each other in both families after each
/// switch.
#[test]
fn switching_backends_on_a_dual_stack_network() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    let config = |backend: &str| {
        format!(
            r#"{{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","EnableIPv6":true,"IPv6Network":"fd42:10::/56","IPv6SubnetMin":"fd42:10:0:1::","IPv6SubnetMax":"fd42:10:0:14::","Backend":{{"Type":"{backend}"}}}}"#
        )
    };
    let case = |backend| Case {
        tag: "sw",
        backend,
        direct: false,
        alt6: false,
        v4: true,
        v6: true,
        config: Config::Json(""),
    };
    let mut nodes: Vec<AgentNode> = HOSTS
        .iter()
        .map(|&h| AgentNode::new(&ul, &format!("sw{h}"), h))
        .collect();
    let mut pods = Vec::new();
    let mut first: Option<Vec<String>> = None;
    for backend in [Backend::HostGw, Backend::Vxlan, Backend::HostGw] {
        let c = case(backend);
        etcd.put(&format!("{PREFIX}/config"), &config(backend.name()));
        for (i, n) in nodes.iter_mut().enumerate() {
            n.stop_agent();
            if first.is_none() {
                add_underlay6(&n.ns, HOSTS[i]);
            }
            n.start_agent(&ep, FAST);
        }
        // subnet.env says the new MTU once the new backend is set up.
        let known: Vec<Known> = nodes
            .iter()
            .zip(HOSTS)
            .map(|(n, h)| {
                let mtu = if backend == Backend::Vxlan {
                    "1430"
                } else {
                    "1500"
                };
                assert!(
                    wait_until(CONVERGE, || std::fs::read_to_string(n.subnet_file())
                        .is_ok_and(|t| t.contains(&format!("FLANNEL_MTU={mtu}\n")))),
                    "{}",
                    n.log()
                );
                learn(&c, &etcd, n, h)
            })
            .collect();
        let keys: Vec<String> = known.iter().map(|k| k.key.clone()).collect();
        assert_eq!(etcd.keys(&format!("{PREFIX}/subnets/")).len(), 2);
        match &first {
            None => first = Some(keys),
            Some(f) => assert_eq!(&keys, f, "a backend switch changed the subnets"),
        }
        for (i, n) in nodes.iter().enumerate() {
            let peers = [known[1 - i].lease.clone()];
            let when = format!("switched to {}", backend.name());
            assert_state(&c, n, &known[i].lease, &peers, &when);
        }
        if pods.is_empty() {
            for (i, n) in nodes.iter_mut().enumerate() {
                pods.push(n.add_pod_ips(&format!("swp{i}")));
            }
        }
        for v6 in c.families() {
            let ends: Vec<End> = nodes
                .iter()
                .zip(&pods)
                .map(|(n, (p, ips))| End {
                    ns: n.pod(*p).to_owned(),
                    ip: ips.iter().find(|a| a.contains(':') == v6).unwrap().clone(),
                    what: format!("pod on {} ({})", n.ip, backend.name()),
                })
                .collect();
            assert_mesh(&ends, &nodes);
        }
    }
    eprintln!("--- agent log on {} ---\n{}", nodes[0].ip, nodes[0].log());
}
