//! Extras for the agent option tests on a [`crate::cluster`]: a second L2
//! segment joined to the first by a router namespace (for DirectRouting
//! and host-gw across routed networks), network configs with chosen
//! backend options, and readers of the kernel state those options shape
//! (`ip -d -j link`, gateway routes, `ethtool -k`, FDB destinations).
//!
//! As in [`crate::cluster`], everything lives in namespaces the test
//! creates; the router forwards only between the two test segments and
//! nothing gets a default route.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

pub use crate::cluster::{gw_routes, GwRoute};
use crate::cluster::{ping_within, wait_until, AgentNode, EtcdCluster, Underlay, UNDERLAY};
use crate::netns::Netns;

/// First three octets of the second segment.
pub const SEGMENT_B: &str = "192.168.101";
/// Host number of the router on both segments.
const ROUTER_HOST: u8 = 254;
/// The pod network of [`net_config`].
pub const NETWORK: &str = "10.2.0.0/16";

/// The network config the option tests store: [`NETWORK`], subnets
/// 10.2.`min`.0 to 10.2.`max`.0, and `backend` (a JSON object) as is.
pub fn net_config(min: u8, max: u8, backend: &str) -> String {
    format!(
        r#"{{"Network":"{NETWORK}","SubnetMin":"10.2.{min}.0","SubnetMax":"10.2.{max}.0","Backend":{backend}}}"#
    )
}

/// Two L2 segments (192.168.100.0/24 on `a`, 192.168.101.0/24 on `b`)
/// and a router namespace forwarding between them (.254 on each).
pub struct Routed {
    pub a: Underlay,
    pub b: Underlay,
    pub router: Netns,
}

impl Default for Routed {
    fn default() -> Self {
        Self::new()
    }
}

impl Routed {
    pub fn new() -> Routed {
        let a = Underlay::new();
        let b = Underlay::new();
        let router = Netns::new("rt");
        for (ul, dev, net) in [(&a, "eth0", UNDERLAY), (&b, "eth1", SEGMENT_B)] {
            ul.ns
                .exec(&[
                    "ip",
                    "link",
                    "add",
                    "rt0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    dev,
                    "netns",
                    router.name(),
                ])
                .expect_ok();
            ul.ns
                .exec(&["ip", "link", "set", "rt0", "master", "br0", "up"])
                .expect_ok();
            let addr = format!("{net}.{ROUTER_HOST}/24");
            router
                .exec(&["ip", "addr", "add", &addr, "dev", dev])
                .expect_ok();
            router.exec(&["ip", "link", "set", dev, "up"]).expect_ok();
        }
        router
            .exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
            .expect_ok();
        Routed { a, b, router }
    }

    /// A node on segment A (192.168.100.`host`) with a route to segment B
    /// via the router.
    pub fn node_a(&self, tag: &str, host: u8) -> AgentNode {
        let n = AgentNode::new(&self.a, tag, host);
        self.route_to_b(&n.ns);
        n
    }

    /// A node on segment B (192.168.101.`host`) with a route to segment A
    /// via the router.
    pub fn node_b(&self, tag: &str, host: u8) -> AgentNode {
        let mut n = AgentNode::new(&self.b, tag, host);
        // `Underlay::attach` numbers every segment 192.168.100.x: move it.
        n.ns.exec(&["ip", "addr", "flush", "dev", "eth0"])
            .expect_ok();
        let addr = format!("{SEGMENT_B}.{host}/24");
        n.ns.exec(&["ip", "addr", "add", &addr, "dev", "eth0"])
            .expect_ok();
        let via = format!("{SEGMENT_B}.{ROUTER_HOST}");
        let dst = format!("{UNDERLAY}.0/24");
        n.ns.exec(&["ip", "route", "add", &dst, "via", &via, "dev", "eth0"])
            .expect_ok();
        n.ip = format!("{SEGMENT_B}.{host}");
        n
    }

    /// Give a namespace on segment A (a node, an etcd member) its route
    /// to segment B.
    pub fn route_to_b(&self, ns: &Netns) {
        let via = format!("{UNDERLAY}.{ROUTER_HOST}");
        let dst = format!("{SEGMENT_B}.0/24");
        ns.exec(&["ip", "route", "add", &dst, "via", &via, "dev", "eth0"])
            .expect_ok();
    }

