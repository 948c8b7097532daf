//! Links (`ip link`), through [`Netlink::link`]: query, set, delete.
//! Creation of each kind lives in its own file: [`veth`], [`bridge`],
//! [`vxlan`], [`ifb`].

pub mod bridge;
pub mod ifb;
pub mod veth;
pub mod vxlan;

use netlink_packet_route::link::{
    InfoData, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::socket::{Netlink, Request};

/// A network interface as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Hardware address, when it is a 6-byte Ethernet one.
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// ifindex of the bridge/bond this link is enslaved to.
    pub master: Option<u32>,
    /// `IFLA_INFO_KIND`: "veth", "bridge", "vxlan", ...; None for physical
    /// and loopback devices.
    pub kind: Option<String>,
    /// For a veth: ifindex of its peer (in the peer's namespace).
    pub link: Option<u32>,
}

impl Link {
    pub(crate) fn from_msg(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mac: None,
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            kind: None,
            link: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => link.mtu = *m,
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::Link(l) => link.link = Some(*l),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(k.to_string()),
                        _ => None,
                    })
                }
                _ => {}
            }
        }
        link
    }
}

/// `RTM_NEWLINK` with CREATE|EXCL for a new device of `kind`.
pub(crate) fn new_link_request(
    name: &str,
    kind: InfoKind,
    data: Option<InfoData>,
    mtu: Option<u32>,
    mac: Option<[u8; 6]>,
) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    if let Some(mtu) = mtu {
        msg.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = mac {
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    let mut info = vec![LinkInfo::Kind(kind)];
    info.extend(data.map(LinkInfo::Data));
    msg.attributes.push(LinkAttribute::LinkInfo(info));
    msg
}

fn index_msg(index: u32) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg
}

/// The link verbs of one [`Netlink`] socket (`ip link`), from
/// [`Netlink::link`].
#[derive(Debug)]
pub struct LinkHandle<'a>(&'a mut Netlink);

impl Netlink {
    /// Links: `ip link` (veth, bridge, vxlan, ifb; up, mtu, master, delete).
    pub fn link(&mut self) -> LinkHandle<'_> {
        LinkHandle(self)
    }
}

impl LinkHandle<'_> {
    /// `ip link show dev NAME`. `Ok(None)` if there is no such link.
    pub fn by_name(&mut self, name: &str) -> Result<Option<Link>> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_one_link(msg, &format!("get link {name}"))
    }

    /// `ip link show` for one ifindex. `Ok(None)` if there is no such link.
    pub fn by_index(&mut self, index: u32) -> Result<Option<Link>> {
        self.get_one_link(index_msg(index), &format!("get link #{index}"))
    }

    fn get_one_link(&mut self, msg: LinkMessage, what: &str) -> Result<Option<Link>> {
        match self.0.get(RouteNetlinkMessage::GetLink(msg), 0, what) {
            Ok(replies) => Ok(replies.iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_msg(l)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ip link show`: every link in the socket's namespace.
    pub fn list(&mut self) -> Result<Vec<Link>> {
        let replies = self.0.dump(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            "list links",
        )?;
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(Link::from_msg(l)),
                _ => None,
            })
            .collect())
    }

    fn set_link(&mut self, msg: LinkMessage, op: String) -> Result<()> {
        self.0
            .exec(Request::new(RouteNetlinkMessage::SetLink(msg), 0, op))
    }

    /// `ip link set dev IDX up`.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        let mut msg = index_msg(index);
        msg.header.change_mask = LinkFlags::Up;
        msg.header.flags = LinkFlags::Up;
        self.set_link(msg, format!("set link #{index} up"))
    }

    /// `ip link set dev IDX mtu MTU`.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        let mut msg = index_msg(index);
        msg.attributes.push(LinkAttribute::Mtu(mtu));
        self.set_link(msg, format!("set link #{index} mtu {mtu}"))
    }

    /// `ip link set dev IDX address MAC`.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        let mut msg = index_msg(index);
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        self.set_link(
            msg,
            format!("set link #{index} address {}", crate::mac::fmt_mac(&mac)),
        )
    }

    /// `ip link set dev IDX master MASTER`.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        let mut msg = index_msg(index);
        msg.attributes.push(LinkAttribute::Controller(master));
        self.set_link(msg, format!("set link #{index} master #{master}"))
    }

    /// `ip link set dev IDX nomaster`.
    pub fn set_nomaster(&mut self, index: u32) -> Result<()> {
        let mut msg = index_msg(index);
        msg.attributes.push(LinkAttribute::Controller(0));
        self.set_link(msg, format!("set link #{index} nomaster"))
    }

    /// `ip link set dev NAME nomaster`, in one round trip (the kernel
    /// resolves `IFLA_IFNAME` itself). Idempotent: a missing link, or one
    /// without a master, is success.
    pub fn set_nomaster_by_name(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        msg.attributes.push(LinkAttribute::Controller(0));
        match self.set_link(msg, format!("set link {name} nomaster")) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `ip link del dev IDX`. Idempotent: a missing link is success.
    pub fn del(&mut self, index: u32) -> Result<()> {
        let req = Request::new(
            RouteNetlinkMessage::DelLink(index_msg(index)),
            0,
            format!("delete link #{index}"),
        );
        match self.0.exec(req) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// `ip link del dev NAME`. Idempotent: a missing link is success.
    /// One round trip: the kernel resolves `IFLA_IFNAME` itself.
    pub fn del_by_name(&mut self, name: &str) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let req = Request::new(
            RouteNetlinkMessage::DelLink(msg),
            0,
            format!("delete link {name}"),
        );
        match self.0.exec(req) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}
