//! ADD and DEL of one attachment's elements.

use std::net::IpAddr;

use super::super::mapping::{validate, PortmapSpec};
use super::super::nftnl::{add_elem, del_elem, BatchMsg, NfSocket, SetElem};
use super::layout;
use super::owner::{owner_of, set_ref};
use super::plan::{data_addr, dnat_keys, masq_keys, planned, Planned};
use crate::error::{Error, Result};

fn ctx_of(verb: &str, spec: &PortmapSpec) -> String {
    format!(
        "{verb} hostPort map elements of {} ({}, {}) in table inet {}",
        spec.container_id,
        spec.network,
        spec.ifname,
        layout::TABLE
    )
}

fn add_msgs(planned: &[&Planned]) -> Result<Vec<BatchMsg>> {
    planned
        .iter()
        .map(|p| add_elem(set_ref(&p.set), &p.elem, &p.what))
        .collect()
}

/// Programs `spec`'s mappings: one element per mapping in its family and
/// protocol's map, plus the hairpin/localhost pairs when `snat`, each
/// owned by the attachment, in one transaction (creating or repairing the
/// layout first when a chain of it is missing or holds the wrong number of
/// rules). No mappings: nothing is done.
///
/// A key another owner holds is refused (`Error::Exists`, naming the key
/// and its owner) and nothing is changed; see [`resolve_hostports`]. Keys
/// this attachment already holds with the same data are kept (a repeated
/// ADD). Afterwards, see
/// [`needs_route_localnet`](crate::firewall::needs_route_localnet).
pub fn add_hostports(spec: &PortmapSpec) -> Result<()> {
    write(spec)
}

/// What [`resolve_hostports`] did with keys other owners held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    /// Taken over: `` `tcp 8080 -> 10.2.1.9:80` (owner cbr0/x/eth0) ``.
    pub displaced: Vec<String>,
    /// Left to their holder; this attachment's element for the key was
    /// not added.
    pub kept: Vec<String>,
}

/// [`add_hostports`] for keys other owners may hold: each such key is
/// left to its holder when `keep(owner)` says so (an element without an
/// owner is always kept), and otherwise taken over (deleted and re-added
/// as ours in the same transaction); every other element is added. The
/// caller serializes it with [`del_hostports`] of other attachments (a
/// lock): a DEL reads its keys' owners, then deletes.
pub fn resolve_hostports(spec: &PortmapSpec, keep: &dyn Fn(&str) -> bool) -> Result<Resolved> {
    let ctx = ctx_of("add", spec);
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(Resolved::default());
    }
    let owner = owner_of(spec, &ctx)?;
    let planned = planned(spec, &owner, &ctx)?;
    let mut sock = NfSocket::open()?;
    if !layout::is_complete(&mut sock, &ctx)? {
        layout::setup(&mut sock)?;
    }
    resolve(&mut sock, &planned, Some(keep), &ctx)
}

/// [`add_hostports`]'s work: every element in one transaction, refused as
/// a whole (EEXIST) when a key is taken; then [`resolve`] tells a repeat of
/// this attachment's own ADD from another owner's key.
fn write(spec: &PortmapSpec) -> Result<()> {
    let ctx = ctx_of("add", spec);
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(());
    }
    let owner = owner_of(spec, &ctx)?;
    let planned = planned(spec, &owner, &ctx)?;
    if planned.is_empty() {
        return Err(Error::invalid(ctx, "no container IP to map ports to"));
    }
    let mut sock = NfSocket::open()?;
    if !layout::is_complete(&mut sock, &ctx)? {
        layout::setup(&mut sock)?;
    }
    let all: Vec<&Planned> = planned.iter().collect();
    // ENOENT: the table went away since the look (a concurrent `nft`).
    let first = match sock.commit(add_msgs(&all)?, &ctx) {
        Err(e) if e.errno() == Some(libc::ENOENT) => {
            layout::setup(&mut sock)?;
            sock.commit(add_msgs(&all)?, &ctx)
        }
        other => other,
    };
    match first {
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            resolve(&mut sock, &planned, None, &ctx).map(|_| ())
        }
        other => other,
    }
}

