//! Choosing the public interface and the addresses other nodes reach this
//! one at, as flanneld does (`main.go` LookupExtIface, `pkg/ip/iface.go`):
//! `--iface` (names or addresses, in order), `--iface-regex`,
//! `--iface-can-reach`, else the interface of the default route.
//! `--public-ip` / `--public-ipv6` override the advertised addresses.

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Context, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use netkit::{Family, Netlink};

use super::IfaceArgs;

/// The address families the network config enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

/// The interface that reaches the other nodes (flanneld's
/// ExternalInterface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct External {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    /// The IPv4 address other nodes reach us at (`--public-ip`, else
    /// `iface_ip`); `None` when IPv4 is off.
    pub ip: Option<Ipv4Addr>,
    /// The interface's own IPv4 address (host-gw refuses a public address
    /// that differs: NAT).
    pub iface_ip: Option<Ipv4Addr>,
    /// The IPv6 address other nodes reach us at; `None` when IPv6 is off.
    pub ip6: Option<Ipv6Addr>,
    /// The interface's own first global IPv6 address.
    pub iface_ip6: Option<Ipv6Addr>,
}

impl External {
    /// The public IPv4 address, `0.0.0.0` when IPv4 is off (what flanneld
    /// writes as PublicIP then).
    pub fn ip4(&self) -> Ipv4Addr {
        self.ip.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// IPv4 addresses of an interface, link-local ones left out.
pub fn v4_addrs(nl: &mut Netlink, index: u32) -> Result<Vec<Ipv4Net>> {
    Ok(nl
        .addrs(Some(index))?
        .into_iter()
        .filter_map(|a| match a.addr {
            IpNet::V4(n) if !n.addr().is_link_local() => Some(n),
            _ => None,
        })
        .collect())
}

/// Global IPv6 addresses of an interface (no link-local, no loopback).
pub fn v6_addrs(nl: &mut Netlink, index: u32) -> Result<Vec<Ipv6Net>> {
    Ok(nl
        .addrs(Some(index))?
        .into_iter()
        .filter_map(|a| match a.addr {
            IpNet::V6(n)
                if !n.addr().is_loopback() && (n.addr().segments()[0] & 0xffc0) != 0xfe80 =>
            {
                Some(n)
            }
            _ => None,
        })
        .collect())
}

/// Find the public interface and addresses for the enabled families.
pub fn find_external(nl: &mut Netlink, a: &IfaceArgs, fams: Families) -> Result<External> {
    let links = nl.links()?;
    let link = if let Some(want) = a.iface.first() {
        links
            .iter()
            .find(|l| &l.name == want)
            .ok_or_else(|| anyhow!("--iface {want}: no such interface in this network namespace"))?
    } else {
        let family = if fams.v4 { Family::V4 } else { Family::V6 };
        let oif = nl
            .routes(family)?
            .into_iter()
            .find(|r| r.dst.prefix_len() == 0 && r.table == 254)
            .and_then(|r| r.oif);
        match oif {
            Some(i) => links
                .iter()
                .find(|l| l.index == i)
                .context("default route's interface")?,
            None => bail!("no default route to pick the public interface from: give --iface IFACE"),
        }
    };
    let iface_ip = v4_addrs(nl, link.index)?.first().map(|n| n.addr());
    let iface_ip6 = v6_addrs(nl, link.index)?.first().map(|n| n.addr());
    let ip = if fams.v4 {
        Some(
            a.public_ip
                .or(iface_ip)
                .ok_or_else(|| anyhow!("{} has no IPv4 address: give --public-ip", link.name))?,
        )
    } else {
        None
    };
    let ip6 = if fams.v6 {
        Some(a.public_ipv6.or(iface_ip6).ok_or_else(|| {
            anyhow!(
                "{} has no global IPv6 address: give --public-ipv6",
                link.name
            )
        })?)
    } else {
        None
    };
    Ok(External {
        index: link.index,
        name: link.name.clone(),
        mtu: link.mtu,
        ip,
        iface_ip,
        ip6,
        iface_ip6,
    })
}
