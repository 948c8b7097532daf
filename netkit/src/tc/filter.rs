//! The one filter bandwidth shaping needs: everything a device receives
//! is redirected to another device (the pod's egress to its ifb).

use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute,
    TcFilterU32Option, TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key,
    TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::handle::TrafficHandle;
use super::handle::INGRESS_HANDLE;
use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};

/// `ETH_P_ALL` (linux/if_ether.h).
const ETH_P_ALL: u16 = 0x0003;

impl TrafficHandle<'_> {
    /// `tc filter add dev IDX parent ffff: protocol all prio 1 u32 match
    /// u32 0 0 flowid 1:1 action mirred egress redirect dev TO`
    ///
    /// The device needs its ingress qdisc first
    /// ([`TrafficHandle::add_ingress`]). u32 with one all-zero key, as the
    /// reference bandwidth plugin sends it: `matchall` would be simpler but
    /// is an optional kernel module (`CONFIG_NET_CLS_MATCHALL`).
    pub fn add_redirect(&mut self, index: u32, to: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(i32::try_from(index).unwrap_or_default());
        msg.header.parent = INGRESS_HANDLE;
        // tcm_info: priority in the upper half, protocol (network order) below.
        msg.header.info = (1 << 16) | u32::from(ETH_P_ALL.to_be());
        let mut sel = TcU32Selector::default();
        sel.flags = TcU32SelectorFlags::Terminal;
        sel.nkeys = 1;
        sel.keys = vec![TcU32Key::default()];
        let mut mirred = TcMirror::default();
        mirred.generic.action = TcActionType::Stolen;
        mirred.eaction = TcMirrorActionType::EgressRedir;
        mirred.ifindex = to;
        let mut action = TcAction::default();
        action.attributes = vec![
            TcActionAttribute::Kind("mirred".into()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(
                mirred,
            ))]),
        ];
        msg.attributes.push(TcAttribute::Kind("u32".into()));
        msg.attributes.push(TcAttribute::Options(vec![
            TcOption::U32(TcFilterU32Option::ClassId(TcHandle { major: 1, minor: 1 })),
            TcOption::U32(TcFilterU32Option::Selector(sel)),
            TcOption::U32(TcFilterU32Option::Action(vec![action])),
        ]));
        let req = Request::new(
            RouteNetlinkMessage::NewTrafficFilter(msg),
            CREATE_EXCL,
            format!("add redirect filter link #{index} -> #{to}"),
        );
        self.0.exec(req)
    }
}
