//! Whether port mappings reach the kernel over netlink or through `nft`.

/// Which way [`add_port_mappings`](super::add_port_mappings),
/// [`del_port_mappings`](super::del_port_mappings) and
/// [`list_port_mapping_owners`](super::list_port_mapping_owners) reach
/// the kernel. Both write the very same objects (see the `portmap` module
/// docs); CHECK always reads through `nft -j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftPath {
    /// nf_tables netlink, one batch per change (the default). ADD falls back
    /// to `nft -f -` when a table or chain is missing (it creates them), and
    /// everything falls back to `nft` when no `NETLINK_NETFILTER` socket can
    /// be opened.
    Netlink,
    /// The `nft` binary for everything.
    Cli,
}

impl NftPath {
    /// Set to `1` to force [`NftPath::Cli`].
    pub const ENV: &'static str = "NETBOOT_NFT_CLI";

    /// [`NftPath::Cli`] when `NETBOOT_NFT_CLI=1`, else [`NftPath::Netlink`].
    pub fn from_env() -> NftPath {
        match std::env::var_os(Self::ENV) {
            Some(v) if v == "1" => NftPath::Cli,
            _ => NftPath::Netlink,
        }
    }
}
