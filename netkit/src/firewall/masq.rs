//! Masquerade for pod traffic leaving the cluster network.
//!
//! Two layouts:
//!
//! - **Per node** ([`ensure_node_masquerade`]), the one netboot uses: in
//!   table `inet netboot`, chain `postrouting` (nat, postrouting hook,
//!   priority 100 = srcnat), one rule per (network, address family):
//!
//!   ```text
//!   ip saddr <pod subnet> ip daddr != 224.0.0.0/4 ip daddr != <cluster nets> masquerade comment "netboot-masq:<network>"
//!   ```
//!
//!   flanneld's FLANNEL-POSTRTG semantics (pod → outside the cluster network
//!   is NATed to the node address, pod ↔ pod across nodes is not, multicast
//!   never), installed once per node instead of once per pod, so ADD and DEL
//!   never touch it and its cost does not grow with pods.
//! - **Per attachment** masquerade (upstream bridge's `ipMasq`) is never
//!   written by netboot: the reference bridge plugin writes and deletes
//!   its own rules.

use std::fmt::Write as _;

use ipnet::IpNet;

use super::nft::{self, check_ident, quote_comment, ListedRule};
use crate::error::{Error, Result};

const NODE_TABLE: &str = "inet netboot";
const NODE_CHAIN: &str = "postrouting";

/// The comment tagging `network`'s node masquerade rules.
fn node_masquerade_tag(network: &str) -> String {
    format!("netboot-masq:{network}")
}

/// `ip` or `ip6`.
pub(super) fn fam(n: &IpNet) -> &'static str {
    match n {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

/// The node rule for `pod_subnet`, as `nft list` prints it back.
fn node_rule(pod_subnet: IpNet, cluster: &[IpNet]) -> String {
    let f = fam(&pod_subnet);
    let mcast = if f == "ip" { "224.0.0.0/4" } else { "ff00::/8" };
    // Same family, canonical, and without networks contained in another
    // (an anonymous interval set rejects overlapping elements).
    let mut nets: Vec<IpNet> = cluster
        .iter()
        .filter(|n| fam(n) == f)
        .map(IpNet::trunc)
        .collect();
    nets.sort();
    nets.dedup();
    let nets: Vec<String> = nets
        .iter()
        .filter(|n| !nets.iter().any(|o| o != *n && o.contains(*n)))
        .map(ToString::to_string)
        .collect();
    let mut r = format!("{f} saddr {} {f} daddr != {mcast}", pod_subnet.trunc());
    match nets.len() {
        0 => {}
        1 => {
            let _ = write!(r, " {f} daddr != {}", nets[0]);
        }
        _ => {
            // `nft list` prints set elements sorted; render ours the same way.
            let mut sorted = nets.clone();
            sorted.sort();
            let _ = write!(r, " {f} daddr != {{ {} }}", sorted.join(", "));
        }
    }
    r.push_str(" masquerade");
    r
}

fn ours<'a>(rules: &'a [ListedRule], tag: &str, family: Option<&str>) -> Vec<&'a ListedRule> {
    rules
        .iter()
        .filter(|r| r.chain == NODE_CHAIN && r.comment.as_deref() == Some(tag))
        .filter(|r| family.is_none_or(|f| r.text.starts_with(&format!("{f} saddr "))))
        .collect()
}

/// Install (or replace) `network`'s node masquerade rule for `pod_subnet`'s
/// family: pod subnet → anywhere outside `cluster_networks` (same family
/// only are used) and outside multicast is masqueraded. Idempotent: returns
/// `Ok(false)` after a single `nft -j list chain` when exactly that rule is
/// present; otherwise one transaction replaces this network's rules of that
/// family and returns `Ok(true)`. Call once per family for dual-stack.
pub fn ensure_node_masquerade(
    network: &str,
    pod_subnet: IpNet,
    cluster_networks: &[IpNet],
) -> Result<bool> {
    let ctx =
        format!("ensure masquerade for {network} ({pod_subnet}) in {NODE_TABLE} {NODE_CHAIN}");
    check_ident(&ctx, "network name", network)?;
    let tag = node_masquerade_tag(network);
    let comment = quote_comment(&ctx, &tag)?;
    let want = node_rule(pod_subnet, cluster_networks);
    let f = fam(&pod_subnet);
    for attempt in 0..2 {
        let listed = nft::list(&ctx, "inet", "netboot", Some(NODE_CHAIN))?.unwrap_or_default();
        let mine = ours(&listed, &tag, Some(f));
        if mine.len() == 1 && mine[0].text == want {
            return Ok(false);
        }
        let mut s = format!(
            "add table {NODE_TABLE} {{ comment \"netboot node masquerade\" ; }}\n\
             add chain {NODE_TABLE} {NODE_CHAIN} {{ type nat hook postrouting priority 100 ; }}\n"
        );
        s.push_str(&nft::delete_lines("netboot", &mine));
        let _ = writeln!(
            s,
            "add rule {NODE_TABLE} {NODE_CHAIN} {want} comment {comment}"
        );
        match nft::apply(&ctx, &s) {
            // A concurrent ensure/remove deleted a handle we listed; relist.
            Err(Error::Command { .. }) if attempt == 0 && !mine.is_empty() => continue,
            Err(e) => return Err(e),
            Ok(()) => return Ok(true),
        }
    }
    unreachable!("the second attempt always returns")
}

/// Delete every rule tagged for `network` (both families). The table and
/// chain stay: deleting them could race with another network's ensure.
/// Idempotent.
pub fn remove_node_masquerade(network: &str) -> Result<()> {
    let ctx = format!("remove masquerade for {network} from {NODE_TABLE} {NODE_CHAIN}");
    check_ident(&ctx, "network name", network)?;
    let tag = node_masquerade_tag(network);
    let listed = nft::list(&ctx, "inet", "netboot", Some(NODE_CHAIN))?.unwrap_or_default();
    let mine = ours(&listed, &tag, None);
    if mine.is_empty() {
        return Ok(());
    }
    nft::apply(&ctx, &nft::delete_lines("netboot", &mine))
}

/// True when `network` has a node masquerade rule for exactly `pod_subnet`
/// (whatever its cluster-network exclusions). One `nft -j list chain`.
pub fn node_masquerade_present(network: &str, pod_subnet: IpNet) -> Result<bool> {
    let ctx = format!("look up masquerade for {network} in {NODE_TABLE} {NODE_CHAIN}");
    check_ident(&ctx, "network name", network)?;
    let tag = node_masquerade_tag(network);
    let listed = nft::list(&ctx, "inet", "netboot", Some(NODE_CHAIN))?.unwrap_or_default();
    let f = fam(&pod_subnet);
    let prefix = format!("{f} saddr {} ", pod_subnet.trunc());
    Ok(ours(&listed, &tag, Some(f))
        .iter()
        .any(|r| r.text.starts_with(&prefix)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_rule_text() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(
            node_rule(n("10.244.1.7/24"), &[n("10.244.0.0/16"), n("fd00::/48")]),
            "ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 ip daddr != 10.244.0.0/16 masquerade"
        );
        assert_eq!(
            node_rule(
                n("10.244.1.0/24"),
                &[n("10.96.0.0/12"), n("10.244.0.0/16"), n("10.244.3.0/24")]
            ),
            "ip saddr 10.244.1.0/24 ip daddr != 224.0.0.0/4 \
             ip daddr != { 10.244.0.0/16, 10.96.0.0/12 } masquerade"
        );
        assert_eq!(
            node_rule(n("fd00:1::/64"), &[]),
            "ip6 saddr fd00:1::/64 ip6 daddr != ff00::/8 masquerade"
        );
    }
}
