//! cni0 left with an address of an old subnet (after a lease change).

use anyhow::Result;
use ipnet::Ipv4Net;
use netkit::Netlink;

use super::super::iface::v4_addrs;
use super::super::log;

/// cni0 carrying an address outside our subnet (an old lease): delete it
/// when no pod is attached (the plugin recreates it on the next ADD),
/// otherwise say so; the plugin fixes it once the pods are gone.
pub fn reconcile_cni0(nl: &mut Netlink, subnet: Ipv4Net) -> Result<()> {
    let Some(br) = nl.link().by_name("cni0")? else {
        return Ok(());
    };
    let stale: Vec<Ipv4Net> = v4_addrs(nl, br.index)?
        .into_iter()
        .filter(|a| !subnet.contains(&a.addr()))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    let ports = nl
        .link()
        .list()?
        .iter()
        .filter(|l| l.master == Some(br.index))
        .count();
    let list: Vec<String> = stale.iter().map(ToString::to_string).collect();
    if ports == 0 {
        log(&format!(
            "cni0 has {} from an old subnet (ours is {subnet}) and no pods: deleting it; \
             the CNI plugin recreates it with the right address",
            list.join(", ")
        ));
        nl.link().del(br.index)?;
    } else {
        log(&format!(
            "warning: cni0 has {} from an old subnet (ours is {subnet}) but {ports} pod(s) \
             still use it; the CNI plugin moves it to the new subnet once they are gone",
            list.join(", ")
        ));
    }
    Ok(())
}