/// The slow path of an ADD whose keys were (partly) taken: read every key
/// back, keep what is already exactly ours, and add the rest; a key of
/// another owner is refused (`keep` is `None`: `Error::Exists` naming it,
/// nothing changed), left to its holder, or taken over in the same
/// transaction (see [`resolve_hostports`]).
fn resolve(
    sock: &mut NfSocket,
    planned: &[Planned],
    keep: Option<&dyn Fn(&str) -> bool>,
    ctx: &str,
) -> Result<Resolved> {
    let mut msgs = Vec::new();
    let mut out = Resolved::default();
    for p in planned {
        let Some(there) = sock.get_elem(set_ref(&p.set), &p.elem.key, ctx)? else {
            msgs.push(add_elem(set_ref(&p.set), &p.elem, &p.what)?);
            continue;
        };
        if there.data == p.elem.data && there.comment == p.elem.comment {
            continue;
        }
        let holder = describe_holder(&p.set, &there);
        let Some(keep) = keep else {
            return Err(Error::Exists {
                what: format!("{ctx}: `{}` conflicts with {holder}", p.what),
            });
        };
        if there.comment.as_deref().is_none_or(keep) {
            out.kept.push(holder);
            continue;
        }
        msgs.push(del_elem(set_ref(&p.set), &p.elem, &p.what)?);
        msgs.push(add_elem(set_ref(&p.set), &p.elem, &p.what)?);
        out.displaced.push(holder);
    }
    sock.commit(msgs, ctx)?;
    Ok(out)
}

/// `tcp 8080 -> 10.2.1.9:80 (owner cbr0/x/eth0)` for an element found in
/// the kernel.
fn describe_holder(set: &str, e: &SetElem) -> String {
    let what =
        super::plan::describe(set, e).map_or_else(|| format!("an element of {set}"), |d| d.0);
    let owner = e.comment.as_deref().unwrap_or("no owner");
    format!("`{what}` (owner {owner})")
}

/// Removes the elements `spec`'s attachment owns, without listing the
/// maps: each DNAT key of its mappings is read back (one lookup each),
/// the pod address learnt from the data when `spec` names none, then its
/// masquerade pairs; what still carries the attachment's owner comment is
/// deleted in one transaction. Idempotent: missing keys, maps or table are
/// success. Returns how many elements were deleted.
pub fn del_hostports(spec: &PortmapSpec) -> Result<usize> {
    let ctx = ctx_of("delete", spec);
    // A name no element can be owned by (ADD refused it): nothing to do.
    let Ok(owner) = owner_of(spec, &ctx) else {
        return Ok(0);
    };
    if spec.mappings.is_empty() {
        return Ok(0);
    }
    NfSocket::close_lingering();
    let mut sock = NfSocket::open()?;
    // A concurrent change can delete a key between the read and the
    // delete (the transaction then fails with ENOENT): read again once.
    for attempt in 0..2 {
        let mut doomed: Vec<Planned> = Vec::new();
        let mut pods: Vec<IpAddr> = spec.container_ips.to_vec();
        for k in dnat_keys(spec) {
            if let Some(e) = owned(&mut sock, &k, &owner, &ctx)? {
                pods.extend(e.data.as_deref().and_then(|d| data_addr(&k.set, d)));
                doomed.push(k);
            }
        }
        for k in masq_keys(&pods) {
            if owned(&mut sock, &k, &owner, &ctx)?.is_some() {
                doomed.push(k);
            }
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        let msgs = doomed
            .iter()
            .map(|k| del_elem(set_ref(&k.set), &k.elem, &k.what))
            .collect::<Result<Vec<_>>>()?;
        match sock.commit(msgs, &ctx) {
            Ok(()) => {
                // Closing now would wait for the deleted elements' RCU
                // grace period; see nftnl "Closing after a delete".
                sock.linger();
                return Ok(doomed.len());
            }
            Err(e) if attempt == 0 && e.errno() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    unreachable!("the second attempt always returns")
}

/// The element at `k`'s key, if `owner` owns it.
fn owned(sock: &mut NfSocket, k: &Planned, owner: &str, ctx: &str) -> Result<Option<SetElem>> {
    let e = sock.get_elem(set_ref(&k.set), &k.elem.key, ctx)?;
    Ok(e.filter(|e| e.comment.as_deref() == Some(owner)))
}
