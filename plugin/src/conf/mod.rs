//! netboot-cni's own configuration: the plugin-specific keys of its net conf.
//!
//! Everything is validated here, before the first side effect, so a bad
//! config is rejected with code 7 (invalid config) and changes nothing.
//!
//! Keys are read as a Go plugin would read them ([`cni::gojson`]): the
//! dispatcher parses stdin with [`SCHEMA`], so `"SubnetFile"` is
//! `subnetFile` and containerd's `runtimeConfig.portMappings[].HostPort` is
//! `hostPort` by the time anything here looks.

mod fields;
mod ports;
#[cfg(test)]
mod tests;

use crate::ip_ranges::IpRange;
use cni::conf::NetConf;
use cni::error::CniError;
use cni::gojson::{schemas, Field, Shape, Struct};
use fields::{check_ipam_data_dir, invalid, object_field, path_field, string_field};
pub use fields::{parse_mapping, sorted};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Where flanneld (and `netboot agent`) write the node's lease.
pub const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
/// The upstream flannel plugin's default, so both share delegate records.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";
const DEFAULT_DELEGATE_TIMEOUT_SECS: u64 = 60;

/// netboot-cni's config type, as Go would declare it: flannel's `NetConf`
/// (flannel-io/cni-plugin `flannel.go`: `subnetFile`, `dataDir`, and
/// `delegate` and `ipam` as Go *maps*, whose keys flannel reads exactly and
/// passes on as written) plus netboot's own keys. flannel also holds
/// `runtimeConfig` as a map, but its consumers (portmap, host-local,
/// bridge, bandwidth) decode it as structs, and netboot consumes
/// `portMappings` itself, so it is read as they read it.
pub static SCHEMA: Struct = Struct {
    fields: &[
        Field::new("subnetFile", Shape::Scalar),
        Field::new("dataDir", Shape::Scalar),
        Field::new("delegate", Shape::Map(&Shape::Any)),
        Field::new("ipam", Shape::Map(&Shape::Any)),
        Field::new("mode", Shape::Scalar),
        Field::new("logFile", Shape::Scalar),
        Field::new("logLevel", Shape::Scalar),
        Field::new("delegateTimeout", Shape::Scalar),
        Field::new("portmap", Shape::PtrStruct(&schemas::PORTMAP_OPTIONS)),
    ],
    embeds: &[&schemas::NET_CONF],
    keep_unknown: true,
};

