//! The ways of finding the interface (by name, address, regex, route,
//! default route) and of completing its addresses, over a [`Snapshot`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netkit::{Addr, Link, RouteEntry};
use regex::Regex;

use super::types::{reserved, Families, Snapshot};

const RESERVED: &str = "flannel.*, flannel-v6.* and cni0 are never chosen automatically";

/// One way of finding the interface.
pub(super) enum Try<'r> {
    /// The default route's interface.
    Default,
    Name(&'r str),
    Ip(IpAddr),
    Regex(&'r Regex),
    /// --iface-can-reach (the kernel's answer is in the snapshot).
    Reach,
}

/// An interface found, with the addresses the finding itself fixed (an
/// address given, a regex match, a route's source).
pub(super) struct Found<'a> {
    link: &'a Link,
    ip4: Option<Ipv4Addr>,
    ip6: Option<Ipv6Addr>,
}

impl<'a> Found<'a> {
    fn bare(link: &'a Link) -> Self {
        Found {
            link,
            ip4: None,
            ip6: None,
        }
    }
}

/// The interface with both addresses the enabled families need.
pub(super) type Complete<'a> = (&'a Link, Option<Ipv4Addr>, Option<Ipv6Addr>);

pub(super) struct View<'a> {
    snap: &'a Snapshot,
    /// By ifindex.
    links: Vec<&'a Link>,
    fams: Families,
    public_ipv6: Option<Ipv6Addr>,
}

/// Go's `IsGlobalUnicast || IsLinkLocalUnicast` for IPv4.
fn unicast4(ip: &Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() || ip.is_broadcast())
}

/// Go's `IsGlobalUnicast || IsLinkLocalUnicast` for IPv6.
fn unicast6(ip: &Ipv6Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast())
}

