//! Pod state on disk, so that every podrun command (and `rm` after a
//! crash) knows what a pod owns.
//!
//! Layout under `--state-dir`:
//! `pods/<pod>/pod.json` (the record), `pods/<pod>/etc/` (resolv.conf,
//! hosts, hostname bind-mounted into the containers), `pods/<pod>/logs/`
//! (`<container>.stdout`, `<container>.stderr`), `pause/rootfs/`.
//!
//! The record is written *before* anything is created, with every name
//! podrun will use, so an interrupted `run` leaves enough to undo it.

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::PodSpec;

/// What podrun knows about one pod.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    /// The spec as run.
    pub spec: PodSpec,
    /// The conflist name used.
    pub network: String,
    /// The conflist as loaded at `run`, so that `stop`/`rm` can still
    /// DEL after the file was removed or changed (libcni's cache holds
    /// it too, but only once ADD has succeeded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_config: Option<serde_json::Value>,
    /// The pause container's ID: also the CNI container ID.
    pub sandbox_id: String,
    /// Named netns (`/run/netns/<name>`).
    pub netns_name: String,
    /// Container IDs, in spec order.
    pub container_ids: Vec<String>,
    /// Pod IP from the CNI result, once attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// `creating`, `running` or `stopped`.
    pub phase: String,
    /// Unix seconds.
    pub created: u64,
}

/// Paths and names of one podrun instance.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
    /// 8 hex digits identifying this instance (its state dir): part of
    /// every containerd ID and netns name, so that instances with
    /// different state dirs never collide in a shared containerd or in
    /// `/run/netns`.
    pub instance: String,
}

impl Store {
    pub fn new(root: &Path) -> Result<Store> {
        fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let canon = root.canonicalize()?;
        let digest = Sha256::digest(canon.as_os_str().as_encoded_bytes());
        let instance = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Store {
            root: canon,
            instance,
        })
    }

    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.root.join("pods").join(pod)
    }

    pub fn record_path(&self, pod: &str) -> PathBuf {
        self.pod_dir(pod).join("pod.json")
    }

    pub fn etc_dir(&self, pod: &str) -> PathBuf {
        self.pod_dir(pod).join("etc")
    }

    /// `logs/<container>`: the log driver appends `.stdout`/`.stderr`.
    pub fn log_base(&self, pod: &str, container: &str) -> PathBuf {
        self.pod_dir(pod).join("logs").join(container)
    }

    pub fn log_path(&self, pod: &str, container: &str, stream: &str) -> PathBuf {
        self.pod_dir(pod)
            .join("logs")
            .join(format!("{container}.{stream}"))
    }

    pub fn pause_rootfs(&self) -> PathBuf {
        self.root.join("pause").join("rootfs")
    }

    /// containerd ID of the pause container.
    pub fn sandbox_id(&self, pod: &str) -> String {
        format!("{pod}-{}", self.instance)
    }

    /// containerd ID of an app container.
    pub fn container_id(&self, pod: &str, container: &str) -> String {
        format!("{pod}-{}.{container}", self.instance)
    }

    pub fn netns_name(&self, pod: &str) -> String {
        format!("podrun-{}-{pod}", self.instance)
    }

    pub fn load(&self, pod: &str) -> Result<Option<PodRecord>> {
        let path = self.record_path(pod);
        match fs::read(&path) {
            Ok(b) => Ok(Some(
                serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display()))?,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }

    pub fn save(&self, rec: &PodRecord) -> Result<()> {
        let dir = self.pod_dir(&rec.spec.name);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        write_atomic(
            &self.record_path(&rec.spec.name),
            &serde_json::to_vec_pretty(rec)?,
            0o600,
        )
    }

    /// Names of every pod with a state directory, sorted.
    pub fn pods(&self) -> Result<Vec<String>> {
        let dir = self.root.join("pods");
        let mut out = Vec::new();
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd {
                    let e = e?;
                    if e.file_type()?.is_dir() {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        }
        out.sort();
        Ok(out)
    }

    pub fn remove_pod_dir(&self, pod: &str) -> Result<()> {
        match fs::remove_dir_all(self.pod_dir(pod)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Write via a temp file, fsync and rename: readers never see half a file.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
