//! netkit: the only part of netboot that touches the kernel.
//!
//! - [`Netns`]: namespace handles; every `setns` happens on a short-lived
//!   dedicated thread ([`Netns::run`]), never on the caller's;
//!   [`create_named`] / [`delete_named`] are `ip netns add` / `del`.
//! - [`Netlink`]: a synchronous rtnetlink socket bound to one namespace.
//!   Its verbs sit behind one borrowed handle per kernel object (as in the
//!   rtnetlink crate), each verb documented with the `ip` command it
//!   equals; every request is ACKed and errors carry the errno and the
//!   object they were about:
//!
//!   ```text
//!   Netlink
//!   ├── link()  -> LinkHandle     add_veth add_bridge add_vxlan add_ifb vxlan_info
//!   │                             by_name by_index list set_up set_mtu set_mac
//!   │                             set_master set_nomaster[_by_name] set_hairpin
//!   │                             del del_by_name
//!   ├── addr()  -> AddrHandle     list add add_nodad del
//!   ├── route() -> RouteHandle    list get fib_match add replace del
//!   ├── neigh() -> NeighHandle    list get add del (ARP/NDP)
//!   │                             list_fdb get_fdb add_fdb del_fdb (FDB)
//!   ├── tc()    -> tc::TrafficHandle  qdiscs add_ingress add_tbf add_redirect
//!   └── apply(Batch)              neighbour/FDB/route changes in one round trip
//!   ```
//!
//!   `nl.link().set_up(i)`, `nl.route().add(&spec)`. What they return:
//!   [`Link`], [`Addr`], [`RouteEntry`] / [`RouteLookup`], [`Neigh`].
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
//!   or a netlink batch for the per-pod port mappings). Free functions,
//!   not a `firewall()` handle on [`Netlink`]: they never use the rtnetlink
//!   socket (each opens its own nf_tables socket or runs `nft`, in the
//!   calling thread's namespace), so such a handle would only borrow a
//!   socket it ignores.
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

pub use addr::{Addr, AddrHandle};
pub use batch::{first_error, Batch};
pub use error::{Error, Result};
pub use ethtool::{set_tx_checksum, tx_checksum};
pub use link::vxlan::{VxlanInfo, VxlanParams, VXLAN_DEFAULT_PORT};
pub use link::{Link, LinkHandle};
pub use mac::{fmt_mac, parse_mac};
pub use monitor::{LinkEvent, LinkMonitor};
pub use named::{create_named, delete_named, named_path, NETNS_RUN_DIR};
pub use names::{host_veth_name, ifb_name, HOST_VETH_PREFIX};
pub use neigh::{Neigh, NeighHandle};
pub use netns::Netns;
pub use route::{Family, RouteEntry, RouteHandle, RouteLookup, RouteSpec, Scope};
pub use socket::Netlink;
