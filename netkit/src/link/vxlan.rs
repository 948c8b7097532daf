//! VXLAN devices (flannel's `flannel.<VNI>`).

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan};
use netlink_packet_route::RouteNetlinkMessage;

use super::new_link_request;
use super::LinkHandle;
use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};

/// Linux's default VXLAN UDP port (the `vxlan_port` module parameter), which
/// flannel uses when its `Port` is 0. Not IANA's 4789.
pub const VXLAN_DEFAULT_PORT: u16 = 8472;

/// Parameters of [`LinkHandle::add_vxlan`](super::LinkHandle::add_vxlan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanParams {
    /// Device name, e.g. `flannel.1`.
    pub name: String,
    pub vni: u32,
    /// Source address of the tunnel (the node's public IP).
    pub local: Option<IpAddr>,
    /// ifindex of the underlay device.
    pub dev: Option<u32>,
    /// UDP destination port; None means [`VXLAN_DEFAULT_PORT`].
    pub port: Option<u16>,
    /// MAC learning; flannel programs the FDB itself, so false.
    pub learning: bool,
    /// Group Based Policy extension (flannel's `GBP` option).
    pub gbp: bool,
    pub mtu: Option<u32>,
    /// Fixed VTEP MAC; None lets the kernel pick a random one.
    pub mac: Option<[u8; 6]>,
}

impl VxlanParams {
    /// flannel's defaults: `flannel.<vni>`, port 8472, learning off.
    pub fn new(name: impl Into<String>, vni: u32) -> Self {
        VxlanParams {
            name: name.into(),
            vni,
            local: None,
            dev: None,
            port: None,
            learning: false,
            gbp: false,
            mtu: None,
            mac: None,
        }
    }
}

impl LinkHandle<'_> {
    /// `ip link add NAME [mtu M] [address MAC] type vxlan id VNI [local IP]
    /// [dev DEV] dstport PORT nolearning [gbp]`
    pub fn add_vxlan(&mut self, p: &VxlanParams) -> Result<()> {
        let mut opts = vec![InfoVxlan::Id(p.vni)];
        match p.local {
            Some(IpAddr::V4(a)) => opts.push(InfoVxlan::Local(a)),
            Some(IpAddr::V6(a)) => opts.push(InfoVxlan::Local6(a)),
            None => {}
        }
        if let Some(dev) = p.dev {
            opts.push(InfoVxlan::Link(dev));
        }
        opts.push(InfoVxlan::Port(p.port.unwrap_or(VXLAN_DEFAULT_PORT)));
        opts.push(InfoVxlan::Learning(p.learning));
        if p.gbp {
            opts.push(InfoVxlan::Gbp);
        }
        let data = InfoData::Vxlan(opts);
        let msg = new_link_request(&p.name, InfoKind::Vxlan, Some(data), p.mtu, p.mac);
        let op = format!("create vxlan {} (vni {})", p.name, p.vni);
        self.0.exec(Request::new(
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
            op,
        ))
    }
}

/// What the kernel reports about an existing VXLAN device (`ip -d link
/// show`), enough to tell whether it matches what we would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanInfo {
    pub link: super::Link,
    pub vni: Option<u32>,
    pub local: Option<IpAddr>,
    /// ifindex of the underlay device.
    pub dev: Option<u32>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
    /// Group Based Policy extension on.
    pub gbp: bool,
}

impl LinkHandle<'_> {
    /// `ip -d link show dev NAME` for a VXLAN device. `Ok(None)` if there is
    /// no such link; a link of another kind comes back with every VXLAN
    /// field `None` (check `link.kind`).
    pub fn vxlan_info(&mut self, name: &str) -> Result<Option<VxlanInfo>> {
        use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let replies = match self.0.get(
            RouteNetlinkMessage::GetLink(msg),
            0,
            &format!("get link {name}"),
        ) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(m) = replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        }) else {
            return Ok(None);
        };
        let mut info = VxlanInfo {
            link: super::Link::from_msg(m),
            vni: None,
            local: None,
            dev: None,
            port: None,
            learning: None,
            gbp: false,
        };
        let opts = m.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                LinkInfo::Data(InfoData::Vxlan(o)) => Some(o),
                _ => None,
            }),
            _ => None,
        });
        for o in opts.into_iter().flatten() {
            match o {
                InfoVxlan::Id(v) => info.vni = Some(*v),
                InfoVxlan::Local(a) => info.local = Some(IpAddr::V4(*a)),
                InfoVxlan::Local6(a) => info.local = Some(IpAddr::V6(*a)),
                InfoVxlan::Link(l) => info.dev = Some(*l),
                InfoVxlan::Port(p) => info.port = Some(*p),
                InfoVxlan::Learning(l) => info.learning = Some(*l),
                InfoVxlan::Gbp => info.gbp = true,
                _ => {}
            }
        }
        Ok(Some(info))
    }
}
