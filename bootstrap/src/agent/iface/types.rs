//! What choosing the public interface works with: the families enabled,
//! what the kernel shows ([`Snapshot`]), and the choice ([`External`]).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{Context, Result};
use netkit::{Addr, Family, Link, Netlink, RouteEntry, RouteLookup};

use crate::agent::IfaceArgs;

/// The address families the network config enables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    pub const V4: Families = Families {
        v4: true,
        v6: false,
    };
    pub const V6: Families = Families {
        v4: false,
        v6: true,
    };
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
    /// The interface's own IPv4 address (the one `--iface IP`, a regex or
    /// the route named, else its preferred usable one; host-gw refuses a
    /// public address that differs: NAT); `None` when IPv4 is off.
    pub iface_ip: Option<Ipv4Addr>,
    /// The IPv6 address other nodes reach us at (`--public-ipv6`, else
    /// `iface_ip6`); `None` when IPv6 is off.
    pub ip6: Option<Ipv6Addr>,
    /// The interface's own IPv6 address, chosen as `iface_ip` is; `None`
    /// when IPv6 is off.
    pub iface_ip6: Option<Ipv6Addr>,
}

impl External {
    /// The public IPv4 address, `0.0.0.0` when IPv4 is off (what flanneld
    /// writes as PublicIP then).
    pub fn ip4(&self) -> Ipv4Addr {
        self.ip.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }
}

/// What the choice looks at, read from the kernel once.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every link of the namespace (any order; the choice goes by ifindex,
    /// as Go's `net.Interfaces` lists them).
    pub links: Vec<Link>,
    /// Every address, in the kernel's order.
    pub addrs: Vec<Addr>,
    /// Main-table IPv4 / IPv6 routes, in the kernel's order (empty for a
    /// family that is off).
    pub routes4: Vec<RouteEntry>,
    pub routes6: Vec<RouteEntry>,
    /// The kernel's answer for `--iface-can-reach` (`ip route get`), or why
    /// it had none.
    pub reach: Option<Result<RouteLookup, String>>,
}

/// flanneld's own devices (vxlan `flannel.<VNI>`, `flannel-v6.<VNI>`) and
/// the pod bridge: never the public interface unless named with --iface.
pub fn reserved(name: &str) -> bool {
    name.starts_with("flannel.") || name.starts_with("flannel-v6.") || name == "cni0"
}

impl Snapshot {
    /// Read what [`super::select`] needs: links, addresses, the main table's
    /// routes of the enabled families (an IPv6-less kernel must not fail an
    /// IPv4 agent) and, for `--iface-can-reach`, the kernel's route to it.
    pub fn read(nl: &mut Netlink, a: &IfaceArgs, fams: Families) -> Result<Snapshot> {
        let routes = |nl: &mut Netlink, on: bool, f: Family| -> Result<_> {
            Ok(if on { nl.route().list(f)? } else { Vec::new() })
        };
        Ok(Snapshot {
            links: nl.link().list().context("list interfaces")?,
            addrs: nl.addr().list(None).context("list addresses")?,
            routes4: routes(nl, fams.v4, Family::V4).context("list IPv4 routes")?,
            routes6: routes(nl, fams.v6, Family::V6).context("list IPv6 routes")?,
            reach: a.iface_can_reach.map(|dst| {
                nl.route().get(dst).map_err(|e| match e.errno() {
                    Some(n) => std::io::Error::from_raw_os_error(n).to_string(),
                    None => e.to_string(),
                })
            }),
        })
    }
}
