//! Pod volumes (`hostPath`, `emptyDir`) and the containers' mounts of
//! them, named and typed as in a Kubernetes Pod so that a manifest maps
//! onto them field for field.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::units::MemorySize;

/// One volume of the pod: exactly one source is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Volume {
    /// Name the mounts refer to (a DNS label), unique in the pod.
    pub name: String,
    /// A file or directory of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathSource>,
    /// A directory that lives as long as the pod, shared by its containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirSource>,
}

/// `hostPath`: a node path, checked against `type` before the pod starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HostPathSource {
    /// Absolute path on the node.
    pub path: PathBuf,
    /// What must be there; absent (or `""` in a manifest) checks nothing.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<HostPathType>,
}

/// Kubernetes' `hostPath.type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPathType {
    /// A directory, created (0755) when missing.
    DirectoryOrCreate,
    /// An existing directory.
    Directory,
    /// A file, created empty (0644) when missing.
    FileOrCreate,
    /// An existing regular file.
    File,
    /// An existing UNIX socket.
    Socket,
    /// An existing character device.
    CharDevice,
    /// An existing block device.
    BlockDevice,
}

/// `emptyDir`: node disk under the pod's state, or a tmpfs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EmptyDirSource {
    /// `Memory` for a tmpfs; absent (or `""`) for node disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// Size cap: the tmpfs size for `Memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<MemorySize>,
}

/// A container's mount of a pod volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VolumeMount {
    /// The volume's name.
    pub name: String,
    /// Absolute path in the container.
    pub mount_path: PathBuf,
    /// A path inside the volume to mount instead of its root (relative,
    /// without `..`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}
