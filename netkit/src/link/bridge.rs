//! Linux bridges and bridge-port options.

use netlink_packet_core::DefaultNla;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkMessage, LinkProtoInfoBridge};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::new_link_request;
use super::LinkHandle;
use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};

/// `IFLA_BRPORT_MODE` (linux/if_link.h): the bridge port's hairpin flag.
const IFLA_BRPORT_MODE: u16 = 4;

impl LinkHandle<'_> {
    /// `ip link add NAME [mtu M] [address MAC] type bridge`
    ///
    /// Pass `mac` to pin the bridge's address: otherwise the kernel picks a
    /// random one and then switches to the lowest port MAC as ports join,
    /// which makes the gateway's MAC change under running containers
    /// (the reason netavark's `bridge.rs` sets it explicitly).
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>, mac: Option<[u8; 6]>) -> Result<()> {
        let msg = new_link_request(name, InfoKind::Bridge, None, mtu, mac);
        let req = Request::new(
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
            format!("create bridge {name}"),
        );
        self.0.exec(req)
    }

    /// `bridge link set dev IDX hairpin on|off` (= `ip link set dev IDX
    /// type bridge_slave hairpin on|off`).
    ///
    /// Sent as an `AF_BRIDGE` RTM_SETLINK carrying a *nested*
    /// `IFLA_PROTINFO { IFLA_BRPORT_MODE }`; the kernel's `br_setlink`
    /// treats a non-nested IFLA_PROTINFO as the legacy port-state byte.
    /// The link must already be a bridge port (after [`LinkHandle::set_master`]).
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = index;
        let mode =
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![u8::from(on)]));
        msg.attributes
            .push(LinkAttribute::ProtoInfoBridge(vec![mode]));
        let verb = if on { "on" } else { "off" };
        let req = Request::new(
            RouteNetlinkMessage::SetLink(msg),
            0,
            format!("set link #{index} hairpin {verb}"),
        );
        self.0.exec(req)
    }
}
