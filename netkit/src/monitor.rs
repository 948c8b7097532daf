//! Change notifications (`ip monitor link address route neigh`): a
//! route-netlink socket subscribed to the link, IPv4 address, IPv4 route
//! and neighbour groups, so a daemon learns at once that a device, or
//! something on it, was deleted or changed instead of polling for it
//! (flannel's vxlan backend does the same for links with
//! `netlink.LinkSubscribe`, recreating `flannel.<VNI>` on `RTM_DELLINK`).

use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::route::RouteAttribute;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::{Error, Result};
use crate::link::Link;

/// One notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// `RTM_NEWLINK`: created, or changed (flags, MTU, address, master…).
    Changed(Link),
    /// `RTM_DELLINK`.
    Deleted(Link),
    /// `RTM_DELADDR`, `RTM_DELROUTE` or `RTM_DELNEIGH` (ARP or FDB entry)
    /// of the device with this ifindex (0 when the message names none).
    Removed { what: &'static str, index: u32 },
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
            LinkEvent::Removed { index: i, .. } => *i == index,
            LinkEvent::Overflow => true,
        }
    }
}

fn event(msg: RouteNetlinkMessage) -> Option<LinkEvent> {
    use RouteNetlinkMessage as M;
    Some(match msg {
        M::NewLink(m) => LinkEvent::Changed(Link::from_msg(&m)),
        M::DelLink(m) => LinkEvent::Deleted(Link::from_msg(&m)),
        M::DelAddress(m) => LinkEvent::Removed {
            what: "address",
            index: m.header.index,
        },
        M::DelNeighbour(m) => LinkEvent::Removed {
            what: "neighbour",
            index: m.header.ifindex,
        },
        M::DelRoute(m) => LinkEvent::Removed {
            what: "route",
            index: m
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Oif(o) => Some(*o),
                    _ => None,
                })
                .unwrap_or(0),
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
    /// `ip monitor link address route neigh` (IPv4): subscribe to
    /// `RTNLGRP_LINK`, `RTNLGRP_IPV4_IFADDR`, `RTNLGRP_IPV4_ROUTE` and
    /// `RTNLGRP_NEIGH` (ARP and bridge FDB entries).
    pub fn open() -> Result<LinkMonitor> {
        let ctx = "open a netlink socket for link notifications";
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| Error::io(ctx, e))?;
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io(ctx, e))?;
        for group in [
            libc::RTNLGRP_LINK,
            libc::RTNLGRP_IPV4_IFADDR,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_NEIGH,
        ] {
            sock.add_membership(group).map_err(|e| Error::io(ctx, e))?;
        }
        Ok(LinkMonitor { sock })
    }

    /// Block until the next notifications arrive and return them. Other
    /// messages (new addresses, routes, neighbours) are skipped.
    pub fn wait(&mut self) -> Result<Vec<LinkEvent>> {
        let what = "read link notifications";
        let buf = match self.sock.recv_from_full() {
            Ok((buf, _)) => buf,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(vec![LinkEvent::Overflow])
            }
            Err(e) => return Err(Error::io(what, e)),
        };
        let mut out = Vec::new();
        for msg in crate::socket::decode_datagram(&buf, what)? {
            if let NetlinkPayload::InnerMessage(m) = msg.payload {
                out.extend(event(m));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::LinkEvent;
    use crate::Link;

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
        let route = |index| LinkEvent::Removed {
            what: "route",
            index,
        };
        assert!(route(9).concerns("flannel.1", 9));
        assert!(!route(7).concerns("flannel.1", 9));
        assert!(LinkEvent::Overflow.concerns("flannel.1", 9));
    }
}
