//! hostPort → podIP:containerPort DNAT, in upstream portmap's nftables
//! layout (containernetworking/plugins `plugins/meta/portmap/
//! portmap_nftables.go`), object for object:
//!
//! ```text
//! table ip cni_hostport {                      # and ip6, same shape
//!   comment "CNI portmap plugin"
//!   chain hostports { <one rule per mapping, comment "<containerID>"> }
//!   chain hostip_hostports { }                 # legacy, kept for upgrades
//!   chain hostports_all { jump hostip_hostports; jump hostports }
//!   chain prerouting { type nat hook prerouting priority -100 (dstnat)
//!                      fib daddr type local jump hostports_all }
//!   chain output     { type nat hook output priority -100
//!                      fib daddr type local jump hostports_all }
//!   chain masquerading { type nat hook postrouting priority 100 (srcnat)
//!                      <hairpin/localhost masquerade, comment "<containerID>"> }
//! }
//! ```
//!
//! Priorities are written as numbers, as knftables does, because nft < 1.0.7
//! rejects the name `dstnat` in the output hook.
//!
//! **The rule comment is the bare container ID**, not a hash: that is what
//! upstream's nftables backend writes and matches on DEL, so it is what we
//! must write to interoperate (only its *iptables* backend hashes, into the
//! chain name `CNI-DN-<hash>`, see [`hostport_hash`]). Like upstream, the
//! network name is not part of the comment: DEL of a container removes its
//! mappings in every network. Rules per mapping, not map elements, for
//! upstream's reason: "delete 10.0.0.3 only if container A added it" needs
//! the per-rule owner tag when a new container reuses an IP.

mod add;
mod check;
mod del;
mod layout;
mod path;
mod shape;

pub use add::{add_port_mappings, add_port_mappings_tracked, RuleRef};
pub use check::{check_port_mappings, list_port_mapping_owners};
pub use del::{del_port_mappings, del_port_mappings_in, del_port_rules};

use super::hash::hash_with_prefix;

/// portmap's hash for (network, container): the first 21 hex digits of
/// `sha512(network + containerID)`, i.e. what follows `CNI-DN-` in the
/// reference portmap's *iptables* per-container chain name (`pkg/utils`
/// `MustFormatChainNameWithPrefix`, 28 characters in all; see
/// [`legacy_dnat_chain`](super::legacy_dnat_chain)). The nftables backend
/// does not hash: its comment is the container ID itself, which is what
/// [`list_port_mapping_owners`] returns.
pub fn hostport_hash(network: &str, container_id: &str) -> String {
    hash_with_prefix(21, "", &format!("{network}{container_id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_portmap_chain_name() {
        // python3: "CNI-DN-" + sha512(b"cbrtestcid1").hexdigest()[:21]
        assert_eq!(hostport_hash("cbrtest", "cid1"), "3559618f612683956afb4");
    }
}
