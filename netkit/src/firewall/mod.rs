//! The node firewall: hostPort DNAT (native mode's maps, and upstream
//! portmap's layout) and masquerade.
//!
//! # Backend: nftables, one transaction per operation
//!
//! - **Why nftables.** The reference chain spawns ~37 `iptables` processes
//!   per ADD and each one rewrites the whole iptables-nft table, so ADD grows
//!   with the number of pods (issue #3: ~50 ms per 100 pods). An nft script is
//!   one netlink batch that the kernel commits atomically (all or nothing, so
//!   a crash mid-ADD leaves no half rule set) and that only touches the
//!   objects it names. Debian's `iptables` is iptables-nft anyway, so the
//!   kernel side (nf_tables) is the same either way.
//! - **Mostly the `nft` binary.** The binary is what upstream portmap's
//!   nftables backend (knftables) drives too, it parses and validates the
//!   rule language for us, and it is the reference for what our rules look
//!   like. One exec costs 2-5 ms, which only matters per pod (next point
//!   but one). Every value we interpolate is validated first (addresses parsed
//!   as [`IpAddr`]/[`IpNet`], ports numeric, comments restricted to
//!   `[A-Za-z0-9_.:@-]`): the script has no way to carry a second command.
//! - **No shell.** The script goes on `nft`'s stdin; the argv is fixed.
//! - **Hot path over netlink.** Native mode's hostPorts ([`add_hostports`])
//!   are nf_tables netlink only (`nftnl`): the layout once per node, then
//!   map elements per pod, no exec at all. In portmap's layout the per-pod
//!   operations (ADD's rules, DEL's dump + delete, GC's owner listing)
//!   skip the exec too: one NEWRULE batch per ADD, one GETRULE dump per
//!   family plus one DELRULE batch per DEL. The messages are encoded
//!   exactly as `nft` encodes the same objects, so the rule set is the same
//!   object for object whichever path wrote it. portmap's tables and
//!   chains (once per node), its CHECK, masquerade and everything else stay
//!   on `nft`. `NETBOOT_NFT_CLI=1` in the environment forces `nft` for
//!   portmap's layout (read at each call); so does a kernel without
//!   `NETLINK_NETFILTER`.
//! - **Namespaces.** Every function acts on the network namespace of the
//!   calling thread (the child `nft` inherits it). The plugin already runs in
//!   the node netns; to act on another namespace without `nsenter`, call
//!   these inside [`crate::Netns::run`].
//! - **When `nft` is missing** the write operations fail with
//!   [`Error::ToolMissing`](crate::Error::ToolMissing) naming `nft` and the
//!   package to install. There is deliberately no iptables-restore fallback:
//!   it would be a second rule layout (portmap's iptables chains) that
//!   upstream's nftables backend cannot clean up, and every node we support
//!   (Debian 12+) ships nftables. Read/delete operations treat a missing
//!   `nft` as "nothing installed" (nothing could have been), so DEL stays
//!   idempotent.
//!
//! # Layouts
//!
//! - `hostports` ([`add_hostports`] ...): native mode's hostPorts, map
//!   elements in `inet netboot` (one DNAT rule per family, protocol and
//!   hostIP variant, written once per node; a pod is elements only),
//!   entirely over netlink.
//! - `portmap` ([`add_port_mappings`] ...): exactly upstream portmap's
//!   nftables layout (tables `ip`/`ip6 cni_hostport`), so either
//!   implementation deletes the other's rules: bridge mode's chained
//!   portmap, and native attachments made by netboot before the map layout.
//! - `masq` ([`ensure_node_masquerade`]): a per-node rule set in
//!   `inet netboot` (one rule per pod subnet instead of one per pod).
//! - `legacy` ([`cleanup_legacy_portmap`]): removal of the reference
//!   portmap's *iptables* chains (`CNI-DN-<hash>` in `nat`), for nodes that
//!   switch to native mode.
//! - `iptables`: the one reader and writer of iptables rules (legacy
//!   cleanup, the FORWARD accepts) and the read-only queries of CHECK and
//!   doctor ([`portmap_dnat_present`], [`flanneld_masquerade_present`]).
//!
//! [`IpAddr`]: std::net::IpAddr
//! [`IpNet`]: ipnet::IpNet

mod exec;
mod forward;
pub(crate) mod hash;
mod hostports;
mod iptables;
mod legacy;
mod mapping;
mod masq;
mod nft;
mod nftnl;
mod portmap;

pub use exec::spawned_on_this_thread as tool_execs_on_this_thread;
pub use forward::{
    ensure_forward_accept, ensure_iptables_forward_accept, remove_forward_accept,
    remove_iptables_forward_accept, IptForward, IPT_CHAIN,
};
pub use hostports::{
    add_hostports, check_hostports, del_hostports, hostport_owner, list_hostport_elements,
    parse_hostport_owner, resolve_hostports, sweep_hostports, HostportElement, Resolved,
};
pub use iptables::{flanneld_masquerade_present, portmap_dnat_present};
pub use legacy::{
    bridge_masq_chain, cleanup_bridge_masquerade, cleanup_legacy_portmap, legacy_dnat_chain,
};
pub use mapping::{needs_route_localnet, PortMapping, PortmapSpec, Proto};
pub use masq::{ensure_node_masquerade, node_masquerade_present, remove_node_masquerade};
pub use portmap::{
    add_port_mappings, add_port_mappings_tracked, check_port_mappings, del_port_mappings,
    del_port_mappings_in, del_port_rules, hostport_hash, list_port_mapping_owners, RuleRef,
};
