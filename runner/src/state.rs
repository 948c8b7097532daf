//! Pod state on disk, so that every podrun command (and `rm` after a
//! crash) knows what a pod owns.
//!
//! Layout under `--state-dir`, one directory per containerd namespace
//! (as nerdctl keeps `containers/<namespace>/`), so that instances with
//! one state dir and different `--namespace` never share a pod:
//! `namespaces/<ns>/pods/<pod>/pod.json` (the record),
//! `namespaces/<ns>/pods/<pod>/etc/` (resolv.conf, hosts, hostname
//! bind-mounted into the containers), `namespaces/<ns>/pods/<pod>/logs/`
//! (`<container>.stdout`, `<container>.stderr`),
//! `namespaces/<ns>/locks/<pod>.lock`, and `pause/rootfs/` (the same file
//! for every namespace).
//!
//! The record is written *before* anything is created, with every name
//! podrun will use, so an interrupted `run` leaves enough to undo it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::lifecycle::status::Lifecycle;
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
    /// Init container IDs, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_ids: Vec<String>,
    /// Pod IP from the CNI result, once attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Every pod IP of the CNI result (`ip` is the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Starts, exits and restarts of the containers, and the supervisor
    /// keeping `restartPolicy` (see `lifecycle`).
    #[serde(default, skip_serializing_if = "Lifecycle::is_empty")]
    pub lifecycle: Lifecycle,
    /// `creating`, `running` or `stopped`.
    pub phase: String,
    /// Unix seconds.
    pub created: u64,
}

/// Paths and names of one podrun instance: a state dir and a containerd
/// namespace.
#[derive(Debug, Clone)]
pub struct Store {
    /// The state dir, canonical.
    pub root: PathBuf,
    /// This instance's part of it: `<root>/namespaces/<namespace>`.
    pub dir: PathBuf,
    /// 8 hex digits identifying this instance (its state dir and
    /// namespace): part of every containerd ID, CNI container ID and netns
    /// name, so that instances never collide in a shared containerd, a
    /// shared network or `/run/netns`, and so that `gc` can tell its own
    /// attachments from everybody else's (see [`Store::owns`]).
    pub instance: String,
}

/// containerd's rule for namespace names (`identifiers.Validate`): it
/// becomes a directory name here, so it is checked before any use.
fn check_namespace(ns: &str) -> Result<()> {
    let ok = !ns.is_empty()
        && ns.len() <= 76
        && ns
            .split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        anyhow::bail!(
            "invalid --namespace {ns:?}: containerd namespaces are 1-76 letters and digits, \
             separated by single '.', '_' or '-'"
        );
    }
    Ok(())
}

/// First 4 bytes of sha256(canonical state dir, NUL, namespace), in hex.
/// Neither part can contain a NUL, so no two instances share a digest
/// input.
pub fn instance_id(canon_root: &Path, namespace: &str) -> String {
    let mut h = Sha256::new();
    h.update(canon_root.as_os_str().as_encoded_bytes());
    h.update([0u8]);
    h.update(namespace.as_bytes());
    h.finalize()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Store {
    pub fn new(root: &Path, namespace: &str) -> Result<Store> {
        check_namespace(namespace)?;
        fs::create_dir_all(root).with_context(|| format!("create {}", root.display()))?;
        let canon = root
            .canonicalize()
            .with_context(|| format!("resolve --state-dir {}", root.display()))?;
        let old = canon.join("pods");
        if fs::read_dir(&old).is_ok_and(|mut rd| rd.next().is_some()) {
            tracing::warn!(
                "podrun: warning: {} holds pods of a podrun before per-namespace state \
                 (now under {}/namespaces/<namespace>/pods): this podrun does not see them",
                old.display(),
                canon.display()
            );
        }
        Ok(Store {
            dir: canon.join("namespaces").join(namespace),
            instance: instance_id(&canon, namespace),
            root: canon,
        })
    }

    /// Whether a CNI container ID is one of this instance's sandbox IDs
    /// (`<pod>-<instance>`; pod names are lowercase letters, digits and
    /// '-', so the suffix is what tells instances apart). Runtimes that
    /// are not podrun use other shapes (CRI: 64 hex digits).
    pub fn owns(&self, container_id: &str) -> bool {
        self.pod_of(container_id).is_some()
    }

    /// The pod name of one of this instance's sandbox IDs.
    pub fn pod_of(&self, container_id: &str) -> Option<String> {
        let pod = container_id
            .strip_suffix(&self.instance)?
            .strip_suffix('-')?;
        (!pod.is_empty()).then(|| pod.to_string())
    }

    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.dir.join("pods").join(pod)
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
        let dir = self.dir.join("pods");
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

/// Write via a temp file (`.<name>.tmp-<pid>`), fsync and rename: readers
/// never see half a file.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    atomicfile::Options::new()
        .durable(true)
        .mode(mode)
        .replace(path, data)?;
    Ok(())
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_differ_by_state_dir_and_namespace() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        let s = |dir: &Path, ns: &str| Store::new(dir, ns).unwrap();
        let ids = [
            s(&a, "netboot").instance,
            s(&b, "netboot").instance,
            s(&a, "other").instance,
        ];
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[0], ids[2]);
        assert_eq!(s(&a, "netboot").instance, ids[0], "stable");
        let (x, y) = (s(&a, "netboot"), s(&a, "other"));
        assert_ne!(x.pod_dir("web"), y.pod_dir("web"));
        assert_eq!(x.pause_rootfs(), y.pause_rootfs(), "one pause rootfs");
        assert!(x
            .pod_dir("web")
            .starts_with(x.root.join("namespaces/netboot")));
    }

    #[test]
    fn ownership_is_the_instance_suffix() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path(), "netboot").unwrap();
        let other = Store::new(d.path(), "other").unwrap();
        let mine = s.sandbox_id("web-1");
        assert!(s.owns(&mine));
        assert_eq!(s.pod_of(&mine).as_deref(), Some("web-1"));
        assert!(!other.owns(&mine));
        // A pod of another instance named after ours ends in its own id.
        assert!(!s.owns(&other.sandbox_id(&mine)));
        for id in [
            s.instance.clone(),
            format!("-{}", s.instance),
            "a".repeat(64),
        ] {
            assert!(!s.owns(&id), "{id}");
        }
    }

    #[test]
    fn namespaces_are_checked_before_becoming_paths() {
        let d = tempfile::tempdir().unwrap();
        for ns in ["k8s.io", "a_b-c", "netboot"] {
            Store::new(d.path(), ns).unwrap();
        }
        for ns in ["", "..", "a/b", "a..b", "-a", "a b", &"x".repeat(77)] {
            let e = Store::new(d.path(), ns).unwrap_err().to_string();
            assert!(e.contains("invalid --namespace"), "{ns:?}: {e}");
        }
    }
}
