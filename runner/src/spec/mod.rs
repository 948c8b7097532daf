//! The pod spec: a JSON or YAML file, parsed strictly (unknown fields are
//! errors) and validated as a whole before podrun touches anything.
//!
//! Every error names the field it is about, as a path from the document
//! root: `containers[1].resources.memory: "12Q" is not a size`.

mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

pub use units::{CpuSet, Cpus, MemorySize, CFS_PERIOD_US};

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
    /// Resource limits.
    #[serde(default)]
    pub resources: Resources,
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
}

/// Environment variables in order, from a map or a `KEY=VALUE` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(pub Vec<(String, String)>);

impl Env {
    /// True when no variable is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Env {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|(k, v)| format!("{k}={v}")))
    }
}

impl<'de> Deserialize<'de> for Env {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EnvVisitor;
        impl<'de> Visitor<'de> for EnvVisitor {
            type Value = Env;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of variables or a list of KEY=VALUE strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Env, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, ScalarString>()? {
                    out.push((k, v.0));
                }
                Ok(Env(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Env, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = s.next_element::<String>()? {
                    let Some((k, v)) = item.split_once('=') else {
                        return Err(de::Error::custom(format!("{item:?} is not KEY=VALUE")));
                    };
                    out.push((k.to_string(), v.to_string()));
                }
                Ok(Env(out))
            }
        }
        d.deserialize_any(EnvVisitor)
    }
}

/// A YAML/JSON scalar read as a string: `PORT: 80` means "80", as in
/// docker-compose (Kubernetes would refuse it; podrun is friendlier).
struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The format of a spec file, from its extension (anything but `.json`
/// is read as YAML, which also accepts JSON).
fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

impl PodSpec {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<PodSpec, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| SpecError::new(path.display().to_string(), e.to_string()))?;
        if is_json(path) {
            PodSpec::from_json(&text)
        } else {
            PodSpec::from_yaml(&text)
        }
    }

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
