//! Neighbour entries: ARP/NDP (`ip neigh`) and bridge/VXLAN forwarding
//! database (`bridge fdb`), through [`Netlink::neigh`]. flannel's vxlan
//! backend needs both per remote
//! node: an ARP entry for the remote subnet's .0 -> VTEP MAC on flannel.1,
//! and an FDB entry VTEP MAC -> remote public IP.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::Result;
use crate::family::family_of;
use crate::mac::fmt_mac;
use crate::socket::{Netlink, Request};

/// `NUD_PERMANENT` (include/uapi/linux/neighbour.h).
const NUD_PERMANENT: u16 = 0x80;

/// A neighbour or FDB entry read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neigh {
    pub index: u32,
    /// Protocol address (ARP/NDP) or remote VTEP IP (FDB `dst`).
    pub ip: Option<IpAddr>,
    pub mac: Option<[u8; 6]>,
    pub permanent: bool,
}

fn neigh_addr(ip: IpAddr) -> NeighbourAddress {
    match ip {
        IpAddr::V4(a) => NeighbourAddress::Inet(a),
        IpAddr::V6(a) => NeighbourAddress::Inet6(a),
    }
}

fn arp_msg(index: u32, ip: IpAddr) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = family_of(&ip);
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    msg.attributes
        .push(NeighbourAttribute::Destination(neigh_addr(ip)));
    msg
}

fn fdb_msg(index: u32, mac: [u8; 6], dst: Option<IpAddr>) -> NeighbourMessage {
    let mut msg = NeighbourMessage::default();
    msg.header.family = AddressFamily::Bridge;
    msg.header.ifindex = index;
    msg.header.state = NeighbourState::Permanent;
    // NTF_SELF: program the device's own table (the vxlan FDB), not the
    // FDB of a bridge it may be enslaved to.
    msg.header.flags = NeighbourFlags::Own;
    msg.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    if let Some(dst) = dst {
        msg.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(dst)));
    }
    msg
}

