//! VXLAN devices (flannel's `flannel.<VNI>`).

use std::net::IpAddr;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan};
use netlink_packet_route::RouteNetlinkMessage;

use super::{new_link_request, CREATE_EXCL};
use crate::error::Result;
use crate::socket::{Netlink, Request};

/// Linux's default VXLAN UDP port (the `vxlan_port` module parameter), which
/// flannel uses when its `Port` is 0. Not IANA's 4789.
pub const VXLAN_DEFAULT_PORT: u16 = 8472;

/// Parameters of [`Netlink::add_vxlan`].
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

impl Netlink {
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
        self.exec(Request::new(
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
            op,
        ))
    }
}
