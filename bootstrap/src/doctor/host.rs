//! The node's own setup around the planes: cni0's gateway addresses,
//! forwarding per family, and masquerade when FLANNEL_IPMASQ is true.

use ipnet::IpNet;

use super::ctx::Node;
use super::finding::Finding;
use super::node::RESTART_AGENT;
use crate::subnet_env::family_name;

/// cni0 carries the gateway (the first address of this node's subnet) of
/// every family subnet.env names, and no other address of that family.
pub fn cni0(node: &Node) -> Vec<Finding> {
    const CHECK: &str = "cni0";
    let mut nl = match netkit::Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            return vec![Finding::problem(
                CHECK,
                format!("cannot open netlink: {e}"),
                "run doctor as root",
            )]
        }
    };
    let Some(link) = nl.link().by_name("cni0").ok().flatten() else {
        return vec![Finding::ok(
            CHECK,
            "not created yet (the CNI plugin creates it with the first pod)",
        )];
    };
    let gws: Vec<(bool, IpNet)> = node
        .families()
        .into_iter()
        .filter_map(|v6| Some((v6, node.env.as_ref()?.subnet(v6)?)))
        .collect();
    if gws.is_empty() {
        return vec![Finding::skipped(
            CHECK,
            "no subnet in subnet.env to compare with",
        )];
    }
    let have: Vec<IpNet> = nl
        .addr()
        .list(Some(link.index))
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.addr)
        .filter(|a| !matches!(a, IpNet::V6(x) if (x.addr().segments()[0] & 0xffc0) == 0xfe80))
        .collect();
    let (mut stale, mut missing) = (Vec::new(), Vec::new());
    for (v6, want) in &gws {
        let fam: Vec<String> = have
            .iter()
            .filter(|a| matches!(a, IpNet::V6(_)) == *v6)
            .map(ToString::to_string)
            .collect();
        if fam.is_empty() {
            missing.push(format!(
                "cni0 has no {} address, but this node's {} subnet wants {want} on it as the pods' gateway",
                family_name(*v6),
                family_name(*v6)
            ));
        } else if !have.contains(want) || fam.len() != 1 {
            stale.push(format!(
                "cni0 has [{}] but this node's {} subnet wants {want}",
                fam.join(", "),
                family_name(*v6)
            ));
        }
    }
    if stale.is_empty() && missing.is_empty() {
        let shown: Vec<String> = gws.iter().map(|(_, g)| g.to_string()).collect();
        return vec![Finding::ok(
            CHECK,
            format!(
                "carries {}, the gateway of this node's subnet",
                shown.join(" and ")
            ),
        )];
    }
    let mut what = Vec::new();
    if !stale.is_empty() {
        what.push(format!(
            "{} (\"cni0\" already has an IP address different from ...): the subnet changed under it",
            stale.join("; ")
        ));
    }
    what.extend(missing);
    vec![Finding::problem(
        CHECK,
        what.join("; "),
        "with netboot-cni in native mode the next pod ADD puts the right addresses on cni0 (replacing a stale one once no pod uses the old subnet); otherwise delete the pods on the old subnet, then `ip link del cni0`: the CNI plugin recreates it",
    )]
}

/// `ip_forward` (IPv4) and `ip6_forward` (IPv6) for the enabled families.
pub fn forwarding(node: &Node) -> Vec<Finding> {
    node.families()
        .into_iter()
        .map(|v6| {
            let (check, key, path) = if v6 {
                (
                    "ip6_forward",
                    "net.ipv6.conf.all.forwarding",
                    "/proc/sys/net/ipv6/conf/all/forwarding",
                )
            } else {
                (
                    "ip_forward",
                    "net.ipv4.ip_forward",
                    "/proc/sys/net/ipv4/ip_forward",
                )
            };
            match std::fs::read_to_string(path) {
                Ok(v) if v.trim() == "1" => Finding::ok(check, format!("{key} = 1")),
                Ok(v) => Finding::problem(
                    check,
                    format!(
                        "{key} = {}: this node does not route {} pod traffic to other nodes or out",
                        v.trim(),
                        family_name(v6)
                    ),
                    format!("`sysctl -w {key}=1` (and set it in /etc/sysctl.d/ to survive reboots); the agent and netboot-cni turn it on when they set the node up"),
                ),
                Err(e) => Finding::skipped(check, format!("cannot read {path}: {e}")),
            }
        })
        .collect()
}

/// With FLANNEL_IPMASQ=true the CNI plugin leaves masquerade to the node:
/// every family's subnet needs the agent's rule (or flanneld's).
pub fn masquerade(node: &Node) -> Finding {
    const CHECK: &str = "masquerade";
    let Some(env) = &node.env else {
        return Finding::skipped(CHECK, "no subnet.env (see the subnet.env check)");
    };
    if !env.ipmasq() {
        return Finding::ok(
            CHECK,
            "FLANNEL_IPMASQ is not true: the node masquerades nothing (the CNI plugin masquerades per pod)",
        );
    }
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for v6 in node.families() {
        let Some(sn) = env.subnet_net(v6) else {
            continue;
        };
        let present = netkit::firewall::node_masquerade_present(crate::agent::RULE_TAG, sn)
            .unwrap_or(false)
            // flanneld's own rule: a node run by flanneld masquerades there.
            || netkit::firewall::flanneld_masquerade_present(sn).unwrap_or(false);
        if present {
            have.push(sn.to_string());
        } else {
            missing.push((v6, sn));
        }
    }
    if missing.is_empty() {
        return Finding::ok(
            CHECK,
            format!(
                "pod traffic from {} leaving the cluster network is masqueraded",
                have.join(" and ")
            ),
        );
    }
    let what: Vec<String> = missing
        .iter()
        .map(|(v6, sn)| format!("{sn} ({})", family_name(*v6)))
        .collect();
    Finding::problem(
        CHECK,
        format!(
            "FLANNEL_IPMASQ=true, but nothing masquerades traffic from {} leaving the cluster network: pods cannot reach anything outside it (and the CNI plugin, seeing IPMASQ true, does not masquerade either)",
            what.join(" and ")
        ),
        format!("{RESTART_AGENT}; with --ip-masq it writes the rule (nft table inet netboot, chain postrouting) for each family. Or run the agent without --ip-masq, so that subnet.env says FLANNEL_IPMASQ=false and the CNI plugin masquerades per pod"),
    )
}
