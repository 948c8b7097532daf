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
//! policy DROP, which needs its own ACCEPT rule there: that is what
//! [`ensure_iptables_forward_accept`] adds).

use std::fmt::Write as _;

use ipnet::IpNet;

use super::masq::fam;

use super::iptables;
use super::nft::{self, check_ident, quote_comment, ListedRule};
use crate::error::Result;

const TABLE: &str = "inet netboot";
const CHAIN: &str = "forward";

fn tag(network: &str) -> String {
    format!("netboot-fwd:{network}")
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

// ---------------------------------------------------------------------------
// iptables `filter` FORWARD: what actually overrides a DROP policy there.
// ---------------------------------------------------------------------------
//
// Why this exists next to the nft rules above: Docker (and firewalld-style
// rule sets) set `iptables -P FORWARD DROP` or end FORWARD with `-j REJECT`.
// That chain is a base chain of its own (table `ip filter` under
// iptables-nft, or legacy xtables), and netfilter only lets a packet through
// a hook when *every* base chain on it accepts; an accept in `inet netboot`
// cannot overrule it. The only thing that can is an ACCEPT inside that same
// chain before its policy applies, which is what flanneld does with its
// `FLANNEL-FWD` chain. We do the same, with our own chain name so that
// `netboot leave` never deletes a chain it did not create:
//
// ```text
// -I FORWARD 1 -m comment --comment "netboot forward" -j NETBOOT-FWD
// -A NETBOOT-FWD -s <pod network> -m comment --comment "netboot forward" -j ACCEPT
// -A NETBOOT-FWD -d <pod network> -m comment --comment "netboot forward" -j ACCEPT
// ```
//
// - Through the `iptables-save`/`iptables-restore --noflush` binaries, not
//   nft: the DROP we must overrule lives wherever the node's iptables puts
//   it (legacy xtables or iptables-nft), and the binary always writes to
//   that same place; nft writes into iptables-nft's tables would also lose
//   the xtables metadata iptables needs to read them back.
// - One restore per change: declaring `:NETBOOT-FWD` under `--noflush`
//   creates or flushes the chain, so the rules are replaced atomically.
//   Nothing is written when the rules are already exactly in place, so
//   calling this on every resync costs one `iptables-save`.
// - The jump goes to the top of FORWARD (flanneld appends): an appended
//   jump would come after a trailing `-j REJECT`.
// - Only when iptables is installed: without it no iptables rule can drop
//   anything, and the nft rules above are all there is.

/// The iptables chain holding the accept rules.
pub const IPT_CHAIN: &str = "NETBOOT-FWD";
const IPT_COMMENT: &str = "netboot forward";

/// What [`ensure_iptables_forward_accept`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IptForward {
    /// `iptables-save`/`iptables-restore` are not installed: nothing to do.
    NoIptables,
    /// The rules were already exactly in place.
    Unchanged,
    /// The chain was (re)written or the jump added.
    Written,
}

fn ipt_wanted(net: IpNet) -> [String; 2] {
    let n = net.trunc();
    [
        format!("-A {IPT_CHAIN} -s {n} -m comment --comment \"{IPT_COMMENT}\" -j ACCEPT"),
        format!("-A {IPT_CHAIN} -d {n} -m comment --comment \"{IPT_COMMENT}\" -j ACCEPT"),
    ]
}

/// `-A FORWARD … -j NETBOOT-FWD` lines of an `iptables-save -t filter` dump.
fn ipt_jumps(dump: &str) -> Vec<&str> {
    let jump = format!(" -j {IPT_CHAIN}");
    dump.lines()
        .filter(|l| l.starts_with("-A FORWARD ") && l.ends_with(&jump))
        .collect()
}

fn ipt_chain_rules(dump: &str) -> Vec<&str> {
    let p = format!("-A {IPT_CHAIN} ");
    dump.lines().filter(|l| l.starts_with(&p)).collect()
}

fn ipt_has_chain(dump: &str) -> bool {
    let p = format!(":{IPT_CHAIN} ");
    dump.lines().any(|l| l.starts_with(&p))
}

/// The restore input making the dump match, or `None` when it already does.
fn ipt_ensure_script(dump: &str, net: IpNet) -> Option<String> {
    let want = ipt_wanted(net);
    let have = ipt_chain_rules(dump);
    let jumps = ipt_jumps(dump);
    if ipt_has_chain(dump) && have == want && jumps.len() == 1 {
        return None;
    }
    let mut s = format!("*filter\n:{IPT_CHAIN} - [0:0]\n");
    for w in &want {
        let _ = writeln!(s, "{w}");
    }
    match jumps.split_first() {
        None => {
            let _ = writeln!(
                s,
                "-I FORWARD 1 -m comment --comment \"{IPT_COMMENT}\" -j {IPT_CHAIN}"
            );
        }
        Some((_, extra)) => {
            for j in extra {
                let _ = writeln!(s, "-D {}", &j[3..]);
            }
        }
    }
    s.push_str("COMMIT\n");
    Some(s)
}

