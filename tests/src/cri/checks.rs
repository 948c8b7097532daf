//! What a CRI pod must have on its node while it runs, and what must be
//! gone once StopPodSandbox ran CNI DEL.

use std::path::Path;
use std::time::Duration;

use super::node::CriNode;
use crate::exec;
use crate::retry;

/// The LAN link [`crate::containerd::add_lan`] makes on a node: a veth,
/// but not a pod's.
pub const LAN_LINK: &str = "lan0";

/// The node's veths that belong to pods (every veth but the LAN).
pub fn pod_veths(node: &CriNode) -> Vec<String> {
    node.veths().into_iter().filter(|v| v != LAN_LINK).collect()
}

/// The host veth of the only pod on the node.
#[track_caller]
pub fn only_pod_veth(node: &CriNode) -> String {
    let v = pod_veths(node);
    assert_eq!(v.len(), 1, "expected one pod veth on the node: {v:?}");
    v[0].clone()
}

/// The node's `ifb` links (the bandwidth plugin's egress shapers).
pub fn ifbs(node: &CriNode) -> Vec<String> {
    crate::netns::json_strings(&node.ip_json(&["link", "show", "type", "ifb"]), "ifname")
}

/// `tc qdisc show dev DEV` in the node.
pub fn qdiscs(node: &CriNode, dev: &str) -> String {
    node.exec(&["tc", "qdisc", "show", "dev", dev])
        .expect_ok()
        .stdout
}

/// The pod's bandwidth shaping as the reference bandwidth plugin does it:
/// a tbf at `rate` on the host veth (traffic to the pod), and the veth's
/// ingress redirected to an ifb with a tbf at `rate` (traffic from it).
#[track_caller]
pub fn assert_bandwidth(node: &CriNode, rate: &str) {
    let veth = only_pod_veth(node);
    let q = qdiscs(node, &veth);
    assert!(q.contains("qdisc tbf"), "no tbf on {veth}:\n{q}");
    assert!(
        q.contains(&format!("rate {rate}")),
        "tbf on {veth} not {rate}:\n{q}"
    );
    assert!(
        q.contains("qdisc ingress"),
        "no ingress qdisc on {veth}:\n{q}"
    );
    let ifbs = ifbs(node);
    assert_eq!(ifbs.len(), 1, "expected one ifb for the pod: {ifbs:?}");
    let q = qdiscs(node, &ifbs[0]);
    assert!(q.contains("qdisc tbf"), "no tbf on {}:\n{q}", ifbs[0]);
    assert!(
        q.contains(&format!("rate {rate}")),
        "ifb tbf not {rate}:\n{q}"
    );
}

/// `conntrack -L` of the node (both directions of every flow).
pub fn conntrack(node: &CriNode) -> String {
    let out = node.exec(&["conntrack", "-L"]);
    // conntrack prints its summary on stderr and exits 0, even when empty.
    out.expect_ok().stdout
}

/// The node's conntrack entries whose original destination port is
/// `port` (a hostPort: every flow through it was DNATed to the pod).
pub fn conntrack_to_port(node: &CriNode, port: u16) -> Vec<String> {
    let pat = format!(" dport={port} ");
    conntrack(node)
        .lines()
        .filter(|l| l.contains(&pat))
        .map(str::to_owned)
        .collect()
}

/// A conntrack line of a closed TCP connection (TIME_WAIT, CLOSE). Such
/// an entry cannot misdirect later traffic: a new SYN matching it makes
/// the kernel drop it and look the packet up afresh, NAT included
/// (nf_conntrack_proto_tcp.c, "Reopened connection" in TIME_WAIT/CLOSE).
/// A UDP entry, on the contrary, keeps steering datagrams to the old pod
/// until it times out: those must be flushed.
pub fn closed_tcp(line: &str) -> bool {
    line.starts_with("tcp") && (line.contains(" TIME_WAIT ") || line.contains(" CLOSE "))
}

/// True when `text` names `ip` (not as the prefix of a longer address).
pub fn mentions_ip(text: &str, ip: &str) -> bool {
    text.match_indices(ip).any(|(i, _)| {
        let before = text[..i].chars().last();
        let after = text[i + ip.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// Everything of sandbox `id` (pod IP `ip`, hostPorts `host_ports`) that
/// CNI DEL must remove from the node: pod veth, ifb, host-local IP file,
/// netboot records and flannel scratch files, iptables/nftables rules
/// naming the sandbox, its IP or its hostPorts, conntrack entries through
/// its hostPorts (but closed TCP ones, see [`closed_tcp`]), libcni's cached result, and the pod netns `netns`.
#[track_caller]
pub fn assert_detached(node: &CriNode, id: &str, ip: &str, host_ports: &[u16], netns: &Path) {
    // A deleted pod netns takes its veth peer with it, asynchronously.
    let veths = retry(50, Duration::from_millis(100), || {
        let v = pod_veths(node);
        v.is_empty().then_some(v)
    })
    .unwrap_or_else(|| pod_veths(node));
    assert_eq!(veths, Vec::<String>::new(), "pod veths left on the node");
    assert_eq!(ifbs(node), Vec::<String>::new(), "ifb left on the node");
    assert_eq!(node.allocations(), Vec::<String>::new(), "IP files left");
    assert_eq!(node.records(), Vec::<String>::new(), "netboot records left");
    assert_eq!(node.scratch_files(), Vec::<String>::new(), "scratch left");
    let iptables = node.iptables_save();
    let nft = node.nft_ruleset();
    for (what, rules) in [("iptables-save", &iptables), ("nft", &nft)] {
        assert!(
            !rules.contains(id),
            "{what}: rules of sandbox {id} left:\n{rules}"
        );
        assert!(
            !mentions_ip(rules, ip),
            "{what}: rules for {ip} left:\n{rules}"
        );
        for p in host_ports {
            let pat = format!("dport {p}");
            assert!(!rules.contains(&pat), "{what}: hostPort {p} left:\n{rules}");
        }
    }
    for p in host_ports {
        let left: Vec<String> = conntrack_to_port(node, *p)
            .into_iter()
            .filter(|l| !closed_tcp(l))
            .collect();
        assert!(
            left.is_empty(),
            "conntrack entries via hostPort {p} left: {left:#?}"
        );
    }
    let cached = Path::new(super::daemon::CNI_RESULTS)
        .join(format!("{}-{id}-eth0", crate::plugin_support::NET));
    assert!(
        !cached.exists(),
        "libcni result cache left: {}",
        cached.display()
    );
    assert!(!netns.exists(), "pod netns left: {}", netns.display());
}

/// The IPv4 addresses (`a.b.c.d/len`) on `eth0` in the pod netns `netns`.
pub fn pod_addrs(netns: &Path) -> Vec<String> {
    let out = exec::run(
        exec::nsenter(netns, &["ip", "-j", "-4", "addr", "show", "dev", "eth0"]),
        None,
        exec::DEFAULT_TIMEOUT,
    )
    .expect_ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
    let mut addrs = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            if let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                addrs.push(format!("{ip}/{len}"));
            }
        }
    }
    addrs
}
