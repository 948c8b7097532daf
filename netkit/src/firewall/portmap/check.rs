//! CHECK and the owner listing (GC) of portmap's layout.

use super::super::mapping::{validate, PortmapSpec};
use super::super::nft;
use super::super::nftnl::{NfSocket, NFPROTO_IPV4, NFPROTO_IPV6};
use super::layout::{HOSTPORTS, HOSTPORTS_ALL, OWNED_CHAINS, TABLE};
use super::path::NftPath;
use super::shape::expected;
use crate::error::{Error, Result};

/// Verify that every rule [`add_port_mappings`](crate::firewall::add_port_mappings) would add for `spec` is
/// present (rule text and comment), and that the base chains still jump to
/// `hostports_all` and it to `hostports`. The error names the first missing
/// rule and its chain. Stricter than upstream's CHECK, which only counts
/// comments.
pub fn check_port_mappings(spec: &PortmapSpec) -> Result<()> {
    let ctx = format!(
        "check port mappings for {} ({}, {})",
        spec.container_id, spec.network, spec.ifname
    );
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(());
    }
    for fr in expected(spec) {
        let f = fr.family;
        let Some(listed) = nft::list(&ctx, f, TABLE, None)? else {
            return Err(Error::NotFound {
                what: format!("{ctx}: table {f} {TABLE}"),
            });
        };
        let has = |chain: &str, text: &str, comment: Option<&str>| {
            listed
                .iter()
                .any(|r| r.chain == chain && r.text == text && r.comment.as_deref() == comment)
        };
        let texts: Vec<(&str, String)> = fr.chained().map(|(c, r)| (c, r.text())).collect();
        let jump_all = format!("fib daddr type local jump {HOSTPORTS_ALL}");
        let jump_hp = format!("jump {HOSTPORTS}");
        let wanted = [
            ("prerouting", jump_all.as_str(), None),
            ("output", jump_all.as_str(), None),
            (HOSTPORTS_ALL, jump_hp.as_str(), None),
        ]
        .into_iter()
        .chain(
            texts
                .iter()
                .map(|(chain, r)| (*chain, r.as_str(), Some(spec.container_id))),
        );
        for (chain, text, comment) in wanted {
            if !has(chain, text, comment) {
                let c = comment
                    .map(|c| format!(" comment \"{c}\""))
                    .unwrap_or_default();
                return Err(Error::NotFound {
                    what: format!("{ctx}: rule `{text}`{c} in chain {f} {TABLE} {chain}"),
                });
            }
        }
    }
    Ok(())
}

/// Every distinct comment (= container ID) on a rule in the owned chains of
/// `ip`/`ip6 cni_hostport`, sorted. For GC: the plugin maps each to its
/// attachment records and calls [`del_port_mappings`](crate::firewall::del_port_mappings) for the orphans. Note
/// that upstream portmap's rules show up here too (same layout).
pub fn list_port_mapping_owners() -> Result<Vec<String>> {
    list_port_mapping_owners_via(NftPath::from_env())
}

/// [`list_port_mapping_owners`] through `path`.
fn list_port_mapping_owners_via(path: NftPath) -> Result<Vec<String>> {
    let ctx = format!("list port mapping owners in table {TABLE}");
    let mut sock = match path {
        NftPath::Netlink => NfSocket::open().ok(),
        NftPath::Cli => None,
    };
    let mut owners = Vec::new();
    for (f, nfproto) in [("ip", NFPROTO_IPV4), ("ip6", NFPROTO_IPV6)] {
        let rules: Vec<(String, Option<String>)> = match sock.as_mut() {
            Some(sock) => sock
                .dump_rules(nfproto, TABLE, &ctx)?
                .into_iter()
                .map(|r| (r.chain, r.comment))
                .collect(),
            None => nft::list(&ctx, f, TABLE, None)?
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.chain, r.comment))
                .collect(),
        };
        for (chain, comment) in rules {
            if let (true, Some(c)) = (OWNED_CHAINS.contains(&chain.as_str()), comment) {
                owners.push(c);
            }
        }
    }
    owners.sort();
    owners.dedup();
    Ok(owners)
}