/// In AF_BRIDGE (FDB) messages the crate cannot know the `dst` family from
/// the header and may hand back raw bytes: decode them by length.
fn ip_of(a: &NeighbourAddress) -> Option<IpAddr> {
    match a {
        NeighbourAddress::Inet(ip) => Some((*ip).into()),
        NeighbourAddress::Inet6(ip) => Some((*ip).into()),
        NeighbourAddress::Other(b) => match b.len() {
            4 => <[u8; 4]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            16 => <[u8; 16]>::try_from(b.as_slice()).ok().map(IpAddr::from),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn from_msg(m: &NeighbourMessage) -> Neigh {
    let mut n = Neigh {
        index: m.header.ifindex,
        ip: None,
        mac: None,
        // ndm_state is a bit mask: `bridge fdb add … permanent` sends
        // NUD_NOARP|NUD_PERMANENT (0xc0), which the crate can only decode
        // as `Other`, so test the bit as iproute2 does.
        permanent: u16::from(m.header.state) & NUD_PERMANENT != 0,
    };
    for a in &m.attributes {
        match a {
            NeighbourAttribute::Destination(d) => n.ip = ip_of(d),
            NeighbourAttribute::LinkLayerAddress(l) => {
                n.mac = <[u8; 6]>::try_from(l.as_slice()).ok()
            }
            _ => {}
        }
    }
    n
}

/// Request builders, shared by the [`NeighHandle`] verbs and [`crate::Batch`].
pub(crate) mod req {
    use super::*;

    /// `ip neigh replace IP lladdr MAC dev IDX nud permanent`
    pub fn add_neigh(index: u32, ip: IpAddr, mac: [u8; 6]) -> Request {
        let mut msg = arp_msg(index, ip);
        let lladdr = NeighbourAttribute::LinkLayerAddress(mac.to_vec());
        msg.attributes.push(lladdr);
        let op = format!(
            "replace neighbour {ip} lladdr {} dev #{index}",
            fmt_mac(&mac)
        );
        let msg = RouteNetlinkMessage::NewNeighbour(msg);
        Request::new(msg, NLM_F_CREATE | NLM_F_REPLACE, op)
    }

    /// `ip neigh del IP dev IDX` (missing = success)
    pub fn del_neigh(index: u32, ip: IpAddr) -> Request {
        let msg = RouteNetlinkMessage::DelNeighbour(arp_msg(index, ip));
        Request::new(msg, 0, format!("delete neighbour {ip} dev #{index}")).idempotent()
    }

    /// `bridge fdb replace MAC dev IDX dst IP self permanent`
    pub fn add_fdb(index: u32, mac: [u8; 6], dst: IpAddr) -> Request {
        let msg = RouteNetlinkMessage::NewNeighbour(fdb_msg(index, mac, Some(dst)));
        let op = format!("replace fdb {} dst {dst} dev #{index}", fmt_mac(&mac));
        Request::new(msg, NLM_F_CREATE | NLM_F_REPLACE, op)
    }

    /// `bridge fdb del MAC dev IDX [dst IP] self` (missing = success)
    pub fn del_fdb(index: u32, mac: [u8; 6], dst: Option<IpAddr>) -> Request {
        let msg = RouteNetlinkMessage::DelNeighbour(fdb_msg(index, mac, dst));
        let op = format!("delete fdb {} dev #{index}", fmt_mac(&mac));
        Request::new(msg, 0, op).idempotent()
    }
}

/// The neighbour verbs (`ip neigh`, and `bridge fdb` for a device's
/// forwarding database) of one [`Netlink`] socket, from [`Netlink::neigh`].
#[derive(Debug)]
pub struct NeighHandle<'a>(&'a mut Netlink);

impl Netlink {
    /// Neighbours: ARP/NDP entries (`ip neigh`) and FDB entries (`bridge fdb`).
    pub fn neigh(&mut self) -> NeighHandle<'_> {
        NeighHandle(self)
    }
}

impl NeighHandle<'_> {
    /// `ip neigh replace IP lladdr MAC dev IDX nud permanent`.
    /// Idempotent (replace semantics).
    pub fn add(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> Result<()> {
        self.0.exec(req::add_neigh(index, ip, mac))
    }

    /// `ip neigh del IP dev IDX`. Idempotent: a missing entry is success.
    pub fn del(&mut self, index: u32, ip: IpAddr) -> Result<()> {
        self.0.exec(req::del_neigh(index, ip))
    }

    /// `ip neigh show dev IDX` for one address family (ARP or NDP).
    pub fn list(&mut self, index: u32, v6: bool) -> Result<Vec<Neigh>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        self.dump(msg, index, "list neighbours")
    }

    /// `bridge fdb replace MAC dev IDX dst IP self permanent`.
    ///
    /// Replace, not append: this is what flannel's `AddFDB` does
    /// (`netlink.NeighSet`), so a node whose public IP changed gets its entry
    /// rewritten instead of a second, stale destination.
    pub fn add_fdb(&mut self, index: u32, mac: [u8; 6], dst: IpAddr) -> Result<()> {
        self.0.exec(req::add_fdb(index, mac, dst))
    }

    /// `bridge fdb del MAC dev IDX [dst IP] self`. Idempotent.
    pub fn del_fdb(&mut self, index: u32, mac: [u8; 6], dst: Option<IpAddr>) -> Result<()> {
        self.0.exec(req::del_fdb(index, mac, dst))
    }

    /// `ip neigh get IP dev IDX`: one ARP / NDP entry, `None` when the
    /// device has none for `ip`.
    pub fn get(&mut self, index: u32, ip: IpAddr) -> Result<Option<Neigh>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(&ip);
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(neigh_addr(ip)));
        let what = format!("read neighbour {ip} dev #{index}");
        self.one(msg, &what)
    }

    /// `bridge fdb get MAC dev IDX self`: the entry for `mac` in a vxlan
    /// device's own forwarding database (with its first destination),
    /// `None` when there is none.
    pub fn get_fdb(&mut self, index: u32, mac: [u8; 6]) -> Result<Option<Neigh>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        let what = format!("read fdb {} dev #{index}", fmt_mac(&mac));
        self.one(msg, &what)
    }

    fn one(&mut self, msg: NeighbourMessage, what: &str) -> Result<Option<Neigh>> {
        match self.0.get(RouteNetlinkMessage::GetNeighbour(msg), 0, what) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(m) => Some(from_msg(m)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `bridge fdb show dev IDX`.
    pub fn list_fdb(&mut self, index: u32) -> Result<Vec<Neigh>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        self.dump(msg, index, "list fdb")
    }

    fn dump(&mut self, msg: NeighbourMessage, index: u32, what: &str) -> Result<Vec<Neigh>> {
        let replies = self.0.dump(RouteNetlinkMessage::GetNeighbour(msg), what)?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewNeighbour(m) if m.header.ifindex == index => {
                    Some(from_msg(m))
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_is_a_bit_of_the_state() {
        let mut m = NeighbourMessage::default();
        // What `bridge fdb add … permanent` writes: NUD_NOARP|NUD_PERMANENT.
        m.header.state = NeighbourState::from(0xc0u16);
        assert!(from_msg(&m).permanent);
        m.header.state = NeighbourState::Permanent;
        assert!(from_msg(&m).permanent);
        m.header.state = NeighbourState::Reachable;
        assert!(!from_msg(&m).permanent);
        m.header.state = NeighbourState::Noarp;
        assert!(!from_msg(&m).permanent);
    }
}
