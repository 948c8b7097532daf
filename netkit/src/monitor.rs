//! Change notifications (`ip monitor link address route neigh`): a
//! route-netlink socket subscribed to the link, address (IPv4 and IPv6),
//! route (IPv4 and IPv6) and neighbour groups, so a daemon learns at once
//! that a device, or something on it, was deleted, added or changed instead
//! of polling for it (flannel's vxlan backend does the same for links with
//! `netlink.LinkSubscribe`, recreating `flannel.<VNI>` on `RTM_DELLINK`).
//!
//! Routes and neighbour / FDB entries come decoded ([`RouteEntry`],
//! [`Neigh`]), so the reader can tell which entry changed and look at that
//! one alone rather than dump whole tables.

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::neighbour::NeighbourMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};
use crate::link::Link;
use crate::neigh::Neigh;
use crate::route::RouteEntry;

/// Receive buffer asked for (`SO_RCVBUFFORCE`, root only; the default
/// 208 KiB otherwise): a thousand peers programmed at once make three
/// thousand notifications, which must not overflow it.
const RCVBUF: usize = 8 << 20;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: created, or changed (flags, MTU, address, master,
    /// offload features…).
    Changed(Link),
    /// `RTM_DELLINK`.
    Deleted(Link),
    /// `RTM_DELADDR` on the device with this ifindex (IPv4 or IPv6).
    AddrRemoved { index: u32 },
    /// `RTM_NEWROUTE` (`gone` false) or `RTM_DELROUTE`, any table.
    Route { gone: bool, route: RouteEntry },
    /// `RTM_NEWNEIGH` (`gone` false) or `RTM_DELNEIGH`: an ARP / NDP entry,
    /// or (`fdb`) a bridge or vxlan forwarding-database entry.
    Neigh { gone: bool, fdb: bool, entry: Neigh },
    /// The socket's receive buffer overflowed (`ENOBUFS`): notifications
    /// were lost, so anything may have changed.
    Overflow,
}

impl LinkEvent {
    /// Is this about the link called `name` with ifindex `index` (an
    /// overflow may be)?
    pub fn concerns(&self, name: &str, index: u32) -> bool {
        match self {
            LinkEvent::Changed(l) | LinkEvent::Deleted(l) => l.name == name || l.index == index,
            LinkEvent::AddrRemoved { index: i } => *i == index,
            LinkEvent::Route { route, .. } => route.oif == Some(index),
            LinkEvent::Neigh { entry, .. } => entry.index == index,
            LinkEvent::Overflow => true,
        }
    }
}

fn neigh(gone: bool, m: &NeighbourMessage) -> LinkEvent {
    LinkEvent::Neigh {
        gone,
        fdb: m.header.family == AddressFamily::Bridge,
        entry: crate::neigh::from_msg(m),
    }
}

fn event(msg: RouteNetlinkMessage) -> Option<LinkEvent> {
    use RouteNetlinkMessage as M;
    Some(match msg {
        M::NewLink(m) => LinkEvent::Changed(Link::from_msg(&m)),
        M::DelLink(m) => LinkEvent::Deleted(Link::from_msg(&m)),
        M::DelAddress(m) => LinkEvent::AddrRemoved {
            index: m.header.index,
        },
        M::NewNeighbour(m) => neigh(false, &m),
        M::DelNeighbour(m) => neigh(true, &m),
        M::NewRoute(m) => LinkEvent::Route {
            gone: false,
            route: crate::route::entry_from(&m)?,
        },
        M::DelRoute(m) => LinkEvent::Route {
            gone: true,
            route: crate::route::entry_from(&m)?,
        },
        _ => return None,
    })
}

/// A socket receiving link notifications of the network namespace it was
/// opened in (the calling thread's, as for [`crate::Netlink::open`]).
pub struct LinkMonitor {
    sock: Socket,
}

impl std::fmt::Debug for LinkMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkMonitor").finish_non_exhaustive()
    }
}

impl LinkMonitor {
    /// `ip monitor link address route neigh`: subscribe to `RTNLGRP_LINK`,
    /// `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV6_IFADDR`, `RTNLGRP_IPV4_ROUTE`,
    /// `RTNLGRP_IPV6_ROUTE` and `RTNLGRP_NEIGH` (ARP, NDP and bridge FDB
    /// entries).
    pub fn open() -> Result<LinkMonitor> {
        let ctx = "open a netlink socket for link notifications";
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(ctx, e))?;
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io(ctx, e))?;
        for group in [
            libc::RTNLGRP_LINK,
            libc::RTNLGRP_IPV4_IFADDR,
            libc::RTNLGRP_IPV6_IFADDR,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_IPV6_ROUTE,
            libc::RTNLGRP_NEIGH,
        ] {
            sock.add_membership(group).map_err(|e| Error::io(ctx, e))?;
        }
        {
            use nix::sys::socket::{setsockopt, sockopt};
            if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
                let _ = sock.set_rx_buf_sz(RCVBUF);
            }
        }
        Ok(LinkMonitor { sock })
    }

    /// Block until the next notifications arrive and return them, with
    /// every one already queued behind them (up to `max`: the kernel sends
    /// each in its own datagram, and a burst is better read as one). Other
    /// messages (new addresses, rules…) are skipped.
    pub fn wait(&mut self, max: usize) -> Result<Vec<LinkEvent>> {
        let what = "read link notifications";
        let mut out = Vec::new();
        let mut flags = 0;
        let mut buf = vec![0u8; 64 << 10];
        while out.len() < max.max(1) {
            let n = match self.sock.recv(&mut &mut buf[..], flags) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(LinkEvent::Overflow);
                    return Ok(out);
                }
                Err(e) if flags != 0 && e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Error::io(what, e)),
            };
            for msg in crate::conn::decode_datagram(&buf[..n], what)? {
                if let NetlinkPayload::InnerMessage(m) = msg.payload {
                    out.extend(event(m));
                }
            }
            flags = libc::MSG_DONTWAIT;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::LinkEvent;
    use crate::{Link, Neigh, RouteEntry, Scope};

    fn link(name: &str) -> Link {
        Link {
            index: 7,
            name: name.into(),
            mac: None,
            mtu: 1450,
            up: true,
            master: None,
            kind: Some("vxlan".into()),
            link: None,
        }
    }

    #[test]
    fn events_concern_their_link_and_overflow_concerns_all() {
        assert!(LinkEvent::Deleted(link("flannel.1")).concerns("flannel.1", 9));
        assert!(!LinkEvent::Changed(link("cni0")).concerns("flannel.1", 9));
        let route = |oif| LinkEvent::Route {
            gone: true,
            route: RouteEntry {
                dst: "10.2.3.0/24".parse().unwrap(),
                gw: None,
                oif: Some(oif),
                onlink: false,
                scope: Scope::Universe,
                table: 254,
                metric: None,
            },
        };
        assert!(route(9).concerns("flannel.1", 9));
        assert!(!route(7).concerns("flannel.1", 9));
        let fdb = LinkEvent::Neigh {
            gone: false,
            fdb: true,
            entry: Neigh {
                index: 9,
                ip: None,
                mac: None,
                permanent: true,
            },
        };
        assert!(fdb.concerns("flannel.1", 9));
        assert!(!LinkEvent::AddrRemoved { index: 3 }.concerns("flannel.1", 9));
        assert!(LinkEvent::Overflow.concerns("flannel.1", 9));
    }
}