/// How the plugin gets its work done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pick the first that can work: flannel, then bridge, then native.
    Auto,
    /// Delegate to the upstream `flannel` binary.
    Flannel,
    /// Do flannel's job in-process and delegate to `bridge` + `host-local`.
    Bridge,
    /// Do everything in-process over netlink.
    Native,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Flannel => "flannel",
            Mode::Bridge => "bridge",
            Mode::Native => "native",
        }
    }

    fn parse(s: &str) -> Option<Mode> {
        [Mode::Auto, Mode::Flannel, Mode::Bridge, Mode::Native]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Log verbosity, from `logLevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Info,
    Debug,
}

/// The validated plugin configuration.
#[derive(Debug, Clone)]
pub struct PluginConf {
    pub net: NetConf,
    pub mode: Mode,
    pub subnet_file: PathBuf,
    pub data_dir: PathBuf,
    /// Options for the delegate (bridge), as flannel's `delegate` map.
    pub delegate: Map<String, Value>,
    /// Base IPAM section for the delegate, as flannel's top-level `ipam`.
    pub ipam: Map<String, Value>,
    /// Extra options for the chained `portmap` plugin (snat, masqAll, ...).
    pub portmap: Map<String, Value>,
    pub log_file: Option<PathBuf>,
    pub log_level: LogLevel,
    pub delegate_timeout: Duration,
}

impl PluginConf {
    /// Validates the plugin-specific keys of `net`.
    pub fn from_netconf(net: NetConf) -> Result<PluginConf, CniError> {
        let extra = &net.extra;
        let mode = match string_field(extra, "mode")? {
            None => Mode::Auto,
            Some(s) => Mode::parse(s).ok_or_else(|| {
                invalid(
                    "mode",
                    format!("{s:?} is not one of auto, flannel, bridge, native"),
                )
            })?,
        };
        let delegate = object_field(extra, "delegate")?;
        validate_delegate(&delegate)?;
        let ipam = match &net.ipam {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(other) => return Err(invalid("ipam", format!("must be an object, got {other}"))),
        };
        check_ipam_data_dir(&ipam)?;
        let log_level = match string_field(extra, "logLevel")? {
            // Quiet on the runtime's stderr unless asked; informative in a file.
            None if extra
                .get("logFile")
                .and_then(Value::as_str)
                .is_some_and(|f| !f.is_empty()) =>
            {
                LogLevel::Info
            }
            None => LogLevel::Error,
            Some("info") => LogLevel::Info,
            Some("error") => LogLevel::Error,
            Some("debug") => LogLevel::Debug,
            Some(s) => {
                return Err(invalid(
                    "logLevel",
                    format!("{s:?} is not one of error, info, debug"),
                ))
            }
        };
        let log_file = match string_field(extra, "logFile")? {
            None | Some("") => None,
            Some(_) => Some(path_field(extra, "logFile", "")?),
        };
        Ok(PluginConf {
            mode,
            subnet_file: path_field(extra, "subnetFile", DEFAULT_SUBNET_FILE)?,
            data_dir: path_field(extra, "dataDir", DEFAULT_DATA_DIR)?,
            delegate,
            ipam,
            portmap: object_field(extra, "portmap")?,
            log_file,
            log_level,
            delegate_timeout: delegate_timeout(extra)?,
            net,
        })
    }

    /// `runtimeConfig.ipRanges` (host-local's range override), validated
    /// (code 7 naming `runtimeConfig.ipRanges[i][j].<field>`), keys matched
    /// case-insensitively; empty when the runtime passed none. See
    /// [`crate::ip_ranges`] for how they combine with the node's ranges.
    pub fn ip_ranges(&self) -> Result<Vec<Vec<IpRange>>, CniError> {
        let rc = match &self.net.runtime_config {
            Some(Value::Object(rc)) => rc,
            _ => return Ok(Vec::new()),
        };
        match rc.get("ipRanges") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(v) => crate::ip_ranges::parse(v),
        }
    }

    /// `runtimeConfig.portMappings`, when the runtime passed any.
    pub fn port_mappings(&self) -> Vec<Value> {
        self.net
            .runtime_config
            .as_ref()
            .and_then(|rc| rc.get("portMappings"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    }
}

impl PluginConf {
    /// `runtimeConfig.bandwidth` (the `bandwidth` capability), validated;
    /// `None` when absent or all zero. Costs one map lookup when absent.
    ///
    /// Keys are canonical here: the config was read with Go's key rule
    /// (`cni::gojson`), so containerd's `IngressRate` arrives as
    /// `ingressRate`, like podman's.
    pub fn bandwidth(&self) -> Result<Option<crate::bandwidth::Bandwidth>, CniError> {
        let Some(entry) = self
            .net
            .runtime_config
            .as_ref()
            .and_then(|rc| rc.get("bandwidth"))
        else {
            return Ok(None);
        };
        let map = match entry {
            Value::Null => return Ok(None),
            Value::Object(m) => m,
            other => {
                return Err(invalid(
                    "runtimeConfig.bandwidth",
                    format!("must be an object, got {other}"),
                ))
            }
        };
        crate::bandwidth::Bandwidth::from_fields(|field| map.get(field).cloned())
    }
}

fn delegate_timeout(extra: &Map<String, Value>) -> Result<Duration, CniError> {
    match extra.get("delegateTimeout") {
        None | Some(Value::Null) => Ok(Duration::from_secs(DEFAULT_DELEGATE_TIMEOUT_SECS)),
        Some(v) => match v.as_f64() {
            Some(secs) if secs > 0.0 && secs <= 3600.0 => Ok(Duration::from_secs_f64(secs)),
            _ => Err(invalid(
                "delegateTimeout",
                format!("{v} must be a number of seconds in (0, 3600]"),
            )),
        },
    }
}

/// The same rules the flannel plugin applies to its `delegate` map.
fn validate_delegate(delegate: &Map<String, Value>) -> Result<(), CniError> {
    if let Some(t) = delegate.get("type") {
        if !t.is_string() {
            return Err(invalid("delegate.type", "if present, must be a string"));
        }
    }
    for forbidden in ["name", "ipam"] {
        if delegate.contains_key(forbidden) {
            return Err(invalid(
                &format!("delegate.{forbidden}"),
                "must not be set; netboot-cni sets it from the network and subnet.env",
            ));
        }
    }
    Ok(())
}
