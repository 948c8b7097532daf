//! containerd over its gRPC API: one method per call podrun makes, every
//! request tagged with podrun's containerd namespace (and, on a leased
//! handle, the lease: see [`Ctrd::leased`]). A missing object is
//! `Ok(None)`/`Ok(false)` wherever cleanup must be idempotent. Snapshots
//! are in `ctrd/snapshots.rs`, the image calls (content, diff, image
//! records) in `ctrd/content.rs`, leases in `ctrd/leases.rs`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteProcessRequest, DeleteTaskRequest, ExecProcessRequest, GetContainerRequest,
    GetImageRequest, GetRequest, KillRequest, ReadContentRequest, StartRequest, WaitRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::v1::Process;
use containerd_client::types::Mount;
use prost_types::Any;

mod content;
mod leases;
mod snapshots;

pub use content::{hex_digest, BlobWrite};
pub use leases::Lease;

/// OCI runtime spec type URLs, as containerd's typeurl registers them.
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// The runc shim v2, the runtime ctr and CRI use by default.
pub const RUNTIME: &str = "io.containerd.runc.v2";

/// A connection plus the namespace every request is made in.
#[derive(Clone)]
pub struct Ctrd {
    ch: Channel,
    ns: String,
    /// The lease every request is made under (`containerd-lease`), if any.
    lease: Option<String>,
    /// Snapshotter for app container rootfs.
    pub snapshotter: String,
}

/// The state of a task's init process (or of an exec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskState {
    pub pid: u32,
    pub running: bool,
    pub exit_status: u32,
    /// When it exited (Unix milliseconds), once it has.
    pub exited_at: Option<u64>,
}

/// Unix milliseconds of a protobuf timestamp; `None` for containerd's
/// zero time (a process that has not exited).
fn unix_ms(t: Option<prost_types::Timestamp>) -> Option<u64> {
    let t = t?;
    let ms = i128::from(t.seconds) * 1000 + i128::from(t.nanos) / 1_000_000;
    u64::try_from(ms).ok().filter(|ms| *ms > 0)
}

