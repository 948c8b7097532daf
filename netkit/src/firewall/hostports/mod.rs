//! hostPort DNAT of native mode as nftables map elements, in netboot's own
//! table:
//!
//! ```text
//! table inet netboot {
//!   map hostip_hostports_ip_tcp { type ipv4_addr . inet_service : ipv4_addr . inet_service }
//!   map hostports_ip_tcp        { type inet_service : ipv4_addr . inet_service }
//!   ...                         # udp, sctp; ip6 alike
//!   set hostports_masq_ip       { type ipv4_addr . ipv4_addr }   # and ip6
//!   chain hostports {           # per family and protocol: hostIP first, then any address
//!     meta nfproto ipv4 dnat ip to ip daddr . tcp dport map @hostip_hostports_ip_tcp
//!     meta nfproto ipv4 dnat ip to tcp dport map @hostports_ip_tcp
//!     ...
//!   }
//!   chain hostports_prerouting  { type nat hook prerouting priority -100; fib daddr type local jump hostports }
//!   chain hostports_output      { type nat hook output priority -100; fib daddr type local jump hostports }
//!   chain hostports_postrouting { type nat hook postrouting priority 100;
//!     ip saddr . ip daddr @hostports_masq_ip masquerade      # pod . pod, 127.0.0.1 . pod
//!     ip6 saddr . ip6 daddr @hostports_masq_ip6 masquerade }
//! }
//! ```
//!
//! **Why maps.** Upstream portmap's layout ([`super::portmap`]) adds rules
//! per pod, and a transaction that adds a rule with a nat expression makes
//! the kernel validate the whole table (`nft_table_validate`): ADD and DEL
//! cost grows with every mapping on the node. Here a pod's ADD and DEL are
//! element changes only, which the kernel does not validate against the
//! table, and a packet's lookup is one hash probe whatever the number of
//! pods. The rules are written once per node (and after a reboot or a
//! deleted table), in the transaction that finds the maps missing.
//!
//! **Owners.** Every element carries the comment `<network>/<containerID>/
//! <ifname>` ([`hostport_owner`]). DEL reads each of its keys back (one
//! lookup per key, never a listing) and deletes only the elements that
//! still carry its owner: a key a later pod took over is left alone. GC
//! and doctor list the sets and read the owners.
//!
//! **Conflicts.** A key is in a map at most once. ADD refuses a key that
//! another owner holds ([`add_hostports`], an `Exists` error naming it);
//! [`resolve_hostports`] then leaves each such key to its holder or takes
//! it over, as the caller decides per owner, for callers that serialize it
//! with DEL (a DEL's read-then-delete must not interleave with a
//! take-over).
//!
//! Everything goes over `NETLINK_NETFILTER` (`firewall::nftnl`): no `nft`
//! binary is needed. Every function acts on the network namespace of the
//! calling thread.

mod check;
mod layout;
mod owner;
mod plan;
mod write;

pub use check::{check_hostports, list_hostport_elements, sweep_hostports, HostportElement};
pub use owner::{hostport_owner, parse_hostport_owner};
pub use write::{add_hostports, del_hostports, resolve_hostports, Resolved};
