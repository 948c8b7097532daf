//! DEL in portmap's layout: by recorded handle, or by listing the table
//! for the container's comment.

use super::super::nft::{self, check_ident, ListedRule};
use super::super::nftnl::{DelRule, NfSocket, NFPROTO_IPV4, NFPROTO_IPV6};
use super::add::RuleRef;
use super::layout::{OWNED_CHAINS, TABLE};
use super::path::NftPath;
use crate::error::{Error, Result};

/// Deletes the rules [`add_port_mappings_tracked`](crate::firewall::add_port_mappings_tracked) returned, by handle,
/// without listing the table: listing costs the kernel and us time in
/// proportion to every mapping on the node (~4 ms of a DEL's CPU with 500
/// pods), reading one rule back by its handle does not. Each rule is read
/// back first and deleted only if it still carries `container_id`'s
/// comment, in a chain of ours: a handle is unique only within one life of
/// the table, which a reboot or a human can end.
///
/// `Ok(false)` when that cannot be shown for every rule (one is gone or is
/// not ours, the `nft` path is forced, no netfilter socket): nothing was
/// deleted and the caller lists the table with [`del_port_mappings_in`](crate::firewall::del_port_mappings_in),
/// which is always right.
pub fn del_port_rules(container_id: &str, rules: &[RuleRef]) -> Result<bool> {
    let ctx = format!("delete port mappings of {container_id} by handle in table {TABLE}");
    check_ident(&ctx, "container ID", container_id)?;
    if rules.is_empty() || NftPath::from_env() == NftPath::Cli {
        return Ok(false);
    }
    NfSocket::close_lingering();
    let Ok(mut sock) = NfSocket::open() else {
        return Ok(false);
    };
    let nfproto = |r: &RuleRef| if r.v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
    for r in rules {
        if !OWNED_CHAINS.contains(&r.chain.as_str()) {
            return Ok(false);
        }
        let found = sock.get_rule(nfproto(r), TABLE, &r.chain, r.handle, &ctx)?;
        if found.and_then(|f| f.comment).as_deref() != Some(container_id) {
            return Ok(false);
        }
    }
    let dels: Vec<DelRule> = rules
        .iter()
        .map(|r| DelRule {
            family: nfproto(r),
            table: TABLE,
            chain: &r.chain,
            handle: r.handle,
        })
        .collect();
    match sock.del_rules(&dels, &ctx) {
        Ok(()) => {
            // As in del_port_mappings_via: closing now would wait for the
            // deleted rules' RCU grace period.
            sock.linger();
            Ok(true)
        }
        // Deleted under our feet between the read and the delete.
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove every rule commented with `container_id` from chains `hostports`,
/// `hostip_hostports` and `masquerading` of `ip` and `ip6 cni_hostport`,
/// whoever wrote it (netboot or upstream portmap). Idempotent: a missing
/// table, or no matching rule, is success. Costs one listing per family
/// (netlink: a GETRULE dump of the table; CLI: `nft -j list table`) plus,
/// only if something matched, one delete transaction (rules can only be
/// deleted by handle). `network` is validated but, as upstream, not part of
/// the match.
pub fn del_port_mappings(network: &str, container_id: &str) -> Result<()> {
    del_port_mappings_in(network, container_id, true, true)
}

/// [`del_port_mappings`](crate::firewall::del_port_mappings) limited to the address families the container
/// had: each family costs one listing, which grows with the number of
/// mappings on the node, so an IPv4-only pod skips the `ip6` table.
pub fn del_port_mappings_in(network: &str, container_id: &str, v4: bool, v6: bool) -> Result<()> {
    del_port_mappings_via(NftPath::from_env(), network, container_id, v4, v6)
}

/// [`del_port_mappings_in`] through `path`.
fn del_port_mappings_via(
    path: NftPath,
    network: &str,
    container_id: &str,
    v4: bool,
    v6: bool,
) -> Result<()> {
    let ctx = format!("delete port mappings of {container_id} ({network}) in table {TABLE}");
    check_ident(&ctx, "network name", network)?;
    check_ident(&ctx, "container ID", container_id)?;
    let families: Vec<(&str, u8)> = [("ip", NFPROTO_IPV4), ("ip6", NFPROTO_IPV6)]
        .into_iter()
        .filter(|(f, _)| if *f == "ip" { v4 } else { v6 })
        .collect();
    let mut sock = match path {
        NftPath::Netlink => {
            NfSocket::close_lingering();
            NfSocket::open().ok()
        }
        NftPath::Cli => None,
    };
    // A racing DEL/ADD can delete a handle between our list and our delete
    // (the batch then fails as a whole with ENOENT); list again once.
    let mut attempt = 0;
    loop {
        let outcome = match sock.as_mut() {
            Some(sock) => {
                let mut doomed = Vec::new();
                for (_, nfproto) in &families {
                    let rules = sock.dump_rules(*nfproto, TABLE, &ctx)?;
                    doomed.extend(rules.into_iter().filter(|r| {
                        OWNED_CHAINS.contains(&r.chain.as_str())
                            && r.comment.as_deref() == Some(container_id)
                    }));
                }
                if doomed.is_empty() {
                    return Ok(());
                }
                let dels: Vec<DelRule> = doomed
                    .iter()
                    .map(|r| DelRule {
                        family: r.family,
                        table: TABLE,
                        chain: &r.chain,
                        handle: r.handle,
                    })
                    .collect();
                sock.del_rules(&dels, &ctx)
            }
            None => {
                let mut doomed: Vec<ListedRule> = Vec::new();
                for (f, _) in &families {
                    let rules = nft::list(&ctx, f, TABLE, None)?.unwrap_or_default();
                    doomed.extend(rules.into_iter().filter(|r| {
                        OWNED_CHAINS.contains(&r.chain.as_str())
                            && r.comment.as_deref() == Some(container_id)
                    }));
                }
                if doomed.is_empty() {
                    return Ok(());
                }
                let script = nft::delete_lines(TABLE, &doomed.iter().collect::<Vec<_>>());
                nft::apply(&ctx, &script)
            }
        };
        match outcome {
            Ok(()) => {
                // Closing now would wait for the deleted rules' RCU grace
                // period; see nftnl "Closing after a delete".
                if let Some(s) = sock.take() {
                    s.linger();
                }
                return Ok(());
            }
            Err(Error::Command { .. }) if attempt == 0 => attempt += 1,
            Err(e) if attempt == 0 && e.errno() == Some(libc::ENOENT) => attempt += 1,
            other => return other,
        }
    }
}
