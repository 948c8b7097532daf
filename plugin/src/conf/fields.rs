//! Reading and checking single fields of the plugin's config (code 7
//! naming the field), and Go's map key order.

use cni::error::{codes, CniError};
use cni::gojson::{schemas, Shape};
use netkit::firewall::{self, PortMapping};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

pub(super) fn invalid(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid config: {field}: {msg}"),
    )
}

pub(super) fn string_field<'a>(
    extra: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, CniError> {
    match extra.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(field, format!("must be a string, got {other}"))),
    }
}

pub(super) fn object_field(
    extra: &Map<String, Value>,
    field: &str,
) -> Result<Map<String, Value>, CniError> {
    match extra.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(invalid(field, format!("must be an object, got {other}"))),
    }
}

/// An absolute path with no `..` component: config paths are trusted to
/// point where the operator meant, never to climb out of it.
pub(super) fn path_field(
    extra: &Map<String, Value>,
    field: &str,
    default: &str,
) -> Result<PathBuf, CniError> {
    let raw = string_field(extra, field)?.unwrap_or(default);
    check_path(field, raw)
}

/// The rules of [`path_field`]: absolute, no `..` component, and no control
/// character (a NUL would fail late at `open`, a newline would forge lines
/// in messages and logs).
pub(super) fn check_path(field: &str, raw: &str) -> Result<PathBuf, CniError> {
    let path = Path::new(raw);
    if raw.is_empty() || !path.is_absolute() {
        return Err(invalid(field, format!("{raw:?} must be an absolute path")));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(invalid(field, format!("{raw:?} must not contain '..'")));
    }
    if raw.chars().any(char::is_control) {
        return Err(invalid(
            field,
            format!("{raw:?} must not contain control characters"),
        ));
    }
    Ok(path.to_path_buf())
}

/// `ipam.dataDir`: host-local's store base (the store is
/// `<dataDir>/<network>`), written by native mode itself. Held to the same
/// rules as `dataDir`: a relative value would follow the runtime's working
/// directory, and `..` could climb out of the operator's tree.
pub(super) fn check_ipam_data_dir(ipam: &Map<String, Value>) -> Result<(), CniError> {
    // The value host-local will decode from the rendered (key-sorted) map.
    let seen = cni::gojson::canonical(
        sorted(Value::Object(ipam.clone())).into(),
        &Shape::Struct(&schemas::HOST_LOCAL_IPAM),
    );
    match seen.get("dataDir") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => check_path("ipam.dataDir", s).map(|_| ()),
        Some(other) => Err(invalid(
            "ipam.dataDir",
            format!("must be a string, got {other}"),
        )),
    }
}

/// Recursively orders object keys, as Go's encoding/json does for maps: the
/// flannel plugin stores its delegate config that way.
pub fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Parses one recorded or runtime port mapping (`{hostPort, containerPort,
/// protocol, hostIP}`, validated up front by `PluginConf::check_port_mappings`).
pub fn parse_mapping(m: &Value) -> Option<PortMapping> {
    let port = |k: &str| {
        m.get(k)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
    };
    let protocol = match m.get("protocol").and_then(Value::as_str) {
        None | Some("") => firewall::Proto::Tcp,
        Some(p) => firewall::Proto::parse(p)?,
    };
    let host_ip = match m.get("hostIP").and_then(Value::as_str) {
        None | Some("") => None,
        Some(ip) => Some(ip.parse().ok()?),
    };
    Some(PortMapping {
        host_port: port("hostPort")?,
        container_port: port("containerPort")?,
        protocol,
        host_ip,
    })
}
