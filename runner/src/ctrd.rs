//! containerd over its gRPC API: one method per call podrun makes, every
//! request tagged with podrun's containerd namespace (and, on a leased
//! handle, the lease: see [`Ctrd::leased`]). A missing object is
//! `Ok(None)`/`Ok(false)` wherever cleanup must be idempotent. Snapshots
//! are in `ctrd/snapshots.rs`, the image calls (content, diff, image
//! records) in `ctrd/content.rs`, leases in `ctrd/leases.rs`, the
//! connection and its errors in `ctrd/client.rs`; containers and tasks here.

use std::collections::HashMap;

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
use containerd_client::tonic::Code;
use containerd_client::types::v1::Process;
use containerd_client::types::Mount;
use prost_types::Any;

mod client;
mod content;
mod leases;
mod snapshots;

use client::{ctx, missing};
pub use client::{transient, Ctrd};
pub use content::{hex_digest, BlobWrite};
pub use leases::Lease;

/// OCI runtime spec type URLs, as containerd's typeurl registers them.
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// The runc shim v2, the runtime ctr and CRI use by default.
pub const RUNTIME: &str = "io.containerd.runc.v2";

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

impl Ctrd {
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
