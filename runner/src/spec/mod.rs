//! The pod spec: a JSON or YAML file, parsed strictly (unknown fields are
//! errors) and validated as a whole before podrun touches anything.
//!
//! Every error names the field it is about, as a path from the document
//! root: `containers[1].resources.memory: "12Q" is not a size`.

pub mod caps;
mod env;
mod expand;
mod network;
mod policy;
mod security;
mod types;
mod units;
mod validate;
mod validate_security;
mod validate_volumes;
mod volume;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

pub use env::Env;
pub use network::{is_dns_subdomain, EGRESS_ANNOTATION, INGRESS_ANNOTATION};
pub use policy::{Bandwidth, DnsConfig, DnsOption, DnsPolicy, KubeMeta, RestartPolicy};
pub use security::{Capabilities, PodSecurityContext, SecurityContext};
pub use types::{ContainerSpec, PodSpec, Port, Resources, SpecError};
pub use units::{Cpus, MemorySize, CFS_PERIOD_US};
pub use volume::{EmptyDirSource, HostPathSource, HostPathType, Volume, VolumeMount};

impl PodSpec {
    /// Parses and validates a JSON document.
    pub fn from_json(text: &str) -> Result<PodSpec, SpecError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let spec: PodSpec = serde_path_to_error::deserialize(de).map_err(path_error)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Parses and validates a YAML (or JSON) document.
    pub fn from_yaml(text: &str) -> Result<PodSpec, SpecError> {
        let de = serde_norway::Deserializer::from_str(text);
        let spec: PodSpec = serde_path_to_error::deserialize(de).map_err(path_error)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Finishes the spec once the pod has its address: sets every
    /// `podIPEnv` variable, then, for a pod from a Kubernetes manifest,
    /// expands `$(VAR)` references in env, command and args. Called
    /// once, before any container starts (expansion is not idempotent:
    /// `$$` becomes `$`).
    pub fn resolve(&mut self, pod_ip: Option<IpAddr>) {
        let kube = self.kube.is_some();
        for c in self
            .containers
            .iter_mut()
            .chain(self.init_containers.iter_mut())
        {
            if let Some(ip) = pod_ip {
                for (k, v) in c.env.0.iter_mut() {
                    if c.pod_ip_env.contains(k) {
                        *v = ip.to_string();
                    }
                }
            }
            if kube {
                expand::expand_container(c);
            }
        }
    }

    /// The hostname the pod gets.
    pub fn hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }

    /// The ports published on the node, as CNI `portMappings` entries.
    pub fn port_mappings(&self) -> Vec<serde_json::Value> {
        self.ports
            .iter()
            .filter(|p| p.host_port.unwrap_or(0) != 0)
            .map(|p| {
                let mut m = serde_json::json!({
                    "hostPort": p.host_port,
                    "containerPort": p.container_port,
                    "protocol": p.protocol,
                });
                if let Some(ip) = p.host_ip {
                    m["hostIP"] = serde_json::Value::String(ip.to_string());
                }
                m
            })
            .collect()
    }
}

/// A serde error with the path it happened at. Serde's own messages name
/// the problem (`unknown field `x`, expected one of ...`); the path is ours.
fn path_error<E: fmt::Display>(e: serde_path_to_error::Error<E>) -> SpecError {
    let mut path = e.path().to_string();
    let mut msg = e.inner().to_string();
    // serde_norway prefixes its messages with its own idea of the path.
    if let Some((head, rest)) = msg.split_once(": ") {
        if !head.contains(' ') && path.starts_with(head) {
            msg = rest.to_string();
        }
    }
    // For an unknown key the tracked path ends at the key itself; name the
    // object that has it instead, as for every other error.
    // The parent is computed from the path's segments, not its text: an
    // unknown key may itself contain '.' (`{".x": 1}` used to yield an empty
    // path).
    if msg.starts_with("unknown field") {
        let segments: Vec<_> = e.path().iter().collect();
        path = render_path(&segments[..segments.len().saturating_sub(1)]);
    }
    SpecError::new(path, msg)
}

/// `containers[1].mounts`, or `.` for the document itself.
fn render_path(segments: &[&serde_path_to_error::Segment]) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.is_empty() {
        ".".to_string()
    } else {
        out
    }
}

/// Ordered env as a map, last one wins (for tests).
#[cfg(test)]
pub fn env_map(env: &Env) -> std::collections::BTreeMap<&str, &str> {
    env.0
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
