//! netkit: the only part of netboot that touches the kernel.
//!
//! - [`Netns`]: namespace handles; every `setns` happens on a short-lived
//!   dedicated thread ([`Netns::run`]), never on the caller's;
//!   [`create_named`] / [`delete_named`] are `ip netns add` / `del`.
//! - [`Netlink`]: a synchronous rtnetlink socket bound to one namespace, with
//!   one method per verb for links ([`Link`]: veth, bridge, vxlan, ifb),
//!   addresses ([`Addr`]), routes ([`RouteSpec`], [`RouteEntry`]) and
//!   neighbours ([`Neigh`]: ARP + FDB), each documented with the `ip`
//!   command it equals. Every request is ACKed and errors carry the errno
//!   and the object they were about.
//! - [`LinkMonitor`]: link, address, route and neighbour notifications
//!   (`ip monitor`).
//! - [`Batch`]: several neighbour/FDB/route changes in one round trip.
//! - [`sysctl`]: per-namespace `/proc/sys/net` access.
//! - [`tc`]: traffic control for bandwidth shaping: the token bucket
//!   filter (with the reference bandwidth plugin's arithmetic), the ingress
//!   qdisc and a redirect filter; [`ifb_name`] names the ifb devices as the
//!   reference plugin does.
//! - [`host_veth_name`]: deterministic host-side veth names.
//! - [`firewall`]: hostPort DNAT in upstream portmap's nftables layout and
//!   pod masquerade, each operation one nf_tables transaction (`nft -f -`,
//!   or a netlink batch for the per-pod port mappings).
//! - [`conntrack`]: list and delete connection-tracking entries over
//!   ctnetlink (the stale UDP flows toward a re-used hostPort).
//! - [`tx_checksum`] / [`set_tx_checksum`]: transmit checksum offload over
//!   ethtool's generic netlink family (`ethtool -K DEV tx off`), the vxlan
//!   workaround flannel users apply by hand.
//!
//! Every netlink socket (rtnetlink, nf_tables, ctnetlink, generic netlink)
//! goes through one send/receive loop.
//!
//! No `unsafe`: the workspace denies `unsafe_code` (`[workspace.lints]`),
//! netkit included. `nix` and `netlink-sys` wrap every system call netkit
//! makes, and [`firewall`] runs `nft` without a shell.

mod ack;
mod addr;
mod batch;
mod conn;
pub mod conntrack;
mod error;
mod ethtool;
mod family;
pub mod firewall;
mod genl;
mod link;
mod mac;
mod monitor;
mod named;
mod names;
mod neigh;
mod netns;
mod route;
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
pub use named::{create_named, delete_named, named_path, NETNS_RUN_DIR};
pub use names::{host_veth_name, ifb_name, HOST_VETH_PREFIX};
pub use neigh::Neigh;
pub use netns::Netns;
pub use route::{Family, RouteEntry, RouteLookup, RouteSpec, Scope};
pub use socket::Netlink;
