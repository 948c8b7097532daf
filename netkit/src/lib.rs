//! netkit: the only part of netboot that touches the kernel.
//!
//! - [`Netns`]: namespace handles; every `setns` happens on a short-lived
//!   dedicated thread ([`Netns::run`]), never on the caller's.
//! - [`Netlink`]: a synchronous rtnetlink socket bound to one namespace, with
//!   one function per verb in [`link`] (veth, bridge, vxlan, ifb), [`addr`],
//!   [`route`] and [`neigh`] (ARP + FDB), each documented with the `ip`
//!   command it equals. Every request is ACKed and errors carry the errno
//!   and the object they were about.
//! - [`LinkMonitor`]: link notifications (`ip monitor link`).
//! - [`Batch`]: several neighbour/FDB/route changes in one round trip.
//! - [`sysctl`]: per-namespace `/proc/sys/net` access.
//! - [`tc`]: traffic control for bandwidth shaping: the token bucket
//!   filter (with the reference bandwidth plugin's arithmetic), the ingress
//!   qdisc and a redirect filter; ifb devices live in [`link`], and
//!   [`ifb_name`] names them as the reference plugin does.
//! - [`host_veth_name`]: deterministic host-side veth names.
//! - [`firewall`]: hostPort DNAT in upstream portmap's nftables layout and
//!   pod masquerade, each operation one nf_tables transaction (`nft -f -`,
//!   or a netlink batch for the per-pod port mappings).
//! - [`conntrack`]: list and delete connection-tracking entries over
//!   ctnetlink (the stale UDP flows toward a re-used hostPort).
//! - [`ethtool`]: offload features over ethtool's generic netlink family;
//!   transmit checksum offload on or off (`ethtool -K DEV tx off`), the
//!   vxlan workaround flannel users apply by hand.
//!
//! `unsafe` is allowed nowhere in the workspace except, narrowly, here; at
//! present netkit needs none of its own: `nix` and `netlink-sys` wrap every
//! system call it makes, and [`firewall`] runs `nft` without a shell.

mod ack;
pub mod addr;
mod batch;
mod conn;
pub mod conntrack;
pub mod error;
pub mod ethtool;
mod family;
pub mod firewall;
mod genl;
pub mod link;
mod mac;
pub mod monitor;
mod named;
pub mod names;
pub mod neigh;
pub mod netns;
pub mod route;
mod socket;
pub mod sysctl;
pub mod tc;

pub use addr::Addr;
pub use batch::{first_error, Batch};
pub use error::{Error, Result};
pub use ethtool::{set_tx_checksum, tx_checksum};
pub use link::vxlan::{VxlanInfo, VxlanParams, VXLAN_DEFAULT_PORT};
pub use link::Link;
pub use mac::{fmt_mac, parse_mac};
pub use monitor::{LinkEvent, LinkMonitor};
pub use named::{create_named, delete_named};
pub use names::{host_veth_name, ifb_name, HOST_VETH_PREFIX, IFB_PREFIX};
pub use neigh::Neigh;
pub use netns::Netns;
pub use route::{Family, RouteEntry, RouteLookup, RouteSpec, Scope};
pub use socket::Netlink;
