//! veth pairs.

use std::os::fd::AsRawFd;

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::new_link_request;
use super::LinkHandle;
use crate::error::Result;
use crate::netns::Netns;
use crate::socket::{Request, CREATE_EXCL};

impl LinkHandle<'_> {
    /// `ip link add HOST [mtu M] type veth peer name PEER [address MAC] [mtu M] netns NS`
    ///
    /// `host` is created in this socket's namespace; `peer` is created
    /// directly inside `peer_ns` through `IFLA_NET_NS_FD` in the peer's
    /// `VETH_INFO_PEER` message, so it never appears in the host namespace
    /// (no create-then-move race, no name clash with host interfaces such as
    /// `eth0`). Both ends get `mtu`; both are left down.
    ///
    /// Both ends get one TX and one RX queue, asked for explicitly. Without
    /// them the kernel allocates one queue per possible CPU, and then sets
    /// the real count to 1 on the already registered device, which waits
    /// for an expedited RCU grace period under the RTNL lock, once per end
    /// (`veth_init_queues` → `netif_set_real_num_tx_queues` →
    /// `synchronize_net`). One queue is what a veth runs with either way;
    /// only the (unused) headroom for `ethtool -L` goes.
    ///
    /// Either name existing gives an error with `is_exists()`.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: &Netns,
        mtu: Option<u32>,
        peer_mac: Option<[u8; 6]>,
    ) -> Result<()> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg
            .attributes
            .push(LinkAttribute::NetNsFd(peer_ns.fd().as_raw_fd()));
        if let Some(mtu) = mtu {
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        peer_msg.attributes.push(LinkAttribute::NumTxQueues(1));
        peer_msg.attributes.push(LinkAttribute::NumRxQueues(1));
        if let Some(mac) = peer_mac {
            peer_msg
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        let data = InfoData::Veth(InfoVeth::Peer(peer_msg));
        let mut msg = new_link_request(host, InfoKind::Veth, Some(data), mtu, None);
        msg.attributes.push(LinkAttribute::NumTxQueues(1));
        msg.attributes.push(LinkAttribute::NumRxQueues(1));
        let req = Request::new(
            RouteNetlinkMessage::NewLink(msg),
            CREATE_EXCL,
            format!("create veth {host}"),
        )
        .ctx(format!("peer {peer} in {}", peer_ns.label()));
        // The fd inside the message must stay open until the kernel has
        // read it: `peer_ns` is borrowed for the whole call.
        self.0.exec(req)
    }
}
