//! CHECK of one attachment's elements (and of the layout's rules), and the
//! whole-layout listing GC and doctor use.

use std::net::IpAddr;

use super::super::mapping::{validate, PortmapSpec};
use super::super::nftnl::{del_elem, NfSocket, SetElem, NFPROTO_INET};
use super::layout::{self, set_defs};
use super::owner::{owner_of, set_ref};
use super::plan::{describe, planned};
use crate::error::{Error, Result};

/// Verifies that every element [`add_hostports`](super::add_hostports)
/// would add for `spec` is in its map with the same data and owner, and
/// that every rule of the layout is in place (`netboot-cni` CHECK). The
/// error names the first missing element or rule.
pub fn check_hostports(spec: &PortmapSpec) -> Result<()> {
    let ctx = format!(
        "check hostPort map elements of {} ({}, {})",
        spec.container_id, spec.network, spec.ifname
    );
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(());
    }
    let owner = owner_of(spec, &ctx)?;
    let mut sock = NfSocket::open()?;
    for p in planned(spec, &owner, &ctx)? {
        let there = sock.get_elem(set_ref(&p.set), &p.elem.key, &ctx)?;
        if there.as_ref() != Some(&p.elem) {
            let found = match there {
                None => "missing".to_string(),
                Some(e) => format!(
                    "found {} owned by {}",
                    describe(&p.set, &e).map_or_else(|| "other data".into(), |d| d.0),
                    e.comment.as_deref().unwrap_or("nobody")
                ),
            };
            return Err(Error::NotFound {
                what: format!(
                    "{ctx}: element `{}` of {owner} in map inet {} {} ({found})",
                    p.what,
                    layout::TABLE,
                    p.set
                ),
            });
        }
    }
    let rules = sock.dump_rules(NFPROTO_INET, layout::TABLE, &ctx)?;
    for (chain, exprs) in layout::rules() {
        let want: Vec<String> = exprs.iter().map(|e| e.summary()).collect();
        if !rules.iter().any(|r| r.chain == chain && r.exprs == want) {
            return Err(Error::NotFound {
                what: format!(
                    "{ctx}: a rule of chain inet {} {chain} ({})",
                    layout::TABLE,
                    want.join(" ")
                ),
            });
        }
    }
    Ok(())
}

fn element(set: &str, e: SetElem) -> HostportElement {
    let d = describe(set, &e);
    HostportElement {
        what: d.as_ref().map_or_else(|| "?".into(), |d| d.0.clone()),
        pod: d.map(|d| d.1),
        owner: e.comment,
        key: e.key,
        set: set.to_string(),
    }
}

/// One element of the layout as listed: its set, what it maps, the pod
/// address it points at and its owner comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostportElement {
    pub set: String,
    /// `tcp 8080 -> 10.2.1.5:80`, `masquerade 127.0.0.1 -> 10.2.1.5`.
    pub what: String,
    pub pod: Option<IpAddr>,
    /// `<network>/<containerID>/<ifname>`
    /// ([`hostport_owner`](super::owner::hostport_owner)), when it has one.
    pub owner: Option<String>,
    key: Vec<u8>,
}

fn listed(sock: &mut NfSocket, ctx: &str) -> Result<Vec<HostportElement>> {
    let mut out = Vec::new();
    for (set, _, _) in set_defs() {
        for e in sock.dump_elems(set_ref(&set), ctx)?.unwrap_or_default() {
            out.push(element(&set, e));
        }
    }
    Ok(out)
}

/// Every element of the layout's sets (none when the table or a set is
/// missing). Costs in proportion to the mappings on the node: GC and
/// doctor only.
pub fn list_hostport_elements() -> Result<Vec<HostportElement>> {
    let ctx = format!("list hostPort map elements in table inet {}", layout::TABLE);
    let mut sock = NfSocket::open()?;
    listed(&mut sock, &ctx)
}

/// GC: deletes every element whose owner comment `stale` says is stale
/// (elements without an owner are never touched), in one transaction,
/// and returns them. A key deleted meanwhile by someone else makes the
/// transaction fail as a whole: it is listed again once.
pub fn sweep_hostports(stale: impl Fn(&str) -> bool) -> Result<Vec<HostportElement>> {
    let ctx = format!(
        "sweep hostPort map elements in table inet {}",
        layout::TABLE
    );
    NfSocket::close_lingering();
    let mut sock = NfSocket::open()?;
    for attempt in 0..2 {
        let doomed: Vec<HostportElement> = listed(&mut sock, &ctx)?
            .into_iter()
            .filter(|e| e.owner.as_deref().is_some_and(&stale))
            .collect();
        if doomed.is_empty() {
            return Ok(doomed);
        }
        let msgs = doomed
            .iter()
            .map(|e| {
                let key = SetElem {
                    key: e.key.clone(),
                    data: None,
                    comment: None,
                };
                del_elem(set_ref(&e.set), &key, &e.what)
            })
            .collect::<Result<Vec<_>>>()?;
        match sock.commit(msgs, &ctx) {
            Ok(()) => {
                sock.linger();
                return Ok(doomed);
            }
            Err(e) if attempt == 0 && e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("the second attempt always returns")
}
