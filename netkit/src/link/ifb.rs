//! Intermediate functional block devices (`ifb`): a device whose only job
//! is to give traffic redirected to it a root qdisc. The bandwidth shaping
//! of a pod's egress needs one, since Linux shapes only what a device sends.

use netlink_packet_route::link::{InfoKind, LinkFlags};
use netlink_packet_route::RouteNetlinkMessage;

use super::new_link_request;
use super::LinkHandle;
use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};

impl LinkHandle<'_> {
    /// `ip link add NAME [mtu M] up type ifb`
    ///
    /// Created up in the same request (the reference bandwidth plugin
    /// passes `net.FlagUp` at creation too). An existing `name` gives an
    /// error with `is_exists()`.
    pub fn add_ifb(&mut self, name: &str, mtu: Option<u32>) -> Result<()> {
        let mut msg = new_link_request(name, InfoKind::Ifb, None, mtu, None);
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        let req = Request::new(
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
            format!("create ifb {name}"),
        );
        self.0.exec(req)
    }
}
