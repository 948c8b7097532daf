//! One family's data plane ([`Plane`]) and a peer as it sees it.

use std::net::IpAddr;

use anyhow::{bail, Result};
use ipnet::IpNet;

use super::routes::Routes;
use super::vxlan::{Remote, Vtep};
use crate::lease::VxlanData;

/// One peer as a plane sees it: its subnet of this family, its public
/// address of this family, and its vxlan data of this family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub subnet: IpNet,
    pub public_ip: IpAddr,
    pub vxlan: Option<VxlanData>,
}

/// How a peer was programmed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tunnel,
    Direct,
}

/// One address family's data plane.
pub enum Plane {
    Vxlan {
        vtep: Box<Vtep>,
        /// Direct routes (DirectRouting peers); always present so that the
        /// gateway routes a host-gw run left are swept.
        direct: Routes,
        direct_routing: bool,
    },
    HostGw(Routes),
}

impl Plane {
    pub fn v6(&self) -> bool {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.spec.v6,
            Plane::HostGw(r) => r.v6,
        }
    }

    /// Where peers are routed through, for the log: the device or the
    /// interface.
    pub fn name(&self) -> String {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.name.clone(),
            Plane::HostGw(r) => r.ext_name.clone(),
        }
    }

    /// The device to watch (vxlan), `None` for host-gw.
    pub fn device(&self) -> Option<(&str, u32)> {
        match self {
            Plane::Vxlan { vtep, .. } => Some((&vtep.name, vtep.index)),
            Plane::HostGw(_) => None,
        }
    }

    /// The MTU pods get through this plane.
    pub fn mtu(&self, ext_mtu: u32) -> u32 {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.mtu(),
            Plane::HostGw(_) => ext_mtu,
        }
    }

    /// What this plane puts in our lease: vxlan's `{VNI, VtepMAC}`.
    pub fn lease_data(&self) -> Option<VxlanData> {
        match self {
            Plane::Vxlan { vtep, .. } => Some(VxlanData {
                vni: vtep.spec.vni,
                vtep_mac: vtep.mac,
            }),
            Plane::HostGw(_) => None,
        }
    }

    /// Create or check the device. `Ok(true)`: (re)created.
    pub fn ensure_device(&mut self) -> Result<bool> {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.ensure_device(),
            Plane::HostGw(_) => Ok(false),
        }
    }

    /// Our own subnet's address on the device (vxlan only).
    pub fn ensure_addr(&mut self, own: IpNet) -> Result<()> {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.ensure_addr(own),
            Plane::HostGw(_) => Ok(()),
        }
    }

    /// Program a peer. `Ok(None)`: already programmed as it is.
    pub fn program(&mut self, p: &Peer) -> Result<Option<Via>> {
        match self {
            Plane::HostGw(r) => {
                if let Err(why) = r.on_link(p.public_ip)? {
                    // A peer that moved off the segment: its old route
                    // (via its old address) must not outlive the move.
                    r.unprogram(p.subnet)?;
                    bail!("{why}");
                }
                Ok(r.program(p.subnet, p.public_ip)?.then_some(Via::Direct))
            }
            Plane::Vxlan {
                vtep,
                direct,
                direct_routing,
            } => {
                if *direct_routing && direct.on_link(p.public_ip)?.is_ok() {
                    if vtep.remotes.contains_key(&p.subnet) {
                        vtep.unprogram(p.subnet)?;
                    }
                    return Ok(direct
                        .program(p.subnet, p.public_ip)?
                        .then_some(Via::Direct));
                }
                let Some(d) = p.vxlan else {
                    direct.unprogram(p.subnet)?;
                    if vtep.remotes.contains_key(&p.subnet) {
                        vtep.unprogram(p.subnet)?;
                    }
                    bail!("the lease has no vxlan data (VtepMAC) for this family");
                };
                if direct.peers.contains_key(&p.subnet) {
                    direct.unprogram(p.subnet)?;
                }
                let r = Remote {
                    public_ip: p.public_ip,
                    mac: d.vtep_mac,
                };
                Ok(vtep.program(p.subnet, r)?.then_some(Via::Tunnel))
            }
        }
    }

    /// How many subnets are programmed now (O(1)).
    pub fn count(&self) -> usize {
        match self {
            Plane::HostGw(r) => r.peers.len(),
            Plane::Vxlan { vtep, direct, .. } => vtep.remotes.len() + direct.peers.len(),
        }
    }

    /// Is `subnet` programmed?
    pub fn has(&self, subnet: &IpNet) -> bool {
        match self {
            Plane::HostGw(r) => r.peers.contains_key(subnet),
            Plane::Vxlan { vtep, direct, .. } => {
                vtep.remotes.contains_key(subnet) || direct.peers.contains_key(subnet)
            }
        }
    }

    /// Subnets programmed now.
    pub fn known(&self) -> Vec<IpNet> {
        match self {
            Plane::HostGw(r) => r.peers.keys().copied().collect(),
            Plane::Vxlan { vtep, direct, .. } => vtep
                .remotes
                .keys()
                .chain(direct.peers.keys())
                .copied()
                .collect(),
        }
    }

    /// Make the kernel match what is programmed (see the planes'
    /// reconcile).
    /// Returns how many stale entries were removed plus peers repaired.
    pub fn reconcile(&mut self) -> Result<usize> {
        let ((a, b), (c, d)) = match self {
            Plane::HostGw(r) => ((0, 0), r.reconcile()?),
            Plane::Vxlan { vtep, direct, .. } => (vtep.reconcile()?, direct.reconcile()?),
        };
        Ok(a + b + c + d)
    }

    /// Put back the device's own address and settings (vxlan; O(1), no
    /// table dump). Returns what, for the log.
    pub fn restore_device(&mut self, own: IpNet) -> Result<Vec<String>> {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.restore_device(own),
            Plane::HostGw(_) => Ok(Vec::new()),
        }
    }

    /// The interface whose gateway routes the plane keeps (host-gw,
    /// DirectRouting), and the cluster network they lead into.
    pub fn routes_on(&self) -> (u32, IpNet) {
        match self {
            Plane::Vxlan { direct, .. } => (direct.ext_index, direct.network),
            Plane::HostGw(r) => (r.ext_index, r.network),
        }
    }

    /// (datagrams, requests) the plane's netlink sockets have sent, for
    /// the metrics.
    pub fn netlink_sent(&self) -> (u64, u64) {
        let sent = |nl: &netkit::Netlink| (nl.datagrams_sent(), nl.requests_sent());
        match self {
            Plane::HostGw(r) => sent(&r.nl),
            Plane::Vxlan { vtep, direct, .. } => {
                let ((a, b), (c, d)) = (sent(&vtep.nl), sent(&direct.nl));
                (a + c, b + d)
            }
        }
    }

    /// Is the device still there as we made it? (host-gw: always.)
    pub fn intact(&mut self) -> Result<bool> {
        match self {
            Plane::Vxlan { vtep, .. } => vtep.intact(),
            Plane::HostGw(_) => Ok(true),
        }
    }
}