fn missing(s: &Status) -> bool {
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

fn ctx(what: impl std::fmt::Display) -> impl FnOnce(Status) -> anyhow::Error {
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

    /// The same connection, every request made under `lease`: what the Go
    /// client's `leases.WithLease(ctx, id)` does. containerd adds what such
    /// a request creates (content, ingests, snapshots) to the lease, so its
    /// garbage collector keeps them until the lease is deleted or expires.
    pub fn leased(&self, lease: &Lease) -> Ctrd {
        Ctrd {
            lease: Some(lease.id.clone()),
            ..self.clone()
        }
    }

    /// A request in podrun's namespace, under the handle's lease if any:
    /// the one place request metadata is set.
    fn req<T>(&self, t: T) -> Request<T> {
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

    /// The target descriptor `(media type, digest)` of image `name`.
    pub async fn image_target(&self, name: &str) -> Result<Option<(String, String)>> {
        let mut c = ImagesClient::new(self.ch.clone());
        match c.get(self.req(GetImageRequest { name: name.into() })).await {
            Ok(r) => {
                let t = r
                    .into_inner()
                    .image
                    .and_then(|i| i.target)
                    .context("image without target")?;
                Ok(Some((t.media_type, t.digest)))
            }
            Err(s) if missing(&s) => Ok(None),
            Err(s) => Err(ctx(format!("get image {name}"))(s)),
        }
    }

    /// A whole blob from the content store.
    pub async fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let mut c = ContentClient::new(self.ch.clone());
        let mut stream = c
            .read(self.req(ReadContentRequest {
                digest: digest.into(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(ctx(format!("read blob {digest}")))?
            .into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(ctx(format!("read blob {digest}")))?
        {
            out.extend_from_slice(&chunk.data);
        }
        Ok(out)
    }

    /// A container record. `snapshot_key` empty means a rootfs podrun
    /// mounts itself (the pause container).
    pub async fn create_container(
        &self,
        id: &str,
        image: &str,
        spec: &serde_json::Value,
        snapshot_key: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let mut c = ContainersClient::new(self.ch.clone());
        let container = Container {
            id: id.into(),
            labels,
            image: image.into(),
            runtime: Some(Runtime {
                name: RUNTIME.into(),
                options: None,
            }),
            spec: Some(Any {
                type_url: SPEC_TYPE.into(),
                value: serde_json::to_vec(spec)?,
            }),
            snapshotter: if snapshot_key.is_empty() {
                String::new()
            } else {
                self.snapshotter.clone()
            },
            snapshot_key: snapshot_key.into(),
            ..Default::default()
        };
        c.create(self.req(CreateContainerRequest {
            container: Some(container),
        }))
        .await
        .map_err(ctx(format!("create container {id}")))?;
        Ok(())
    }

    pub async fn container_exists(&self, id: &str) -> Result<bool> {
        let mut c = ContainersClient::new(self.ch.clone());
        match c.get(self.req(GetContainerRequest { id: id.into() })).await {
            Ok(_) => Ok(true),
            Err(s) if missing(&s) => Ok(false),
            Err(s) => Err(ctx(format!("get container {id}"))(s)),
        }
    }

    /// The OCI spec stored with container `id`.
    pub async fn container_spec(&self, id: &str) -> Result<serde_json::Value> {
        let mut c = ContainersClient::new(self.ch.clone());
        let r = c
            .get(self.req(GetContainerRequest { id: id.into() }))
            .await
            .map_err(ctx(format!("get container {id}")))?;
        let spec = r
            .into_inner()
            .container
            .and_then(|c| c.spec)
            .context("container has no spec")?;
        Ok(serde_json::from_slice(&spec.value)?)
    }

    pub async fn delete_container(&self, id: &str) -> Result<()> {
        let mut c = ContainersClient::new(self.ch.clone());
        match c
            .delete(self.req(DeleteContainerRequest { id: id.into() }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if missing(&s) => Ok(()),
            Err(s) => Err(ctx(format!("delete container {id}"))(s)),
        }
    }

    /// Creates the task (runc create) with its output going to `io` (a
    /// `binary://` logger URI, see logdriver); returns its init pid.
    pub async fn create_task(&self, id: &str, rootfs: Vec<Mount>, io: &str) -> Result<u32> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = CreateTaskRequest {
            container_id: id.into(),
            rootfs,
            stdout: io.into(),
            stderr: io.into(),
            ..Default::default()
        };
        Ok(c.create(self.req(r))
            .await
            .map_err(ctx(format!("create task {id}")))?
            .into_inner()
            .pid)
    }

    pub async fn start(&self, id: &str, exec_id: &str) -> Result<u32> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = StartRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        Ok(c.start(self.req(r))
            .await
            .map_err(ctx(format!("start {id} {exec_id}")))?
            .into_inner()
            .pid)
    }

    /// The task's (or exec's) process state, `None` without a task.
    pub async fn task_state(&self, id: &str, exec_id: &str) -> Result<Option<TaskState>> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = GetRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        match c.get(self.req(r)).await {
            Ok(r) => Ok(r.into_inner().process.map(|p: Process| TaskState {
                pid: p.pid,
                running: p.status != containerd_client::types::v1::Status::Stopped as i32,
                exit_status: p.exit_status,
                exited_at: unix_ms(p.exited_at),
            })),
            Err(s) if missing(&s) => Ok(None),
            Err(s) => Err(ctx(format!("get task {id}"))(s)),
        }
    }

    /// Waits until the task's init process exits: its exit status and
    /// when (Unix milliseconds). Returns at once for a stopped task.
    pub async fn wait(&self, id: &str) -> Result<(u32, Option<u64>)> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = WaitRequest {
            container_id: id.into(),
            exec_id: String::new(),
        };
        let r = c
            .wait(self.req(r))
            .await
            .map_err(ctx(format!("wait for task {id}")))?
            .into_inner();
        Ok((r.exit_status, unix_ms(r.exited_at)))
    }

    /// Signals the task (every process in it with `all`). A task that is
    /// gone or already stopped is fine.
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = KillRequest {
            container_id: id.into(),
            exec_id: String::new(),
            signal: signal as u32,
            all,
        };
        match c.kill(self.req(r)).await {
            Ok(_) => Ok(()),
            Err(s) if missing(&s) || s.code() == Code::FailedPrecondition => Ok(()),
            // runc reports a dead init as "process already finished".
            Err(s) if s.message().contains("finished") => Ok(()),
            Err(s) => Err(ctx(format!("kill task {id}"))(s)),
        }
    }

    /// Deletes a stopped task; returns its exit status if it had one.
    pub async fn delete_task(&self, id: &str) -> Result<Option<u32>> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = DeleteTaskRequest {
            container_id: id.into(),
        };
        match c.delete(self.req(r)).await {
            Ok(r) => Ok(Some(r.into_inner().exit_status)),
            Err(s) if missing(&s) => Ok(None),
            Err(s) => Err(ctx(format!("delete task {id}"))(s)),
        }
    }

    /// Adds an exec process (not started) to a running task.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &serde_json::Value,
        io: &str,
    ) -> Result<()> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = ExecProcessRequest {
            container_id: id.into(),
            stdin: String::new(),
            stdout: io.into(),
            stderr: io.into(),
            terminal: false,
            spec: Some(Any {
                type_url: PROCESS_TYPE.into(),
                value: serde_json::to_vec(process)?,
            }),
            exec_id: exec_id.into(),
        };
        c.exec(self.req(r))
            .await
            .map_err(ctx(format!("exec in {id}")))?;
        Ok(())
    }

    pub async fn delete_process(&self, id: &str, exec_id: &str) -> Result<()> {
        let mut c = TasksClient::new(self.ch.clone());
        let r = DeleteProcessRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        };
        match c.delete_process(self.req(r)).await {
            Ok(_) => Ok(()),
            Err(s) if missing(&s) => Ok(()),
            Err(s) => Err(ctx(format!("delete exec {exec_id} in {id}"))(s)),
        }
    }
}
