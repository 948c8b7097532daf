//! netboot-cni's own configuration: the plugin-specific keys of its net conf.
//!
//! Everything is validated here, before the first side effect, so a bad
//! config is rejected with code 7 (invalid config) and changes nothing.

use crate::ip_ranges::IpRange;
use cni::conf::NetConf;
use cni::error::{codes, CniError};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where flanneld (and `netboot agent`) write the node's lease.
pub const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
/// The upstream flannel plugin's default, so both share delegate records.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";
const DEFAULT_DELEGATE_TIMEOUT_SECS: u64 = 60;

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

fn invalid(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid config: {field}: {msg}"),
    )
}

fn string_field<'a>(
    extra: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, CniError> {
    match extra.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(field, format!("must be a string, got {other}"))),
    }
}

fn object_field(extra: &Map<String, Value>, field: &str) -> Result<Map<String, Value>, CniError> {
    match extra.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(invalid(field, format!("must be an object, got {other}"))),
    }
}

/// An absolute path with no `..` component: config paths are trusted to
/// point where the operator meant, never to climb out of it.
fn path_field(extra: &Map<String, Value>, field: &str, default: &str) -> Result<PathBuf, CniError> {
    let raw = string_field(extra, field)?.unwrap_or(default);
    check_path(field, raw)
}

