//! Routes in the main table (`ip route`), through [`Netlink::route`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::family::family_of;
use crate::socket::{Netlink, Request, CREATE_EXCL};

/// Route scope (`ip route ... scope S`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Universe,
    Site,
    Link,
    Host,
    Nowhere,
    Other(u8),
}

impl From<RouteScope> for Scope {
    fn from(s: RouteScope) -> Self {
        match s {
            RouteScope::Universe => Scope::Universe,
            RouteScope::Site => Scope::Site,
            RouteScope::Link => Scope::Link,
            RouteScope::Host => Scope::Host,
            RouteScope::NoWhere => Scope::Nowhere,
            other => Scope::Other(u8::from(other)),
        }
    }
}

impl From<Scope> for RouteScope {
    fn from(s: Scope) -> Self {
        match s {
            Scope::Universe => RouteScope::Universe,
            Scope::Site => RouteScope::Site,
            Scope::Link => RouteScope::Link,
            Scope::Host => RouteScope::Host,
            Scope::Nowhere => RouteScope::NoWhere,
            Scope::Other(v) => RouteScope::from(v),
        }
    }
}

/// Address family selector for [`RouteHandle::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// A route read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// Destination; 0.0.0.0/0 or ::/0 for a default route.
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    /// `onlink` (RTNH_F_ONLINK): gateway assumed reachable on `oif`.
    pub onlink: bool,
    pub scope: Scope,
    pub table: u32,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
}

/// The kernel's answer to `ip route get DST`: how a packet to one address
/// would leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteLookup {
    /// Outgoing interface (`dev`); `lo` for one of our own addresses.
    pub oif: Option<u32>,
    /// Preferred source address (`src`).
    pub src: Option<IpAddr>,
    /// Next hop (`via`); None when the destination is on-link.
    pub gw: Option<IpAddr>,
}

/// A route to add, replace or delete in the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
    pub onlink: bool,
    /// None = iproute2's default: `link` without a gateway, else `global`.
    pub scope: Option<Scope>,
}

impl RouteSpec {
    /// A route to `dst` with nothing else set.
    pub fn to(dst: IpNet) -> Self {
        RouteSpec {
            dst,
            gw: None,
            oif: None,
            onlink: false,
            scope: None,
        }
    }
}

fn route_addr(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(a) => RouteAddress::Inet(a),
        IpAddr::V6(a) => RouteAddress::Inet6(a),
    }
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn route_msg(r: &RouteSpec, delete: bool) -> Result<RouteMessage> {
    if let Some(gw) = r.gw {
        if family_of(&gw) != family_of(&r.dst.addr()) {
            return Err(Error::invalid(
                format!("route {}", r.dst),
                format!("gateway {gw} is of another family"),
            ));
        }
    }
    let mut msg = RouteMessage::default();
    msg.header.address_family = family_of(&r.dst.addr());
    msg.header.destination_prefix_length = r.dst.prefix_len();
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.kind = RouteType::Unicast;
    msg.header.protocol = if delete {
        RouteProtocol::Unspec
    } else {
        RouteProtocol::Boot
    };
    // iproute2: scope defaults to link for a device route, universe with a
    // gateway, and "nowhere" (= any) when deleting.
    msg.header.scope = match (r.scope, delete, r.gw) {
        (Some(s), _, _) => s.into(),
        (None, true, _) => RouteScope::NoWhere,
        (None, false, None) => RouteScope::Link,
        (None, false, Some(_)) => RouteScope::Universe,
    };
    if r.onlink {
        msg.header.flags = RouteFlags::Onlink;
    }
    if r.dst.prefix_len() > 0 {
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(r.dst.network())));
    }
    if let Some(gw) = r.gw {
        msg.attributes.push(RouteAttribute::Gateway(route_addr(gw)));
    }
    if let Some(oif) = r.oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    Ok(msg)
}

fn describe(r: &RouteSpec) -> String {
    let mut s = r.dst.trunc().to_string();
    if let Some(gw) = r.gw {
        s += &format!(" via {gw}");
    }
    if let Some(oif) = r.oif {
        s += &format!(" dev #{oif}");
    }
    if r.onlink {
        s += " onlink";
    }
    s
}

pub(crate) fn entry_from(m: &RouteMessage) -> Option<RouteEntry> {
    let mut dst = None;
    let mut e = RouteEntry {
        dst: IpNet::V4(Default::default()),
        gw: None,
        oif: None,
        onlink: m.header.flags.contains(RouteFlags::Onlink),
        scope: m.header.scope.into(),
        table: u32::from(m.header.table),
        metric: None,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = ip_of(d),
            RouteAttribute::Gateway(g) => e.gw = ip_of(g),
            RouteAttribute::Oif(o) => e.oif = Some(*o),
            RouteAttribute::Table(t) => e.table = *t,
            RouteAttribute::Priority(p) => e.metric = Some(*p),
            _ => {}
        }
    }
    let dst = match (dst, m.header.address_family) {
        (Some(ip), _) => ip,
        (None, AddressFamily::Inet) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, AddressFamily::Inet6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => return None,
    };
    e.dst = IpNet::new(dst, m.header.destination_prefix_length).ok()?;
    Some(e)
}

