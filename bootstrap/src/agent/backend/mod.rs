//! The agent's data plane, one [`Plane`] per enabled address family:
//! - vxlan ([`vxlan::Vtep`]): `flannel.<VNI>` / `flannel-v6.<VNI>` with a
//!   neighbour, FDB entry and onlink route per peer; with DirectRouting,
//!   peers on the same L2 segment get a plain route instead
//!   ([`routes::Routes`]), as flanneld does.
//! - host-gw ([`routes::Routes`]): a route per peer via its public address.
//!
//! [`remove_stale_devices`] takes away what another backend or family left
//! (a node that switched vxlan ↔ host-gw, or turned a family off); the
//! routes of the other backend go in each plane's reconcile.

pub mod cni0;
mod heal;
#[cfg(test)]
mod heal_tests;
mod many;
mod plane;
mod repair;
pub mod routes;
pub mod vxlan;

use anyhow::Result;
use netkit::Netlink;

use super::log;
pub use heal::PlaneDrift;
pub use plane::{Peer, Plane, Via};

/// Remove `flannel.*` / `flannel-v6.*` vxlan devices not in `keep`: an old
/// VNI, a family turned off, or the vxlan backend replaced by host-gw (the
/// seed notes' "a reboot fixed it"). Their routes, neighbour and FDB
/// entries go with them.
pub fn remove_stale_devices(nl: &mut Netlink, keep: &[String], why: &str) -> Result<()> {
    for l in nl.link().list()? {
        let ours = l.name.starts_with("flannel.") || l.name.starts_with("flannel-v6.");
        if ours && !keep.contains(&l.name) && l.kind.as_deref() == Some("vxlan") {
            log(&format!(
                "removing {} left from an old config ({why})",
                l.name
            ));
            nl.link().del(l.index)?;
        }
    }
    Ok(())
}