    /// etcd with one member on segment A, reachable from segment B.
    pub fn etcd(&self) -> EtcdCluster {
        let etcd = EtcdCluster::start(&self.a, 1);
        self.route_to_b(&etcd.members[0].ns);
        etcd
    }
}

/// `ip -d -j link show dev` of `node`, `None` when the device is absent.
pub fn link_details(node: &AgentNode, dev: &str) -> Option<Value> {
    let out = node.exec(&["ip", "-d", "-j", "link", "show", "dev", dev]);
    if !out.success() {
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout).ok()?;
    v.get(0).cloned()
}

/// The gateway routes through `dev` into [`NETWORK`] (what host-gw and
/// DirectRouting write on the interface).
pub fn cluster_gw_routes(node: &AgentNode, dev: &str) -> Vec<GwRoute> {
    let net: IpNet = NETWORK.parse().expect("network");
    gw_routes(node, dev)
        .into_iter()
        .filter(|r| {
            r.dst
                .parse::<IpNet>()
                .map(|d| net.contains(&d))
                .or_else(|_| r.dst.parse::<IpAddr>().map(|d| net.contains(&d)))
                .unwrap_or(false)
        })
        .collect()
}

/// `ethtool -k DEV`'s `tx-checksum-ip-generic` in `node`: Some(on/off),
/// `None` when the device or the line is absent.
pub fn tx_checksum(node: &AgentNode, dev: &str) -> Option<bool> {
    let out = node.exec(&["ethtool", "-k", dev]);
    if !out.success() {
        return None;
    }
    out.stdout.lines().find_map(|l| {
        let v = l.trim().strip_prefix("tx-checksum-ip-generic:")?;
        Some(v.trim().starts_with("on"))
    })
}

/// The destinations (`dst IP`) of the permanent FDB entries on `dev`.
pub fn fdb_dsts(node: &AgentNode, dev: &str) -> Vec<String> {
    let out = node.exec(&["bridge", "fdb", "show", "dev", dev]);
    out.stdout
        .lines()
        .filter(|l| l.contains("permanent"))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "dst")?;
            w.next().map(str::to_string)
        })
        .collect()
}

/// The subnet a node leased, from its subnet.env (`10.2.3.0/24`).
pub fn leased_subnet(node: &AgentNode) -> String {
    crate::agent_support::subnet_of(&node.wait_subnet(Duration::from_secs(30)))
}

/// The `.0` of a subnet (`10.2.3.0/24` → `10.2.3.0`): the vxlan gateway.
pub fn network_addr(subnet: &str) -> &str {
    subnet.split('/').next().unwrap_or(subnet)
}

/// A pod to ping and the node it lives on, for [`all_pairs_reach`].
pub struct PodRef<'a> {
    pub node: &'a AgentNode,
    pub pod: usize,
    pub ip: String,
}

impl<'a> PodRef<'a> {
    pub fn new(node: &'a AgentNode, pod: usize, ip: &str) -> PodRef<'a> {
        PodRef {
            node,
            pod,
            ip: ip.to_string(),
        }
    }
}

/// Every pod answers every pod on another node (each pair tried up to
/// `timeout`); Err lists the pairs that did not, with each sender's
/// routes and agent log.
pub fn all_pairs_reach(pods: &[PodRef], timeout: Duration) -> Result<(), String> {
    let mut bad = Vec::new();
    for a in pods {
        for b in pods.iter().filter(|b| b.node.ip != a.node.ip) {
            if !ping_within(a.node.pod(a.pod), &b.ip, timeout) {
                bad.push(format!(
                    "{} (node {}) -> {} (node {})\n  routes on {}: {}\n  log:\n{}",
                    a.ip,
                    a.node.ip,
                    b.ip,
                    b.node.ip,
                    a.node.ip,
                    a.node.exec(&["ip", "route"]).stdout.trim(),
                    a.node.log()
                ));
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("no ping reply:\n{}", bad.join("\n")))
    }
}

/// Wait until `f` holds; panic with `what` and `detail()` otherwise.
#[track_caller]
pub fn expect_within(
    timeout: Duration,
    what: &str,
    f: impl FnMut() -> bool,
    detail: impl FnOnce() -> String,
) {
    if !wait_until(timeout, f) {
        panic!("{what}\n{}", detail());
    }
}
