//! netkit's error type.
//!
//! Every message names the operation and the kernel object it was applied
//! to, e.g. `create veth vethab12 (peer eth0 in /run/netns/x): File exists
//! (os error 17)`, so a binary can print it as-is.

use std::io;

/// Result alias used throughout netkit.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything netkit can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A named object (netns path, sysctl key, ...) does not exist.
    #[error("{what}: not found")]
    NotFound { what: String },

    /// A named object we were asked to create already exists.
    #[error("{what}: already exists")]
    Exists { what: String },

    /// The kernel answered a netlink request with an error.
    /// `errno` is positive (`libc::EEXIST`, ...).
    #[error("{op}{}: {}", paren(ctx), io::Error::from_raw_os_error(*errno))]
    Netlink { op: String, errno: i32, ctx: String },

    /// A system call (open, setns, mount, read/write of /proc/sys ...) failed.
    #[error("{ctx}: {source}")]
    Io {
        ctx: String,
        #[source]
        source: io::Error,
    },

    /// The kernel sent something we could not decode, or an argument was
    /// rejected before anything was sent.
    #[error("{ctx}: {msg}")]
    Invalid { ctx: String, msg: String },

    /// An external tool (`nft`, `iptables-restore`) ran and failed.
    /// `cmd` is the command line as run (the script itself went on stdin),
    /// `status` its exit status, `stderr` what it printed, trimmed.
    #[error("{ctx}: `{cmd}` failed ({status}): {stderr}")]
    Command {
        ctx: String,
        cmd: String,
        status: String,
        stderr: String,
    },

    /// A tool netkit needs is not installed on this node.
    #[error("{ctx}: `{tool}` not found in PATH, /usr/sbin or /sbin ({hint})")]
    ToolMissing {
        ctx: String,
        tool: String,
        hint: String,
    },
}

fn paren(ctx: &str) -> String {
    if ctx.is_empty() {
        String::new()
    } else {
        format!(" ({ctx})")
    }
}

impl Error {
    pub(crate) fn io(ctx: impl Into<String>, source: io::Error) -> Self {
        let ctx = ctx.into();
        if source.kind() == io::ErrorKind::NotFound {
            return Error::NotFound { what: ctx };
        }
        Error::Io { ctx, source }
    }

    pub(crate) fn nix(ctx: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Self::io(ctx, io::Error::from_raw_os_error(errno as i32))
    }

    pub(crate) fn invalid(ctx: impl Into<String>, msg: impl Into<String>) -> Self {
        Error::Invalid {
            ctx: ctx.into(),
            msg: msg.into(),
        }
    }

    /// The positive errno behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            Error::NotFound { .. } => Some(libc::ENOENT),
            Error::Exists { .. } => Some(libc::EEXIST),
            Error::Invalid { .. } | Error::Command { .. } | Error::ToolMissing { .. } => None,
        }
    }

    /// True when the object addressed does not exist: a missing netns path,
    /// or a netlink "no such device / address / route / entry" answer
    /// (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::NotFound { .. } => true,
            Error::Netlink { errno, .. } => matches!(
                *errno,
                libc::ENODEV | libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL
            ),
            _ => false,
        }
    }

    /// True when the object we tried to create already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        match self {
            Error::Exists { .. } => true,
            other => other.errno() == Some(libc::EEXIST),
        }
    }
}
