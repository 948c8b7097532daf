//! IPAM failures and their CNI codes.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Why an IPAM operation failed. Messages of the allocation errors are
/// host-local's, prefix included (its `cmdAdd` adds "failed to allocate for
/// range N: "), so existing runbooks and searches still match.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error(
        "failed to allocate for range {range}: no IP addresses available in range set: {ranges}"
    )]
    Exhausted { range: usize, ranges: String },
    #[error("failed to allocate for range {range}: {ip} has been allocated to {container_id}, duplicate allocation is not allowed")]
    AlreadyAllocated {
        range: usize,
        ip: IpAddr,
        container_id: String,
    },
    #[error("IPAM store {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("invalid IPAM configuration: {0}")]
    Invalid(String),
}

impl IpamError {
    pub(crate) fn io(path: &Path, source: io::Error) -> IpamError {
        IpamError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The CNI error code (SPEC.md "Error codes").
    pub fn cni_code(&self) -> u32 {
        use cni::error::codes;
        match self {
            // 11 "try again later": the pool refills as soon as a DEL or a
            // GC releases an attachment, and the runtime retries the
            // sandbox anyway. It is neither a config error (7) nor an I/O
            // failure (5); host-local says 999 only because it has no code.
            IpamError::Exhausted { .. } => codes::TRY_AGAIN,
            // 4: the runtime broke the contract carried by CNI_CONTAINERID
            // and CNI_IFNAME (SPEC.md: no second ADD for the same
            // attachment without a DEL in between).
            IpamError::AlreadyAllocated { .. } => codes::INVALID_ENV,
            IpamError::Io { .. } => codes::IO,
            IpamError::Invalid(_) => codes::INVALID_CONFIG,
        }
    }
}
