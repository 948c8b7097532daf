//! ADD in portmap's layout: one rule per mapping (plus masquerade), over
//! netlink when the tables exist, else through one `nft` script.

use super::super::mapping::{validate, PortmapSpec};
use super::super::nft;
use super::super::nftnl::{NewRule, NfSocket, NFPROTO_IPV6};
use super::layout::TABLE;
use super::path::NftPath;
use super::shape::{add_script, expected, rules_script};
use crate::error::{Error, Result};

/// Program `spec`'s mappings: one DNAT rule per mapping (plus the
/// masquerade rules when `snat`), each commented with the container ID, in
/// one nf_tables transaction (see [`add_port_mappings_tracked`](crate::firewall::add_port_mappings_tracked)).
///
/// No mappings: nothing is done (upstream portmap returns early too).
/// Like upstream, ADD does not look for older rules of the same container:
/// the plugin's rollback and crash recovery call [`del_port_mappings`](crate::firewall::del_port_mappings)
/// first, which keeps the steady-state ADD at one transaction. Afterwards,
/// see [`needs_route_localnet`](crate::firewall::needs_route_localnet).
pub fn add_port_mappings(spec: &PortmapSpec) -> Result<()> {
    add_port_mappings_via(NftPath::from_env(), spec).map(|_| ())
}

/// One rule [`add_port_mappings_tracked`](crate::firewall::add_port_mappings_tracked) created, by handle: what
/// [`del_port_rules`](crate::firewall::del_port_rules) needs to delete exactly it without listing the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// In `ip6 cni_hostport` rather than `ip cni_hostport`.
    pub v6: bool,
    pub chain: String,
    pub handle: u64,
}

/// [`add_port_mappings`](crate::firewall::add_port_mappings), also returning the rules it created when the
/// netlink path added them (empty when `nft` did: DEL then lists the table).
pub fn add_port_mappings_tracked(spec: &PortmapSpec) -> Result<Vec<RuleRef>> {
    add_port_mappings_via(NftPath::from_env(), spec)
}

/// [`add_port_mappings_tracked`] through `path`.
///
/// Fast path (either way): on a node that already has the tables, only the
/// rules are added, as one batch (netlink: NEWRULE messages between
/// BATCH_BEGIN/END; CLI: one `nft -f -` of `add rule` lines, ~5 ms of
/// exec). Re-declaring existing chains costs the kernel ~15 ms per
/// transaction, and that would be paid on every ADD. If anything is missing
/// (first ADD on the node, upstream or a human deleted a chain) the batch
/// fails as a whole with ENOENT, nothing was changed, and the full `nft -f -`
/// script creates everything and rebuilds the shared jumps as upstream does.
/// A jump or base chain removed by hand while `hostports`/`masquerading`
/// stay is not repaired here; CHECK reports it.
fn add_port_mappings_via(path: NftPath, spec: &PortmapSpec) -> Result<Vec<RuleRef>> {
    let ctx = format!(
        "add port mappings for {} ({}, {}) in table {TABLE}",
        spec.container_id, spec.network, spec.ifname
    );
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(Vec::new());
    }
    let rules = expected(spec);
    if rules.is_empty() {
        return Err(Error::invalid(ctx, "no container IP to map ports to"));
    }
    let sock = match path {
        NftPath::Netlink => NfSocket::open().ok(),
        NftPath::Cli => None,
    };
    let fast = match sock {
        Some(mut sock) => {
            let new: Vec<NewRule> = rules
                .iter()
                .flat_map(|fr| {
                    fr.chained().map(|(chain, r)| NewRule {
                        family: fr.nfproto,
                        table: TABLE,
                        chain,
                        exprs: r.exprs(),
                        comment: Some(spec.container_id),
                    })
                })
                .collect();
            match sock.add_rules(&new, &ctx) {
                Err(e) if e.errno() == Some(libc::ENOENT) => Err(e),
                Ok(echoed) => {
                    return Ok(echoed
                        .into_iter()
                        .filter(|r| r.table == TABLE)
                        .map(|r| RuleRef {
                            v6: r.family == NFPROTO_IPV6,
                            chain: r.chain,
                            handle: r.handle,
                        })
                        .collect())
                }
                Err(e) => return Err(e),
            }
        }
        None => nft::apply(&ctx, &rules_script(spec, &rules)?),
    };
    match fast {
        Err(Error::Command { .. } | Error::Netlink { .. }) => {
            nft::apply(&ctx, &add_script(spec, &rules)?).map(|()| Vec::new())
        }
        other => other.map(|()| Vec::new()),
    }
}
