//! ADD and DEL of one attachment's elements.

use std::net::IpAddr;

use super::super::mapping::{validate, PortmapSpec};
use super::super::nftnl::{add_elem, del_elem, BatchMsg, NfSocket, SetElem};
use super::plan::{data_addr, dnat_keys, masq_keys, planned, Planned};
use super::{layout, owner_of, set_ref};
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
/// and its owner) and nothing is changed; see [`replace_hostports`]. Keys
/// this attachment already holds with the same data are kept (a repeated
/// ADD). Afterwards, see
/// [`needs_route_localnet`](crate::firewall::needs_route_localnet).
pub fn add_hostports(spec: &PortmapSpec) -> Result<()> {
    write(spec, false).map(|_| ())
}

/// [`add_hostports`] that takes over keys other owners hold, in the same
/// transaction, returning what it displaced (`tcp 8080 -> 10.2.1.9:80
/// (owner)`). The caller serializes it with [`del_hostports`] of other
/// attachments (a lock): a DEL reads its keys' owners, then deletes.
pub fn replace_hostports(spec: &PortmapSpec) -> Result<Vec<String>> {
    write(spec, true)
}

fn write(spec: &PortmapSpec, replace: bool) -> Result<Vec<String>> {
    let ctx = ctx_of("add", spec);
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(Vec::new());
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
        Ok(()) => Ok(Vec::new()),
        Err(e) if e.errno() == Some(libc::EEXIST) => resolve(&mut sock, &planned, replace, &ctx),
        Err(e) => Err(e),
    }
}

/// The slow path of an ADD whose keys were (partly) taken: read every key
/// back, keep what is already exactly ours, and add the rest; keys of
/// other owners are refused, or with `replace` deleted and re-added in the
/// same transaction.
fn resolve(
    sock: &mut NfSocket,
    planned: &[Planned],
    replace: bool,
    ctx: &str,
) -> Result<Vec<String>> {
    let mut msgs = Vec::new();
    let mut displaced = Vec::new();
    for p in planned {
        let Some(there) = sock.get_elem(set_ref(&p.set), &p.elem.key, ctx)? else {
            msgs.push(add_elem(set_ref(&p.set), &p.elem, &p.what)?);
            continue;
        };
        if there.data == p.elem.data && there.comment == p.elem.comment {
            continue;
        }
        let holder = describe_holder(&p.set, &there);
        if !replace {
            return Err(Error::Exists {
                what: format!("{ctx}: `{}` conflicts with {holder}", p.what),
            });
        }
        msgs.push(del_elem(set_ref(&p.set), &p.elem, &p.what)?);
        msgs.push(add_elem(set_ref(&p.set), &p.elem, &p.what)?);
        displaced.push(holder);
    }
    sock.commit(msgs, ctx)?;
    Ok(displaced)
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
