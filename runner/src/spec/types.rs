//! The types of a pod spec, and the error that names a field of it.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::env::Env;
use super::policy::{Bandwidth, DnsConfig, DnsPolicy, KubeMeta, RestartPolicy};
use super::security::{PodSecurityContext, SecurityContext};
use super::units::{CpuSet, Cpus, MemorySize};
use super::volume::{Volume, VolumeMount};

/// A problem with the spec, located by its field path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {msg}")]
pub struct SpecError {
    /// `containers[1].resources.memory`, or `.` for the document itself.
    pub path: String,
    /// What is wrong.
    pub msg: String,
}

impl SpecError {
    pub(crate) fn new(path: impl Into<String>, msg: impl Into<String>) -> SpecError {
        SpecError {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// A pod: one network namespace (held by the pause container), one or
/// more containers sharing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    /// Pod name (a DNS label); names the pod in every podrun command.
    pub name: String,
    /// Hostname inside the pod; defaults to the pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Conflist name; defaults to the first network in the conf dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Ports; those with a `hostPort` are published through CNI
    /// `portMappings`, the others are only labels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// The containers, started in order after the pause container.
    pub containers: Vec<ContainerSpec>,
    /// Run to completion, one after the other, before `containers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<ContainerSpec>,
    /// Volumes the containers mount by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// With `hostname`, the pod's FQDN `<hostname>.<subdomain>...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdomain: Option<String>,
    /// How the pod's resolv.conf is made; see [`DnsPolicy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<DnsPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    /// Share the node's network namespace: no CNI, no pod IP of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// Seconds between SIGTERM and SIGKILL on `stop`/`rm` when no
    /// `--grace` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<u64>,
    /// What `run --attach` does when a container exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Rate limits of the pod's interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// Defaults for every container's security settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Set when the pod came from a Kubernetes manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube: Option<KubeMeta>,
}

/// A container port, optionally published on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Port {
    /// Port inside the pod.
    pub container_port: u16,
    /// Port on the node; absent or 0 means not published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// `tcp` (default), `udp` or `sctp`; any case.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Node address to publish on; absent means every address.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// A name for the port (an IANA service name), for people to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn default_protocol() -> String {
    "tcp".into()
}

/// One container of the pod.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ContainerSpec {
    /// Container name (a DNS label), unique in the pod.
    pub name: String,
    /// Image reference, as stored in containerd (`docker.io/library/x:1`).
    pub image: String,
    /// Replaces the image's Entrypoint (and drops its Cmd), as in Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the image's Cmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Environment, on top of the image's.
    #[serde(default, skip_serializing_if = "Env::is_empty")]
    pub env: Env,
    /// Working directory; defaults to the image's, then `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Bind mounts from the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Mounts of the pod's `volumes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
    /// User, groups, capabilities, read-only root, privileged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Variables of `env` set to the pod's IP once it has one
    /// (Kubernetes' `fieldRef: status.podIP`).
    #[serde(default, rename = "podIPEnv", skip_serializing_if = "Vec::is_empty")]
    pub pod_ip_env: Vec<String>,
}

/// A bind mount of a node path into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mount {
    /// Absolute path on the node.
    pub host_path: PathBuf,
    /// Absolute path in the container.
    pub container_path: PathBuf,
    /// Mount read-only (enforced: a write fails with EROFS).
    #[serde(default)]
    pub read_only: bool,
}

/// Limits applied through the OCI spec (cgroup v1 or v2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Resources {
    /// Memory limit: bytes, or a number with a unit (`64Mi`, `1G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemorySize>,
    /// CPU limit in CPUs (CFS quota over a 100 ms period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// CPUs to pin to, in cpuset list syntax (`0-3,6`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<CpuSet>,
    /// Relative CPU weight (cgroup v1 shares, 2..=262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// Memory the pod is expected to use (Kubernetes' request): recorded
    /// and shown, not enforced (one node schedules nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<MemorySize>,
}
