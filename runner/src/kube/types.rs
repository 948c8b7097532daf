//! What a Kubernetes Pod manifest says that podrun's own [`PodSpec`] has no
//! place for yet. Kept, not dropped, so later work can honour it.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::spec::{ContainerSpec, PodSpec, SpecError};

/// Reading options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Turn refusals of unsupported fields into warnings.
    pub ignore_unsupported: bool,
}

/// One Pod document, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct KubePod {
    /// What podrun can run today.
    pub spec: PodSpec,
    /// What it cannot yet, kept for later.
    pub extra: PodExtra,
    /// Unsupported fields skipped under `ignore_unsupported`, by path.
    pub warnings: Vec<SpecError>,
}

/// Pod-level fields without a place in [`PodSpec`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodExtra {
    /// `metadata.namespace`, `default` when absent.
    pub namespace: String,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub subdomain: Option<String>,
    pub dns_policy: Option<DnsPolicy>,
    pub dns_config: Option<DnsConfig>,
    pub host_network: bool,
    pub termination_grace_period_seconds: Option<i64>,
    pub restart_policy: Option<RestartPolicy>,
    /// `kubernetes.io/ingress-bandwidth`, bits per second.
    pub ingress_bandwidth: Option<u64>,
    /// `kubernetes.io/egress-bandwidth`, bits per second.
    pub egress_bandwidth: Option<u64>,
    pub security_context: PodSecurityContext,
    /// `spec.initContainers`, mapped like containers; run before them.
    pub init_containers: Vec<ContainerSpec>,
    /// Per init container, parallel to `init_containers`.
    pub init_container_extras: Vec<ContainerExtra>,
    /// Per container, parallel to `spec.containers`.
    pub containers: Vec<ContainerExtra>,
    /// hostPath volumes with their type check (mapped to bind mounts).
    pub host_path_volumes: Vec<HostPathVolume>,
    /// emptyDir volumes (no podrun equivalent yet).
    pub empty_dirs: Vec<EmptyDirVolume>,
}

/// Container-level fields without a place in [`ContainerSpec`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerExtra {
    /// Env variables (already in `env`, value empty) to set to the pod IP
    /// once it is known: `valueFrom.fieldRef.fieldPath: status.podIP`.
    pub pod_ip_env: Vec<String>,
    /// `resources.requests.cpu` in millicores (also mapped to cpuShares).
    pub cpu_request_millis: Option<i64>,
    /// `resources.requests.memory` in bytes.
    pub memory_request: Option<u64>,
    pub image_pull_policy: Option<String>,
    /// Named ports: (containerPort, name).
    pub port_names: Vec<(u16, String)>,
    pub security_context: SecurityContext,
    /// Mounts of emptyDir volumes.
    pub empty_dir_mounts: Vec<EmptyDirMount>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsPolicy {
    ClusterFirst,
    ClusterFirstWithHostNet,
    Default,
    None,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub nameservers: Vec<IpAddr>,
    pub searches: Vec<String>,
    /// resolv.conf options: (name, value).
    pub options: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub fs_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityContext {
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: Option<bool>,
    pub read_only_root_filesystem: Option<bool>,
    pub privileged: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
}

/// `hostPath.type`: what must be at the path before the pod starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// `""`: no check.
    Unchecked,
    DirectoryOrCreate,
    Directory,
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPathVolume {
    pub name: String,
    pub path: PathBuf,
    pub kind: HostPathType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDirVolume {
    pub name: String,
    /// `medium: Memory` (a tmpfs) rather than node disk.
    pub memory: bool,
    /// `sizeLimit` in bytes.
    pub size_limit: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmptyDirMount {
    pub volume: String,
    pub container_path: PathBuf,
    pub sub_path: Option<String>,
    pub read_only: bool,
}

impl KubePod {
    /// Finishes the spec once the pod has its address: sets every
    /// `status.podIP` variable, then expands `$(VAR)` references in env,
    /// command and args as Kubernetes does. Call it exactly once, before
    /// starting the containers (expansion is not idempotent: `$$` → `$`).
    pub fn resolve(&mut self, pod_ip: IpAddr) {
        let all = self
            .spec
            .containers
            .iter_mut()
            .zip(&self.extra.containers)
            .chain(
                self.extra
                    .init_containers
                    .iter_mut()
                    .zip(&self.extra.init_container_extras),
            );
        for (c, x) in all {
            for (k, v) in c.env.0.iter_mut() {
                if x.pod_ip_env.contains(k) {
                    *v = pod_ip.to_string();
                }
            }
            super::expand::expand_container(c);
        }
    }
}