fn ipt_remove_script(dump: &str) -> Option<String> {
    let jumps = ipt_jumps(dump);
    if !ipt_has_chain(dump) && jumps.is_empty() {
        return None;
    }
    let mut s = String::from("*filter\n");
    for j in jumps {
        let _ = writeln!(s, "-D {}", &j[3..]);
    }
    if ipt_has_chain(dump) {
        let _ = writeln!(s, "-F {IPT_CHAIN}\n-X {IPT_CHAIN}");
    }
    s.push_str("COMMIT\n");
    Some(s)
}

/// `iptables-save -t filter`, `None` when iptables is not installed.
fn ipt_dump(ctx: &str, v6: bool) -> Result<Option<String>> {
    match iptables::save(ctx, v6, "filter") {
        Ok(dump) => Ok(Some(dump)),
        Err(crate::Error::ToolMissing { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Make the iptables `filter` FORWARD chain accept traffic from and to
/// `pod_network` (see the section comment above). Idempotent.
pub fn ensure_iptables_forward_accept(pod_network: IpNet) -> Result<IptForward> {
    let v6 = matches!(pod_network, IpNet::V6(_));
    let ctx = format!("allow forwarding of {pod_network} in iptables filter FORWARD ({IPT_CHAIN})");
    let Some(dump) = ipt_dump(&ctx, v6)? else {
        return Ok(IptForward::NoIptables);
    };
    if !iptables::can_restore(v6) {
        return Ok(IptForward::NoIptables);
    }
    match ipt_ensure_script(&dump, pod_network) {
        None => Ok(IptForward::Unchanged),
        Some(script) => {
            iptables::restore(&ctx, v6, &script)?;
            Ok(IptForward::Written)
        }
    }
}

/// Remove the jump and the `NETBOOT-FWD` chain (IPv4 and IPv6). Idempotent;
/// a node without iptables has nothing to remove.
pub fn remove_iptables_forward_accept() -> Result<()> {
    for v6 in [false, true] {
        let ctx = format!(
            "remove {IPT_CHAIN} from {}iptables filter FORWARD",
            if v6 { "ip6" } else { "" }
        );
        let Some(dump) = ipt_dump(&ctx, v6)? else {
            continue;
        };
        if let Some(script) = ipt_remove_script(&dump) {
            iptables::restore(&ctx, v6, &script)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :NETBOOT-FWD - [0:0]\n\
        -A FORWARD -m comment --comment \"netboot forward\" -j NETBOOT-FWD\n\
        -A FORWARD -j DOCKER-USER\n\
        -A NETBOOT-FWD -s 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT\n\
        -A NETBOOT-FWD -d 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT\nCOMMIT\n";

    #[test]
    fn ensure_is_a_no_op_when_in_place() {
        let net: IpNet = "10.2.0.0/16".parse().unwrap();
        assert_eq!(ipt_ensure_script(DUMP, net), None);
    }

    #[test]
    fn ensure_writes_chain_and_jump_once() {
        let net: IpNet = "10.2.0.0/16".parse().unwrap();
        let empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n";
        assert_eq!(
            ipt_ensure_script(empty, net).unwrap(),
            "*filter\n:NETBOOT-FWD - [0:0]\n\
             -A NETBOOT-FWD -s 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT\n\
             -A NETBOOT-FWD -d 10.2.0.0/16 -m comment --comment \"netboot forward\" -j ACCEPT\n\
             -I FORWARD 1 -m comment --comment \"netboot forward\" -j NETBOOT-FWD\nCOMMIT\n"
        );
        // Another network: the chain is rewritten, the jump kept.
        let other: IpNet = "10.3.0.0/16".parse().unwrap();
        let s = ipt_ensure_script(DUMP, other).unwrap();
        assert!(s.contains("-A NETBOOT-FWD -s 10.3.0.0/16"), "{s}");
        assert!(!s.contains("FORWARD"), "{s}");
    }

    #[test]
    fn remove_deletes_jump_and_chain() {
        assert_eq!(
            ipt_remove_script(DUMP).unwrap(),
            "*filter\n-D FORWARD -m comment --comment \"netboot forward\" -j NETBOOT-FWD\n\
             -F NETBOOT-FWD\n-X NETBOOT-FWD\nCOMMIT\n"
        );
        assert_eq!(ipt_remove_script("*filter\nCOMMIT\n"), None);
    }
}