/// The rules of [`path_field`]: absolute, no `..` component, and no control
/// character (a NUL would fail late at `open`, a newline would forge lines
/// in messages and logs).
fn check_path(field: &str, raw: &str) -> Result<PathBuf, CniError> {
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
fn check_ipam_data_dir(ipam: &Map<String, Value>) -> Result<(), CniError> {
    match ipam.get("dataDir") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => check_path("ipam.dataDir", s).map(|_| ()),
        Some(other) => Err(invalid(
            "ipam.dataDir",
            format!("must be a string, got {other}"),
        )),
    }
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

    /// Refuses (code 7) port mappings and `portmap` options that the
    /// chained portmap plugin would reject while parsing its config
    /// (plugins/meta/portmap `parseConfig`: ports > 0, markMasqBit 0-31,
    /// not together with externalSetMarkChain). portmap rejects such a
    /// config on DEL as well, so letting it through would leave an
    /// attachment that neither rollback nor any later DEL can remove.
    pub fn check_port_mappings(&self) -> Result<(), CniError> {
        let mappings = self.port_mappings();
        if mappings.is_empty() {
            return Ok(());
        }
        for (i, m) in mappings.iter().enumerate() {
            let field = |k: &str| format!("runtimeConfig.portMappings[{i}].{k}");
            for port in ["hostPort", "containerPort"] {
                match m.get(port).and_then(Value::as_u64) {
                    Some(p) if (1..=65535).contains(&p) => {}
                    _ => {
                        return Err(invalid(
                            &field(port),
                            format!("{} is not a port number in 1-65535", m[port]),
                        ))
                    }
                }
            }
            for key in ["protocol", "hostIP"] {
                if !matches!(
                    m.get(key),
                    None | Some(Value::Null) | Some(Value::String(_))
                ) {
                    return Err(invalid(&field(key), "must be a string"));
                }
            }
            // portmap reads a hostIP that is no IP literal as "IPv6" and
            // silently publishes nothing for an IPv4 pod (net.ParseIP
            // yields nil, portmap_iptables.go fillDnatRules); a typo must
            // not pass unnoticed.
            if let Some(ip) = m.get("hostIP").and_then(Value::as_str) {
                if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid(
                        &field("hostIP"),
                        format!("{ip:?} is not an IP address"),
                    ));
                }
            }
        }
        if let Some(bit) = self.portmap.get("markMasqBit") {
            if bit.as_u64().is_none_or(|b| b > 31) {
                return Err(invalid(
                    "portmap.markMasqBit",
                    format!("{bit} is not in 0-31"),
                ));
            }
            if self.portmap.contains_key("externalSetMarkChain") {
                return Err(invalid(
                    "portmap.markMasqBit",
                    "cannot be combined with externalSetMarkChain",
                ));
            }
        }
        Ok(())
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
        match crate::ip_ranges::get_ci(rc, "ipRanges") {
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
    /// Field names match case-insensitively, an exact match first, as Go's
    /// encoding/json does for the reference plugin: containerd's go-cni
    /// sends `IngressRate`..., podman `ingressRate`... (The lookup is the
    /// only place to change once keys are canonicalised up front.)
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
        crate::bandwidth::Bandwidth::from_fields(|field| {
            map.get(field)
                .or_else(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(field))
                        .map(|(_, v)| v)
                })
                .cloned()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> Result<PluginConf, CniError> {
        PluginConf::from_netconf(NetConf::parse(json.as_bytes()).unwrap())
    }

    #[test]
    fn defaults_match_flannel() {
        let c = conf(r#"{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni"}"#).unwrap();
        assert_eq!(c.mode, Mode::Auto);
        assert_eq!(c.subnet_file, Path::new(DEFAULT_SUBNET_FILE));
        assert_eq!(c.data_dir, Path::new(DEFAULT_DATA_DIR));
        assert!(c.delegate.is_empty());
    }

    #[test]
    fn rejects_bad_values_naming_the_field() {
        for (json, field) in [
            (r#""mode":"turbo""#, "mode"),
            (r#""mode":3"#, "mode"),
            (r#""subnetFile":"relative/subnet.env""#, "subnetFile"),
            (r#""dataDir":"/var/lib/../../etc""#, "dataDir"),
            (r#""delegate":{"name":"x"}"#, "delegate.name"),
            (r#""delegate":{"ipam":{}}"#, "delegate.ipam"),
            (r#""delegate":{"type":7}"#, "delegate.type"),
            (r#""delegate":[]"#, "delegate"),
            (r#""logLevel":"loud""#, "logLevel"),
            (r#""delegateTimeout":-1"#, "delegateTimeout"),
            (r#""ipam":"host-local""#, "ipam"),
            // Security review (SECURITY.md F1/F2): the IPAM store base is a
            // path netboot writes to, and no path may carry a control char.
            (r#""ipam":{"dataDir":"../../tmp"}"#, "ipam.dataDir"),
            (r#""ipam":{"dataDir":"var/lib/cni"}"#, "ipam.dataDir"),
            (
                r#""ipam":{"dataDir":"/var/lib/cni/../../etc"}"#,
                "ipam.dataDir",
            ),
            (r#""ipam":{"dataDir":7}"#, "ipam.dataDir"),
            (r#""dataDir":"/var/lib/cni/flannel\u0000x""#, "dataDir"),
            (r#""subnetFile":"/run/flannel/subnet.env\nX""#, "subnetFile"),
            (r#""logFile":"/var/log/netboot\r.log""#, "logFile"),
        ] {
            let full =
                format!(r#"{{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni",{json}}}"#);
            let err = conf(&full).unwrap_err();
            assert_eq!(err.code, codes::INVALID_CONFIG, "{json}");
            assert!(err.msg.contains(field), "{json}: {}", err.msg);
        }
    }

    #[test]
    fn refuses_port_mappings_portmap_cannot_parse() {
        let with = |rc: &str, pm: &str| {
            conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","portmap":{pm},"runtimeConfig":{{"portMappings":[{rc}]}}}}"#
            ))
            .unwrap()
            .check_port_mappings()
        };
        assert!(with(
            r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#,
            "{}"
        )
        .is_ok());
        for ip in ["", "192.0.2.1", "0.0.0.0", "2001:db8::1", "::"] {
            let m = format!(r#"{{"hostPort":8080,"containerPort":80,"hostIP":"{ip}"}}"#);
            assert!(with(&m, "{}").is_ok(), "{m}");
        }
        assert!(
            with("", r#"{"markMasqBit":99}"#).is_ok(),
            "no mappings, no portmap"
        );
        for (rc, pm, field) in [
            (r#"{"hostPort":0,"containerPort":80}"#, "{}", "hostPort"),
            (
                r#"{"hostPort":80,"containerPort":70000}"#,
                "{}",
                "containerPort",
            ),
            (r#"{"hostPort":"80","containerPort":80}"#, "{}", "hostPort"),
            (r#"{"containerPort":80}"#, "{}", "hostPort"),
            (
                r#"{"hostPort":80,"containerPort":80,"hostIP":"10.0.0.300"}"#,
                "{}",
                "hostIP",
            ),
            (
                r#"{"hostPort":80,"containerPort":80,"hostIP":"eth0"}"#,
                "{}",
                "hostIP",
            ),
            (
                r#"{"hostPort":80,"containerPort":80,"protocol":6}"#,
                "{}",
                "protocol",
            ),
            (
                r#"{"hostPort":80,"containerPort":80}"#,
                r#"{"markMasqBit":32}"#,
                "markMasqBit",
            ),
            (
                r#"{"hostPort":80,"containerPort":80}"#,
                r#"{"markMasqBit":3,"externalSetMarkChain":"X"}"#,
                "markMasqBit",
            ),
        ] {
            let e = with(rc, pm).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{rc}");
            assert!(e.msg.contains(field), "{rc}: {}", e.msg);
        }
    }

    #[test]
    fn reads_bandwidth_in_go_and_lower_case_spelling() {
        let with = |bw: &str| {
            conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","runtimeConfig":{{"bandwidth":{bw}}}}}"#
            ))
            .unwrap()
            .bandwidth()
        };
        let go = with(
            r#"{"IngressRate":8000000,"IngressBurst":4294967295,"EgressRate":0,"EgressBurst":0}"#,
        )
        .unwrap()
        .unwrap();
        let lower = with(r#"{"ingressRate":8000000,"ingressBurst":4294967295}"#)
            .unwrap()
            .unwrap();
        assert_eq!(go, lower);
        assert_eq!(go.ingress.map(|s| s.rate), Some(8_000_000));
        assert_eq!(go.egress, None);
        assert_eq!(
            with(r#"{"IngressRate":0,"IngressBurst":0,"EgressRate":0,"EgressBurst":0}"#).unwrap(),
            None
        );
        let e = with(r#"{"EgressRate":1000}"#).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG);
        assert!(
            e.msg.contains("runtimeConfig.bandwidth.egressBurst"),
            "{}",
            e.msg
        );
        assert!(with("7")
            .unwrap_err()
            .msg
            .contains("runtimeConfig.bandwidth"));
        let none = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni"}"#).unwrap();
        assert_eq!(none.bandwidth().unwrap(), None);
    }

    #[test]
    fn reads_port_mappings() {
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","mode":"bridge",
                "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Bridge);
        assert_eq!(c.port_mappings().len(), 1);
    }
}
