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
mod plan;
mod write;

pub use check::{check_hostports, list_hostport_elements, sweep_hostports, HostportElement};
pub use write::{add_hostports, del_hostports, resolve_hostports, Resolved};

use super::mapping::PortmapSpec;
use super::nft::check_ident;
use super::nftnl::{SetRef, NFPROTO_INET};
use crate::error::Result;

/// The comment that marks `network`'s attachment `container_id`/`ifname`
/// as the owner of an element.
pub fn hostport_owner(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}/{container_id}/{ifname}")
}

/// `(network, containerID, ifname)` of an owner comment, if it is one.
pub fn parse_hostport_owner(owner: &str) -> Option<(&str, &str, &str)> {
    let mut it = owner.split('/');
    let (n, c, i) = (it.next()?, it.next()?, it.next()?);
    let ok = |s: &str| check_ident("", "", s).is_ok();
    (it.next().is_none() && ok(n) && ok(c) && ok(i)).then_some((n, c, i))
}

/// The validated owner comment of `spec`'s attachment.
fn owner_of(spec: &PortmapSpec, ctx: &str) -> Result<String> {
    check_ident(ctx, "network name", spec.network)?;
    check_ident(ctx, "container ID", spec.container_id)?;
    check_ident(ctx, "interface name", spec.ifname)?;
    Ok(hostport_owner(spec.network, spec.container_id, spec.ifname))
}

/// `inet netboot <set>`.
fn set_ref(set: &str) -> SetRef<'_> {
    SetRef {
        family: NFPROTO_INET,
        table: layout::TABLE,
        set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_rejects_other_comments() {
        let o = hostport_owner("cbr0", "abc-1", "eth0");
        assert_eq!(o, "cbr0/abc-1/eth0");
        assert_eq!(parse_hostport_owner(&o), Some(("cbr0", "abc-1", "eth0")));
        for bad in ["abc", "a/b", "a/b/c/d", "a//c", "a/b c/d"] {
            assert_eq!(parse_hostport_owner(bad), None, "{bad}");
        }
    }
}
