//! The handle the traffic-control verbs hang on ([`Netlink::tc`]), apart
//! from the verbs themselves so that each kernel object's file (`tbf`,
//! `filter`, the qdiscs in `mod.rs`) depends on it and not on another.

use netlink_packet_route::tc::TcHandle;

use crate::socket::Netlink;

/// The handle `tc` gives the ingress qdisc (`ffff:`).
pub const INGRESS_HANDLE: TcHandle = TcHandle {
    major: 0xffff,
    minor: 0,
};

/// The traffic-control verbs (`tc`) of one [`Netlink`] socket, from
/// [`Netlink::tc`].
#[derive(Debug)]
pub struct TrafficHandle<'a>(pub(super) &'a mut Netlink);

impl Netlink {
    /// Traffic control: `tc qdisc` and `tc filter`.
    pub fn tc(&mut self) -> TrafficHandle<'_> {
        TrafficHandle(self)
    }
}
