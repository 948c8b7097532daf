//! The connection to containerd: the handle every call goes through, the
//! one place request metadata (namespace, lease) is set, and the error a
//! failed call becomes.

use std::path::Path;

use anyhow::{Context, Result};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};

/// A connection plus the namespace every request is made in.
#[derive(Clone)]
pub struct Ctrd {
    pub(super) ch: Channel,
    pub(super) ns: String,
    /// The lease every request is made under (`containerd-lease`), if any.
    pub(super) lease: Option<String>,
    /// Snapshotter for app container rootfs.
    pub snapshotter: String,
}

pub(super) fn missing(s: &Status) -> bool {
    s.code() == Code::NotFound
}

/// A failed containerd call: what podrun asked for, and the gRPC status
/// (kept, so that teardown can tell transient failures from real ones).
#[derive(Debug, thiserror::Error)]
#[error("containerd: {what}: {}", describe(*.code, .msg))]
pub struct CallError {
    pub what: String,
    pub code: Code,
    pub msg: String,
}

fn describe(code: Code, msg: &str) -> String {
    match code {
        // tonic's "transport error" alone does not say what happened.
        Code::Unavailable => format!("containerd is unavailable (stopped or restarting): {msg}"),
        _ => msg.to_string(),
    }
}

impl CallError {
    /// Worth retrying: containerd restarting (Unavailable), a shim that
    /// went away under a call (`ttrpc: closed`), a task not stopped yet
    /// (FailedPrecondition on delete right after its exit).
    pub fn transient(&self) -> bool {
        matches!(self.code, Code::Unavailable | Code::FailedPrecondition)
            || self.msg.contains("ttrpc: closed")
    }
}

/// Whether `e` is (or wraps) a transient [`CallError`].
pub fn transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<CallError>()
            .is_some_and(CallError::transient)
    })
}

pub(super) fn ctx(what: impl std::fmt::Display) -> impl FnOnce(Status) -> anyhow::Error {
    move |s| {
        anyhow::Error::new(CallError {
            what: what.to_string(),
            code: s.code(),
            msg: s.message().to_string(),
        })
    }
}

impl Ctrd {
    pub async fn connect(address: &Path, ns: &str, snapshotter: &str) -> Result<Ctrd> {
        let ch = containerd_client::connect(address).await.with_context(|| {
            format!(
                "containerd is not reachable at {} (is it running? see --address, CONTAINERD_ADDRESS)",
                address.display()
            )
        })?;
        Ok(Ctrd {
            ch,
            ns: ns.to_string(),
            lease: None,
            snapshotter: snapshotter.to_string(),
        })
    }

    /// A request in podrun's namespace, under the handle's lease if any:
    /// the one place request metadata is set.
    pub(super) fn req<T>(&self, t: T) -> Request<T> {
        let mut r = Request::new(t);
        // The namespace was validated by clap/containerd; an unparsable
        // value would only fail here, loudly.
        if let Ok(v) = self.ns.parse() {
            r.metadata_mut().insert("containerd-namespace", v);
        }
        // containerd's leases/grpc.go header; our lease IDs are ASCII.
        if let Some(v) = self.lease.as_ref().and_then(|l| l.parse().ok()) {
            r.metadata_mut().insert("containerd-lease", v);
        }
        r
    }
}
