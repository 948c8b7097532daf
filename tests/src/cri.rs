//! The kubelet path: containerd's CRI plugin (Debian containerd 1.6)
//! running inside a node netns with a conflist of netboot-cni, driven over
//! the CRI v1 gRPC API by a Rust client, as kubelet drives it.
//!
//! - [`daemon`]: the CRI containerd (config, pause image, cleanup);
//! - [`client`]: the blocking CRI client;
//! - [`node`]: a node netns with its CNI dirs and containerd, and the
//!   sandbox configs;
//! - [`traffic`]: servers in a pod's netns and clients elsewhere;
//! - [`checks`]: what a running pod has on the node and what DEL removes;
//! - [`round_trip`]: the per-mode round trips the `cri_*` tests run.

pub mod checks;
pub mod client;
pub mod daemon;
pub mod node;
pub mod round_trip;
pub mod traffic;
