//! netboot-cni's own configuration: the plugin-specific keys of its net conf.
//!
//! Everything is validated here, before the first side effect, so a bad
//! config is rejected with code 7 (invalid config) and changes nothing.
//!
//! Keys are read as a Go plugin would read them ([`cni::gojson`]): the
//! dispatcher parses stdin with [`SCHEMA`], so `"SubnetFile"` is
//! `subnetFile` and containerd's `runtimeConfig.portMappings[].HostPort` is
//! `hostPort` by the time anything here looks.

use crate::ip_ranges::IpRange;
use cni::conf::NetConf;
use cni::error::{codes, CniError};
use cni::gojson::{schemas, Field, Shape, Struct};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
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
    // The value host-local will decode from the rendered (key-sorted) map.
    let seen = cni::gojson::canonical(
        crate::flannel::sorted(Value::Object(ipam.clone())).into(),
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
        match self.net.runtime_arg("portMappings") {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(invalid(
                    "runtimeConfig.portMappings",
                    format!("must be a list, got {other}"),
                ))
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(json: &str) -> Result<PluginConf, CniError> {
        PluginConf::from_netconf(NetConf::parse_as(json.as_bytes(), &SCHEMA).unwrap())
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
            // Security review (docs/security.md F1/F2): the IPAM store base is a
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
    fn reads_own_keys_in_any_spelling() {
        let c = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","Mode":"bridge","SUBNETFILE":"/a",
                "subnetfile":"/b","DataDir":"/d","Portmap":{"MarkMasqBit":40},"Delegate":{"HairpinMode":true},
                "LogLevel":"debug","delegatetimeout":5,"IPAM":{"DataDir":"/s"}}"#,
        )
        .unwrap();
        assert_eq!(c.mode, Mode::Bridge);
        assert_eq!(c.subnet_file, Path::new("/b"), "last wins");
        assert_eq!(c.data_dir, Path::new("/d"));
        assert_eq!(c.log_level, LogLevel::Debug);
        assert_eq!(c.delegate_timeout, Duration::from_secs(5));
        // flannel's `delegate` and `ipam` are Go maps: keys stay as written.
        assert_eq!(c.delegate["HairpinMode"], true);
        assert_eq!(c.ipam["DataDir"], "/s");
        assert_eq!(c.portmap["markMasqBit"], 40);
        // ...and the portmap option is checked under its canonical name.
        let e = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","Portmap":{"MarkMasqBit":40},
                "runtimeConfig":{"portMappings":[{"HostPort":80,"ContainerPort":80}]}}"#,
        )
        .unwrap()
        .check_port_mappings()
        .unwrap_err();
        assert!(e.msg.contains("portmap.markMasqBit"), "{}", e.msg);
        // host-local folds the ipam map: a relative "DataDir" is refused too.
        let e = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"DATADIR":"rel"}}"#);
        assert!(e.unwrap_err().msg.contains("ipam.dataDir"));
    }

    #[test]
    fn every_capability_reads_canonically_through_the_plugin_schema() {
        let want = serde_json::json!({
            "portMappings": [{"hostPort":80,"containerPort":8080,"protocol":"tcp","hostIP":""}],
            "bandwidth": {"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4},
            "ipRanges": [[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.2","rangeEnd":"10.1.0.9","gateway":"10.1.0.1"}]],
            "dns": {"servers":["10.96.0.10"],"searches":["svc"],"options":["ndots:5"]},
        });
        // lower camel (libcni, podman), Go field names (go-cni), mixed.
        let spellings: [fn(&str) -> String; 3] = [
            |k| k.to_string(),
            |k| k[..1].to_uppercase() + &k[1..],
            |k| {
                k.chars()
                    .map(|c| {
                        if c.is_ascii_lowercase() {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect()
            },
        ];
        for spell in spellings {
            let mut text = want.to_string();
            for key in [
                "hostPort",
                "containerPort",
                "protocol",
                "hostIP",
                "ingressRate",
                "ingressBurst",
                "egressRate",
                "egressBurst",
                "subnet",
                "rangeStart",
                "rangeEnd",
                "gateway",
                "servers",
                "searches",
                "options",
            ] {
                text = text.replace(&format!("\"{key}\""), &format!("\"{}\"", spell(key)));
            }
            let c = conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","runtimeConfig":{text}}}"#
            ))
            .unwrap();
            assert_eq!(c.net.runtime_config.as_ref(), Some(&want), "{text}");
            assert!(c.check_port_mappings().is_ok(), "{text}");
        }
    }

    #[test]
    fn go_spelled_port_mappings_are_checked_by_canonical_path() {
        let check = |m: &str| {
            conf(&format!(
                r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","runtimeConfig":{{"portMappings":[{m}]}}}}"#
            ))
            .unwrap()
            .check_port_mappings()
        };
        for ok in [
            r#"{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}"#,
            r#"{"hOSTpORT":18080,"cONTAINERpORT":80,"pROTOCOL":"udp","hOSTip":"10.0.0.1"}"#,
            r#"{"hostPort":0,"HostPort":18080,"containerPort":80,"Unknown":"x"}"#,
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for (bad, field, shown) in [
            (
                r#"{"HostPort":"x","ContainerPort":80}"#,
                "hostPort",
                r#""x""#,
            ),
            (
                r#"{"hostPort":80,"HostPort":0,"ContainerPort":80}"#,
                "hostPort",
                "0",
            ),
            (
                r#"{"HostPort":80,"CONTAINERPORT":70000}"#,
                "containerPort",
                "70000",
            ),
            (
                r#"{"HostPort":80,"ContainerPort":80,"HostIP":"eth0"}"#,
                "hostIP",
                "eth0",
            ),
        ] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{bad}");
            let want = format!("runtimeConfig.portMappings[0].{field}: ");
            assert!(
                e.msg.contains(&want) && e.msg.contains(shown),
                "{bad}: {}",
                e.msg
            );
        }
        let e = conf(
            r#"{"cniVersion":"1.0.0","name":"n","type":"x","runtimeConfig":{"PortMappings":"x"}}"#,
        )
        .unwrap()
        .check_port_mappings()
        .unwrap_err();
        assert!(
            e.msg.contains("runtimeConfig.portMappings: must be a list"),
            "{}",
            e.msg
        );
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
