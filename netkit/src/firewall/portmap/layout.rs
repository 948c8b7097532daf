//! The names of upstream portmap's nftables table and chains.

pub(super) const TABLE: &str = "cni_hostport";
pub(super) const HOSTPORTS: &str = "hostports";
pub(super) const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
pub(super) const HOSTPORTS_ALL: &str = "hostports_all";
pub(super) const MASQUERADING: &str = "masquerading";
/// Chains whose rules carry a container's comment.
pub(super) const OWNED_CHAINS: [&str; 3] = [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING];