fn link_local6(ip: &Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// flanneld's preference among usable addresses: global before link-local,
/// configured (permanent) before SLAAC/DHCP, non-temporary before temporary
/// (a stable sort, so the kernel's order decides the rest).
fn rank(a: &Addr, link_local: bool) -> (bool, bool, bool) {
    (link_local, !a.is_permanent(), a.is_temporary())
}

impl<'a> View<'a> {
    pub(super) fn find(&self, t: &Try) -> Result<Found<'a>, String> {
        match t {
            Try::Default => self.by_default(),
            Try::Name(n) => self.by_name(n),
            Try::Ip(ip) => self.by_ip(*ip),
            Try::Regex(re) => self.by_regex(re),
            Try::Reach => self.by_route(),
        }
    }

    pub(super) fn new(snap: &'a Snapshot, fams: Families, public_ipv6: Option<Ipv6Addr>) -> Self {
        let mut links: Vec<&Link> = snap.links.iter().collect();
        links.sort_by_key(|l| l.index);
        View {
            snap,
            links,
            fams,
            public_ipv6,
        }
    }

    fn of(&self, index: u32) -> impl Iterator<Item = &'a Addr> {
        self.snap.addrs.iter().filter(move |a| a.index == index)
    }

    /// Usable IPv4 addresses of a link in flanneld's order of preference
    /// (`GetInterfaceIP4Addrs`): not deprecated, global or link-local.
    fn usable4(&self, index: u32) -> Vec<Ipv4Addr> {
        let mut v: Vec<(&Addr, Ipv4Addr)> = self
            .of(index)
            .filter(|a| !a.is_deprecated())
            .filter_map(|a| match a.addr.addr() {
                IpAddr::V4(ip) if unicast4(&ip) => Some((a, ip)),
                _ => None,
            })
            .collect();
        v.sort_by_key(|(a, ip)| rank(a, ip.is_link_local()));
        v.into_iter().map(|(_, ip)| ip).collect()
    }

    /// The same for IPv6 (`GetInterfaceIP6Addrs`).
    fn usable6(&self, index: u32) -> Vec<Ipv6Addr> {
        let mut v: Vec<(&Addr, Ipv6Addr)> = self
            .of(index)
            .filter(|a| !a.is_deprecated())
            .filter_map(|a| match a.addr.addr() {
                IpAddr::V6(ip) if unicast6(&ip) => Some((a, ip)),
                _ => None,
            })
            .collect();
        v.sort_by_key(|(a, ip)| rank(a, link_local6(ip)));
        v.into_iter().map(|(_, ip)| ip).collect()
    }

    fn by_name(&self, name: &str) -> Result<Found<'a>, String> {
        self.links
            .iter()
            .find(|l| l.name == name)
            .map(|l| Found::bare(l))
            .ok_or_else(|| "no such interface".to_string())
    }

    /// The first interface (by ifindex) holding `ip` among all its
    /// addresses of that family, whatever their flags.
    fn owner(&self, ip: IpAddr) -> Result<&'a Link, String> {
        let mut holders = self
            .links
            .iter()
            .filter(|l| self.of(l.index).any(|a| a.addr.addr() == ip));
        match holders.clone().find(|l| !reserved(&l.name)) {
            Some(l) => Ok(l),
            None => match holders.next() {
                Some(l) => Err(format!("only {} has this address, and {RESERVED}", l.name)),
                None => Err("no interface has this address".to_string()),
            },
        }
    }

    /// An address as --iface (or --public-ip / --public-ipv6 alone): the
    /// interface holding it, that address fixed. With both families on,
    /// --public-ipv6 must be on the same interface and becomes its IPv6
    /// address.
    fn by_ip(&self, ip: IpAddr) -> Result<Found<'a>, String> {
        let mut f = match ip {
            IpAddr::V4(v4) if self.fams.v4 => Found {
                ip4: Some(v4),
                ..Found::bare(self.owner(ip)?)
            },
            IpAddr::V6(v6) if self.fams.v6 => Found {
                ip6: Some(v6),
                ..Found::bare(self.owner(ip)?)
            },
            IpAddr::V4(_) => {
                return Err("an IPv4 address, but the network config has IPv4 off".into())
            }
            IpAddr::V6(_) => {
                return Err("an IPv6 address, but the network config has IPv6 off".into())
            }
        };
        if let (true, true, Some(p6)) = (self.fams.v4, self.fams.v6, self.public_ipv6) {
            let on = self
                .owner(IpAddr::V6(p6))
                .map_err(|e| format!("--public-ipv6 {p6}: {e} (with IPv4 and IPv6 on, it must be on the interface an address picks)"))?;
            if on.index != f.link.index {
                return Err(format!(
                    "this address is on {}, but --public-ipv6 {p6} is on {}; with IPv4 and IPv6 on they must share the interface",
                    f.link.name, on.name
                ));
            }
            f.ip6 = Some(p6);
        }
        Ok(f)
    }

    /// --iface-regex: the first interface (by ifindex) with a usable
    /// address the expression matches (with both families on, one of each
    /// must match), else the first whose name it matches.
    fn by_regex(&self, re: &Regex) -> Result<Found<'a>, String> {
        let hit4 = |i| {
            self.usable4(i)
                .into_iter()
                .find(|ip| re.is_match(&ip.to_string()))
        };
        let hit6 = |i| {
            self.usable6(i)
                .into_iter()
                .find(|ip| re.is_match(&ip.to_string()))
        };
        let mine = || self.links.iter().copied().filter(|l| !reserved(&l.name));
        for l in mine() {
            let (ip4, ip6) = match (self.fams.v4, self.fams.v6) {
                (true, false) => (hit4(l.index), None),
                (false, true) => (None, hit6(l.index)),
                _ => (hit4(l.index), hit6(l.index)),
            };
            if ip4.is_some() == self.fams.v4 && ip6.is_some() == self.fams.v6 {
                return Ok(Found { link: l, ip4, ip6 });
            }
        }
        if let Some(l) = mine().find(|l| re.is_match(&l.name)) {
            return Ok(Found::bare(l));
        }
        let list: Vec<String> = mine()
            .map(|l| format!("{} [{}]", l.name, self.shown(l.index)))
            .collect();
        Err(format!(
            "matches no interface's name or usable address (interfaces: {})",
            list.join(", ")
        ))
    }

    fn shown(&self, index: u32) -> String {
        let mut v: Vec<String> = Vec::new();
        if self.fams.v4 {
            v.extend(self.usable4(index).iter().map(Ipv4Addr::to_string));
        }
        if self.fams.v6 {
            v.extend(self.usable6(index).iter().map(Ipv6Addr::to_string));
        }
        v.join(" ")
    }

    /// --iface-can-reach: the interface of the kernel's route to it (read
    /// into the snapshot), with the route's source address for its family.
    fn by_route(&self) -> Result<Found<'a>, String> {
        let r = match &self.snap.reach {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Err(format!("the kernel has no route to it: {e}")),
            None => return Err("no route lookup was made for it".into()),
        };
        let oif = r
            .oif
            .ok_or("the kernel's route to it names no outgoing interface")?;
        let link = self.link(oif, "the route to it")?;
        let mut f = Found::bare(link);
        match r.src {
            Some(IpAddr::V4(s)) if self.fams.v4 => f.ip4 = Some(s),
            Some(IpAddr::V6(s)) if self.fams.v6 => f.ip6 = Some(s),
            _ => {}
        }
        Ok(f)
    }

    /// The interface a route leaves through, refused if reserved.
    fn link(&self, index: u32, what: &str) -> Result<&'a Link, String> {
        let l = self
            .links
            .iter()
            .find(|l| l.index == index)
            .ok_or_else(|| format!("{what} leaves through interface #{index}, which is gone"))?;
        if reserved(&l.name) {
            return Err(format!("{what} leaves through {}, and {RESERVED}", l.name));
        }
        Ok(l)
    }

    /// The first default route of the main table, per enabled family;
    /// with both, the two must leave through the same interface.
    fn by_default(&self) -> Result<Found<'a>, String> {
        let pick = |routes: &[RouteEntry], fam: &str| -> Result<&'a Link, String> {
            let r = routes
                .iter()
                .find(|r| r.dst.prefix_len() == 0)
                .ok_or_else(|| format!("there is no default {fam} route"))?;
            let oif = r.oif.ok_or_else(|| {
                format!("the default {fam} route has no single outgoing interface (multipath, blackhole or unreachable)")
            })?;
            self.link(oif, &format!("the default {fam} route"))
        };
        let l4 = self
            .fams
            .v4
            .then(|| pick(&self.snap.routes4, "IPv4"))
            .transpose()?;
        let l6 = self
            .fams
            .v6
            .then(|| pick(&self.snap.routes6, "IPv6"))
            .transpose()?;
        match (l4, l6) {
            (Some(a), Some(b)) if a.index != b.index => Err(format!(
                "the default IPv4 route leaves through {} but the default IPv6 route through {}; they must share the interface",
                a.name, b.name
            )),
            (Some(l), _) | (None, Some(l)) => Ok(Found::bare(l)),
            (None, None) => Err("no address family is on".into()),
        }
    }

    /// Fill in the addresses the finding left open, for the enabled
    /// families only (each interface's preferred usable one).
    pub(super) fn complete(&self, f: Found<'a>) -> Result<Complete<'a>, String> {
        let name = &f.link.name;
        let ip4 = match (self.fams.v4, f.ip4) {
            (false, _) => None,
            (true, Some(ip)) => Some(ip),
            (true, None) => Some(self.usable4(f.link.index).first().copied().ok_or_else(|| {
                format!("{name} has no usable IPv4 address (global or link-local, not deprecated)")
            })?),
        };
        let ip6 = match (self.fams.v6, f.ip6) {
            (false, _) => None,
            (true, Some(ip)) => Some(ip),
            (true, None) => Some(self.usable6(f.link.index).first().copied().ok_or_else(|| {
                format!("{name} has no usable IPv6 address (global or link-local, not deprecated)")
            })?),
        };
        if f.link.mtu == 0 {
            return Err(format!("{name} reports an MTU of 0"));
        }
        Ok((f.link, ip4, ip6))
    }
}
