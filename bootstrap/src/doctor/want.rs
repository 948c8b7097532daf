//! What one address family of this node should look like in the kernel,
//! from the network config, subnet.env and this node's lease (as the agent
//! or flanneld sets it up).

use std::net::IpAddr;

use ipnet::IpNet;
use netkit::{Link, Netlink};

use super::cluster::Settings;
use super::ctx::Node;
use crate::leases::Listed;
use crate::subnet_env::family_name;

/// One family's expected setup.
pub struct Want<'a> {
    pub v6: bool,
    pub settings: &'a Settings,
    /// The cluster network of this family.
    pub network: IpNet,
    /// This node's subnet (network form), from subnet.env.
    pub own: IpNet,
    /// This node's lease, when etcd holds one.
    pub lease: Option<&'a Listed>,
}

impl Want<'_> {
    pub fn family(&self) -> &'static str {
        family_name(self.v6)
    }

    /// This node's public address of the family, as the lease announces it.
    pub fn public(&self) -> Option<IpAddr> {
        self.lease?.attrs().and_then(|a| a.public(self.v6))
    }

    /// The lease's VtepMAC of the family.
    pub fn vtep_mac(&self) -> Option<[u8; 6]> {
        self.lease?
            .attrs()
            .and_then(|a| a.vxlan(self.v6))
            .map(|d| d.vtep_mac)
    }

    /// The vxlan device of the family (`None` for host-gw).
    pub fn device(&self) -> Option<String> {
        self.settings
            .is_vxlan()
            .then(|| self.settings.vxlan.device_name(self.v6))
    }

    /// The interface other nodes are reached through: the vxlan device's
    /// underlay, else the interface holding the lease's public address.
    pub fn external(&self, nl: &mut Netlink) -> Option<Link> {
        if let Some(info) = self
            .device()
            .and_then(|d| nl.link().vxlan_info(&d).ok().flatten())
        {
            if let Some(l) = info.dev.and_then(|i| nl.link().by_index(i).ok().flatten()) {
                return Some(l);
            }
            if let Some(l) = info.local.and_then(|ip| link_with(nl, ip)) {
                return Some(l);
            }
        }
        link_with(nl, self.public()?)
    }
}

/// The interface carrying address `ip`.
pub fn link_with(nl: &mut Netlink, ip: IpAddr) -> Option<Link> {
    let idx = nl
        .addr()
        .list(None)
        .ok()?
        .into_iter()
        .find(|a| a.addr.addr() == ip)?
        .index;
    nl.link().by_index(idx).ok().flatten()
}

/// The connected prefixes of family `v6` on interface `index` (link-local
/// left out): peers on one of them are on the same L2 segment.
pub fn prefixes(nl: &mut Netlink, index: u32, v6: bool) -> Vec<IpNet> {
    nl.addr()
        .list(Some(index))
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.addr.trunc())
        .filter(|n| matches!(n, IpNet::V6(_)) == v6)
        .filter(|n| !matches!(n, IpNet::V6(x) if (x.addr().segments()[0] & 0xffc0) == 0xfe80))
        .collect()
}

/// The expected setup of family `v6`, or why it cannot be known.
pub fn want(node: &Node, v6: bool) -> Result<Want<'_>, String> {
    let settings = node
        .settings()
        .ok_or("no valid network config to compare with (see the etcd check)")?;
    let network = settings
        .network(v6)
        .ok_or_else(|| format!("{} is off in the network config", family_name(v6)))?;
    let own = node
        .env
        .as_ref()
        .and_then(|e| e.subnet_net(v6))
        .ok_or("no subnet of this family in subnet.env (see the subnet.env check)")?;
    Ok(Want {
        v6,
        settings,
        network,
        own,
        lease: node.own_lease(),
    })
}

/// A per-family check name: `vtep` / `vtep-v6`, `peers` / `peers-v6`.
pub fn check_name(base: &'static str, v6: bool) -> &'static str {
    match (base, v6) {
        ("vtep", true) => "vtep-v6",
        ("peers", true) => "peers-v6",
        (b, _) => b,
    }
}
