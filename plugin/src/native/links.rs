//! Host links of native attachments found without their records: netboot's
//! own host veths left on the bridge (GC of orphans).

use crate::ctx::kernel;
use cni::error::CniError;
use netkit::Netlink;

/// Host veths netboot created (`nbv…` names) on `bridge` that belong to no
/// valid attachment: left by a crash, or by pods whose records are gone.
pub fn orphan_veths(bridge: &str, valid: &[(String, String)]) -> Result<Vec<String>, CniError> {
    let mut nl = Netlink::open().map_err(|e| kernel("open netlink", e))?;
    let Some(br) = nl
        .link()
        .by_name(bridge)
        .map_err(|e| kernel("look up bridge", e))?
    else {
        return Ok(Vec::new());
    };
    let expected: std::collections::HashSet<String> = valid
        .iter()
        .map(|(c, i)| netkit::host_veth_name(c, i))
        .collect();
    let links = nl.link().list().map_err(|e| kernel("list links", e))?;
    Ok(links
        .into_iter()
        .filter(|l| l.kind.as_deref() == Some("veth") && l.master == Some(br.index))
        .filter(|l| l.name.starts_with(netkit::HOST_VETH_PREFIX) && !expected.contains(&l.name))
        .map(|l| l.name)
        .collect())
}

/// Deletes the named links (GC of orphans).
pub fn delete_links(names: &[String]) -> Vec<CniError> {
    let mut errors = Vec::new();
    match Netlink::open() {
        Ok(mut nl) => {
            for n in names {
                if let Err(e) = nl.link().del_by_name(n) {
                    errors.push(kernel(&format!("delete {n}"), e));
                }
            }
        }
        Err(e) => errors.push(kernel("open netlink", e)),
    }
    errors
}
