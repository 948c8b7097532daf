//! Forwarding accept rules for a pod network (flanneld's `FLANNEL-FWD`).
//!
//! In table `inet netboot`, chain `forward` (filter, forward hook, priority
//! 0), two rules per network and family:
//!
//! ```text
//! ip saddr <pod network> accept comment "netboot-fwd:<network>"
//! ip daddr <pod network> accept comment "netboot-fwd:<network>"
//! ```
//!
//! The chain's policy is accept, so it never drops anything itself. Note
//! nftables' semantics: a packet passes a hook only if *every* base chain on
//! it lets it through, so these rules document intent and cover nodes whose
//! only forward filtering is this table; they cannot override a `drop`
//! verdict of another table (e.g. iptables-nft's `ip filter FORWARD` with
//! policy DROP, which needs its own ACCEPT rule there).

use std::fmt::Write as _;

use ipnet::IpNet;

use super::nft::{self, check_ident, quote_comment, ListedRule};
use crate::error::Result;

const TABLE: &str = "inet netboot";
const CHAIN: &str = "forward";

fn tag(network: &str) -> String {
    format!("netboot-fwd:{network}")
}

fn fam(n: &IpNet) -> &'static str {
    match n {
        IpNet::V4(_) => "ip",
        IpNet::V6(_) => "ip6",
    }
}

fn wanted(net: IpNet) -> [String; 2] {
    let f = fam(&net);
    let n = net.trunc();
    [
        format!("{f} saddr {n} accept"),
        format!("{f} daddr {n} accept"),
    ]
}

fn ours<'a>(rules: &'a [ListedRule], tag: &str) -> Vec<&'a ListedRule> {
    rules
        .iter()
        .filter(|r| r.chain == CHAIN && r.comment.as_deref() == Some(tag))
        .collect()
}

/// Make `network`'s accept rules for `pod_network` exactly present.
/// Returns `Ok(false)` without writing when they already are.
pub fn ensure_forward_accept(network: &str, pod_network: IpNet) -> Result<bool> {
    let ctx = format!("ensure forwarding for {network} ({pod_network}) in {TABLE} {CHAIN}");
    check_ident(&ctx, "network name", network)?;
    let tag = tag(network);
    let comment = quote_comment(&ctx, &tag)?;
    let want = wanted(pod_network);
    let listed = nft::list(&ctx, "inet", "netboot", Some(CHAIN))?.unwrap_or_default();
    let mine = ours(&listed, &tag);
    let have: Vec<&str> = mine.iter().map(|r| r.text.as_str()).collect();
    if have.len() == want.len() && want.iter().all(|w| have.contains(&w.as_str())) {
        return Ok(false);
    }
    let mut s = format!(
        "add table {TABLE} {{ comment \"netboot node masquerade\" ; }}\n\
         add chain {TABLE} {CHAIN} {{ type filter hook forward priority 0 ; policy accept ; }}\n"
    );
    s.push_str(&nft::delete_lines("netboot", &mine));
    for w in &want {
        let _ = writeln!(s, "add rule {TABLE} {CHAIN} {w} comment {comment}");
    }
    nft::apply(&ctx, &s)?;
    Ok(true)
}

/// Delete `network`'s accept rules. Idempotent.
pub fn remove_forward_accept(network: &str) -> Result<()> {
    let ctx = format!("remove forwarding for {network} from {TABLE} {CHAIN}");
    check_ident(&ctx, "network name", network)?;
    let tag = tag(network);
    let listed = nft::list(&ctx, "inet", "netboot", Some(CHAIN))?.unwrap_or_default();
    let mine = ours(&listed, &tag);
    if mine.is_empty() {
        return Ok(());
    }
    nft::apply(&ctx, &nft::delete_lines("netboot", &mine))
}
