//! Plain routes to other nodes' subnets via their public address on the
//! external interface: the whole host-gw backend (flannel
//! `pkg/backend/hostgw`, `route_network.go`), and vxlan's DirectRouting for
//! peers on the same L2 segment.
//!
//! A peer whose public address is on none of the interface's connected
//! prefixes cannot be reached without a router, and a route via it would
//! not work: it is refused with an error naming the peer, the interface and
//! its prefixes (flanneld only logs the kernel's "network is unreachable").
//!
//! [`Routes::reconcile`] also sweeps gateway routes on the interface into
//! the cluster network that no lease explains: left by a previous run, a
//! dead peer, or the host-gw state of a node that switched to vxlan.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::{Context, Result};
use ipnet::IpNet;
use netkit::{Family, Netlink, RouteSpec};

use super::super::log;

/// The routes of one address family on the external interface.
pub struct Routes {
    pub(super) nl: Netlink,
    pub v6: bool,
    pub ext_index: u32,
    pub ext_name: String,
    /// The cluster network of this family: routes outside it are never
    /// touched.
    pub network: IpNet,
    /// Programmed: subnet → gateway (the peer's public address).
    pub peers: BTreeMap<IpNet, IpAddr>,
}

impl Routes {
    pub fn new(v6: bool, ext_index: u32, ext_name: &str, network: IpNet) -> Result<Routes> {
        Ok(Routes {
            nl: Netlink::open()?,
            v6,
            ext_index,
            ext_name: ext_name.to_string(),
            network,
            peers: BTreeMap::new(),
        })
    }

    fn family(&self) -> Family {
        if self.v6 {
            Family::V6
        } else {
            Family::V4
        }
    }

    pub(super) fn spec(&self, subnet: IpNet, gw: IpAddr) -> RouteSpec {
        let mut r = RouteSpec::to(subnet);
        r.gw = Some(gw);
        r.oif = Some(self.ext_index);
        r
    }

    /// The interface's connected prefixes of this family.
    pub(super) fn prefixes(&mut self) -> Result<Vec<IpNet>> {
        let v6 = self.v6;
        Ok(self
            .nl
            .addr()
            .list(Some(self.ext_index))?
            .into_iter()
            .map(|a| a.addr.trunc())
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
            .filter(|n| !matches!(n, IpNet::V6(x) if (x.addr().segments()[0] & 0xffc0) == 0xfe80))
            .collect())
    }

    /// Is `ip` on the same L2 segment (on a connected prefix of the
    /// interface)? Err names the prefixes when it is not.
    pub fn on_link(&mut self, ip: IpAddr) -> Result<std::result::Result<(), String>> {
        let prefixes = self.prefixes()?;
        if prefixes.iter().any(|p| p.contains(&ip)) {
            return Ok(Ok(()));
        }
        let list: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
        Ok(Err(format!(
            "{ip} is not on the same L2 segment as {} ({}): a route via it needs a router; \
             host-gw needs every node on one L2 network (use vxlan, or vxlan with \
             DirectRouting, across routed networks)",
            self.ext_name,
            if list.is_empty() {
                "no address of this family".into()
            } else {
                list.join(", ")
            }
        )))
    }

    /// Route `subnet` via `gw`. `Ok(false)`: already programmed.
    pub fn program(&mut self, subnet: IpNet, gw: IpAddr) -> Result<bool> {
        if self.peers.get(&subnet) == Some(&gw) {
            return Ok(false);
        }
        let spec = self.spec(subnet, gw);
        self.nl
            .route()
            .replace(&spec)
            .with_context(|| format!("route {subnet} via {gw} dev {}", self.ext_name))?;
        self.peers.insert(subnet, gw);
        Ok(true)
    }

    /// Remove the route to `subnet`, if we programmed one. `Ok(false)`: none.
    pub fn unprogram(&mut self, subnet: IpNet) -> Result<bool> {
        let Some(gw) = self.peers.remove(&subnet) else {
            return Ok(false);
        };
        let spec = self.spec(subnet, gw);
        self.nl
            .route()
            .del(&spec)
            .with_context(|| format!("remove the route {subnet} via {gw}"))?;
        Ok(true)
    }

    /// Make the interface's gateway routes into the cluster network equal
    /// [`Routes::peers`]: stale ones removed, missing or wrong ones
    /// written again. Returns (removed, repaired).
    pub fn reconcile(&mut self) -> Result<(usize, usize)> {
        let mut ok = Vec::new();
        let mut removed = 0;
        let family = self.family();
        for r in self.nl.route().list(family)? {
            if r.table != 254 || r.oif != Some(self.ext_index) || !self.network.contains(&r.dst) {
                continue;
            }
            let Some(gw) = r.gw else { continue };
            if self.peers.get(&r.dst) == Some(&gw) {
                ok.push(r.dst);
                continue;
            }
            log(&format!(
                "removing stale route {} via {gw} on {}",
                r.dst, self.ext_name
            ));
            let spec = self.spec(r.dst, gw);
            let _ = self.nl.route().del(&spec);
            removed += 1;
        }
        let broken: Vec<(IpNet, IpAddr)> = self
            .peers
            .iter()
            .filter(|(s, _)| !ok.contains(s))
            .map(|(s, g)| (*s, *g))
            .collect();
        let mut b = netkit::Batch::new();
        for (s, g) in &broken {
            log(&format!(
                "route {s} via {g} on {} was missing: writing it again",
                self.ext_name
            ));
            b.replace_route(&self.spec(*s, *g))?;
        }
        netkit::first_error(self.nl.apply(b)).with_context(|| {
            format!("write back {} route(s) on {}", broken.len(), self.ext_name)
        })?;
        Ok((removed, broken.len()))
    }
}