/// The route verbs (`ip route`) of one [`Netlink`] socket, from
/// [`Netlink::route`].
#[derive(Debug)]
pub struct RouteHandle<'a>(&'a mut Netlink);

impl Netlink {
    /// Routes in the main table: `ip route`.
    pub fn route(&mut self) -> RouteHandle<'_> {
        RouteHandle(self)
    }
}

impl RouteHandle<'_> {
    /// `ip [-6] route show table main` (unicast and other types alike).
    pub fn list(&mut self, family: Family) -> Result<Vec<RouteEntry>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = match family {
            Family::V4 => AddressFamily::Inet,
            Family::V6 => AddressFamily::Inet6,
        };
        let replies = self
            .0
            .dump(RouteNetlinkMessage::GetRoute(msg), "list routes")?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => entry_from(m),
                _ => None,
            })
            .filter(|e| e.table == u32::from(RouteHeader::RT_TABLE_MAIN))
            .collect())
    }

    /// `ip route get DST` (RTM_GETROUTE for one address): the interface,
    /// source address and gateway the kernel would use, policy rules and
    /// all. No route is an error (ENETUNREACH, EHOSTUNREACH, ...).
    pub fn get(&mut self, dst: IpAddr) -> Result<RouteLookup> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(&dst);
        msg.header.destination_prefix_length = match dst {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(dst)));
        let what = format!("look up the route to {dst}");
        let replies = self.0.get(RouteNetlinkMessage::GetRoute(msg), 0, &what)?;
        let m = replies
            .iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewRoute(m) => Some(m),
                _ => None,
            })
            .ok_or_else(|| Error::invalid(&what, "the kernel sent no route back"))?;
        let mut out = RouteLookup {
            oif: None,
            src: None,
            gw: None,
        };
        for a in &m.attributes {
            match a {
                RouteAttribute::Oif(o) => out.oif = Some(*o),
                RouteAttribute::PrefSource(s) => out.src = ip_of(s),
                RouteAttribute::Gateway(g) => out.gw = ip_of(g),
                _ => {}
            }
        }
        Ok(out)
    }

    /// `ip route get fibmatch ADDR` (RTM_GETROUTE with `RTM_F_FIB_MATCH`):
    /// the route entry a packet to `addr` matches in the FIB (its prefix,
    /// gateway and device, not the resolved next hop), so one route can be
    /// checked without dumping the table. `None` when no route matches.
    pub fn fib_match(&mut self, addr: IpAddr) -> Result<Option<RouteEntry>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family_of(&addr);
        msg.header.destination_prefix_length = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        msg.header.flags = RouteFlags::FibMatch;
        msg.attributes
            .push(RouteAttribute::Destination(route_addr(addr)));
        let what = format!("look up the route entry matching {addr}");
        let replies = match self.0.get(RouteNetlinkMessage::GetRoute(msg), 0, &what) {
            Ok(r) => r,
            Err(e) if is_unreachable(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewRoute(m) => entry_from(m),
            _ => None,
        }))
    }

    /// `ip route add DST [via GW] [dev OIF] [onlink] [scope S]`.
    /// An existing route gives an error with `is_exists()`.
    pub fn add(&mut self, r: &RouteSpec) -> Result<()> {
        self.0.exec(req::add_route(r)?)
    }

    /// `ip route replace DST [via GW] [dev OIF] [onlink] [scope S]`.
    pub fn replace(&mut self, r: &RouteSpec) -> Result<()> {
        self.0.exec(req::replace_route(r)?)
    }

    /// `ip route del DST [via GW] [dev OIF]`. Idempotent: a missing route
    /// (ESRCH) is success.
    pub fn del(&mut self, r: &RouteSpec) -> Result<()> {
        self.0.exec(req::del_route(r)?)
    }
}

/// "No route" answers of a lookup.
fn is_unreachable(e: &Error) -> bool {
    e.is_not_found()
        || matches!(
            e.errno(),
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EINVAL)
        )
}

/// Request builders, shared by the [`RouteHandle`] verbs and [`crate::Batch`].
pub(crate) mod req {
    use super::*;

    pub fn add_route(r: &RouteSpec) -> Result<Request> {
        let msg = RouteNetlinkMessage::NewRoute(route_msg(r, false)?);
        Ok(Request::new(
            msg,
            CREATE_EXCL,
            format!("add route {}", describe(r)),
        ))
    }

    pub fn replace_route(r: &RouteSpec) -> Result<Request> {
        let msg = RouteNetlinkMessage::NewRoute(route_msg(r, false)?);
        let op = format!("replace route {}", describe(r));
        Ok(Request::new(msg, NLM_F_CREATE | NLM_F_REPLACE, op))
    }

    pub fn del_route(r: &RouteSpec) -> Result<Request> {
        let msg = RouteNetlinkMessage::DelRoute(route_msg(r, true)?);
        let op = format!("delete route {}", describe(r));
        Ok(Request::new(msg, 0, op).idempotent())
    }
}
