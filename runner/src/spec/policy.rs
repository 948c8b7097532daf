//! Pod-level behaviour: where a manifest came from, DNS, restarts,
//! bandwidth. Named as in a Kubernetes Pod.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Set when the pod came from a Kubernetes manifest: its metadata, and
/// Kubernetes' semantics where they differ from podrun's own format
/// (`$(VAR)` references in env, command and args are expanded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeMeta {
    /// `metadata.namespace` (`default` when absent); also the CNI
    /// `K8S_POD_NAMESPACE`.
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Kubernetes' `dnsPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsPolicy {
    /// The CNI result's DNS, else the node's (podrun has no cluster DNS).
    ClusterFirst,
    /// As `ClusterFirst`, for `hostNetwork` pods.
    ClusterFirstWithHostNet,
    /// The node's resolver config.
    Default,
    /// Only what `dnsConfig` says.
    None,
}

/// Kubernetes' `dnsConfig`: merged onto what the policy gives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub searches: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<DnsOption>,
}

/// A resolv.conf option: `ndots:5` is `{name: ndots, value: "5"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DnsOption {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Kubernetes' `restartPolicy`: what happens when a container exits.
/// Kept by `podrun run --attach`, which supervises the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    /// Restart on every exit.
    Always,
    /// Restart on a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

/// Traffic shaping of the pod's interface, in bits per second, given to
/// CNI as the `bandwidth` capability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bandwidth {
    /// Into the pod (`kubernetes.io/ingress-bandwidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_rate: Option<u64>,
    /// Out of the pod (`kubernetes.io/egress-bandwidth`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_rate: Option<u64>,
}
