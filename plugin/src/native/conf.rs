//! The native mode's settings, read from the same bridge + host-local config
//! that bridge mode hands to the reference `bridge` binary (see
//! `flannel::bridge_delegate`). One rendering serves both modes, so a pod
//! gets the same network whichever mode attached it, and the option names,
//! defaults and conflicts are the bridge plugin's
//! (containernetworking/plugins `plugins/main/bridge/bridge.go` NetConf).

use cni::error::{codes, CniError};
use ipnet::IpNet;
use serde_json::Value;
use std::net::IpAddr;
use std::path::PathBuf;

const BRIDGE_SHAPE: cni::gojson::Shape = cni::gojson::Shape::Struct(&cni::gojson::schemas::BRIDGE);

/// Default bridge name, as the bridge plugin's.
pub const DEFAULT_BRIDGE: &str = "cni0";

/// One IPAM range (host-local `ranges[i][0]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub subnet: IpNet,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

/// A route for the pod (host-local `routes`).
#[derive(Debug, Clone, PartialEq)]
pub struct PodRoute {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

#[derive(Debug, Clone)]
pub struct NativeConf {
    pub bridge: String,
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    pub mtu: Option<u32>,
    pub hairpin: bool,
    pub promisc: bool,
    /// `enabledad`: IPv6 duplicate address detection on the pod's
    /// addresses (off by default, as in the bridge plugin).
    pub enable_dad: bool,
    pub ranges: Vec<Range>,
    pub routes: Vec<PodRoute>,
    /// host-local's `dataDir` (the store lives in `<dataDir>/<network>`).
    pub ipam_data_dir: Option<PathBuf>,
    /// The bridge plugin's `dns`, which it copies into its result
    /// unchanged (bridge.go cmdAdd: `result.DNS = n.DNS`).
    pub dns: cni::Dns,
}

fn invalid(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid config: {field}: {msg}"),
    )
}

fn flag(d: &Value, key: &str) -> Result<bool, CniError> {
    match d.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(invalid(
            &format!("delegate.{key}"),
            format!("must be a boolean, got {v}"),
        )),
    }
}

fn ip_field(v: &Value, field: &str) -> Result<Option<IpAddr>, CniError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| invalid(field, format!("{s:?} is not an IP address"))),
        Some(other) => Err(invalid(field, format!("must be a string, got {other}"))),
    }
}

fn net_field(v: &Value, field: &str) -> Result<IpNet, CniError> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(field, "is required and must be a CIDR string"))?;
    s.parse()
        .map_err(|_| invalid(field, format!("{s:?} is not a CIDR")))
}

/// Options of the bridge plugin that native mode does not implement: they
/// are refused (code 2) instead of silently ignored.
const UNSUPPORTED: &[&str] = &[
    "vlan",
    "vlanTrunk",
    "macspoofchk",
    "portIsolation",
    "disableContainerInterface",
];

impl NativeConf {
    /// Parses the rendered delegate config, reading its keys as the bridge
    /// plugin (and host-local, for `ipam`) would ([`cni::gojson`]): the
    /// user's `delegate` map is passed on as written, so `"HairpinMode"`
    /// means `hairpinMode` here as it does to the bridge binary.
    pub fn from_delegate(d: &Value) -> Result<NativeConf, CniError> {
        let d = &cni::gojson::canonical(d.clone().into(), &BRIDGE_SHAPE);
        for key in UNSUPPORTED {
            if d.get(*key)
                .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
            {
                return Err(CniError::new(
                    codes::UNSUPPORTED_FIELD,
                    format!("delegate.{key} is not supported in native mode; use mode \"bridge\""),
                ));
            }
        }
        let bridge = match d.get("bridge") {
            None | Some(Value::Null) => DEFAULT_BRIDGE.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(v) => {
                return Err(invalid(
                    "delegate.bridge",
                    format!("must be a string, got {v}"),
                ))
            }
        };
        cni::args::validate_ifname(&bridge).map_err(|e| invalid("delegate.bridge", e.msg))?;
        let is_default_gateway = flag(d, "isDefaultGateway")?;
        let (hairpin, promisc) = (flag(d, "hairpinMode")?, flag(d, "promiscMode")?);
        if hairpin && promisc {
            return Err(invalid(
                "delegate",
                "hairpinMode and promiscMode cannot both be set",
            ));
        }
        let mtu = match d.get("mtu") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(0) => None,
                Some(m) if (68..=65535).contains(&m) => Some(m as u32),
                _ => {
                    return Err(invalid(
                        "delegate.mtu",
                        format!("{v} must be an integer in 68..65535"),
                    ))
                }
            },
        };
        let ipam = d.get("ipam").cloned().unwrap_or(Value::Null);
        match ipam.get("type").and_then(Value::as_str) {
            None | Some("host-local") => {}
            Some(t) => {
                return Err(CniError::new(
                    codes::UNSUPPORTED_FIELD,
                    format!("ipam.type {t:?}: native mode only implements host-local"),
                ))
            }
        }
        Ok(NativeConf {
            bridge,
            is_gateway: flag(d, "isGateway")? || is_default_gateway,
            is_default_gateway,
            force_address: flag(d, "forceAddress")?,
            ip_masq: flag(d, "ipMasq")?,
            mtu,
            hairpin,
            promisc,
            enable_dad: flag(d, "enabledad")?,
            ranges: ranges(&ipam)?,
            routes: routes(&ipam)?,
            ipam_data_dir: ipam
                .get("dataDir")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            dns: dns(d)?,
        })
    }
}

/// `delegate.dns`, shaped as the spec's DNS structure (Go's decoder in the
/// bridge plugin refuses any other shape, so do we).
fn dns(d: &Value) -> Result<cni::Dns, CniError> {
    match d.get("dns") {
        None | Some(Value::Null) => Ok(cni::Dns::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| invalid("delegate.dns", format!("{e} (got {v})"))),
    }
}

fn ranges(ipam: &Value) -> Result<Vec<Range>, CniError> {
    let sets = ipam
        .get("ranges")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        // host-local allows several ranges per set; flannel renders one.
        let r = match set.as_array().map(Vec::as_slice) {
            Some([r]) => r,
            Some([_, _, ..]) => {
                return Err(CniError::new(
                    codes::UNSUPPORTED_FIELD,
                    format!("ipam.ranges[{i}]: native mode allocates from one range per set"),
                ))
            }
            _ => {
                return Err(invalid(
                    &format!("ipam.ranges[{i}]"),
                    "must be a non-empty list",
                ))
            }
        };
        out.push(Range {
            subnet: net_field(r, "subnet")?.trunc(),
            range_start: ip_field(r, "rangeStart")?,
            range_end: ip_field(r, "rangeEnd")?,
            gateway: ip_field(r, "gateway")?,
        });
    }
    if out.is_empty() {
        return Err(invalid(
            "ipam.ranges",
            "no range: subnet.env gave neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET",
        ));
    }
    Ok(out)
}

fn routes(ipam: &Value) -> Result<Vec<PodRoute>, CniError> {
    let list = ipam
        .get("routes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|r| {
            Ok(PodRoute {
                dst: net_field(r, "dst")?,
                gw: ip_field(r, "gw")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rendered() -> Value {
        json!({"cniVersion":"1.0.0","hairpinMode":true,"ipMasq":false,"isDefaultGateway":true,
               "isGateway":true,"mtu":1450,"name":"cbr0","type":"bridge",
               "ipam":{"ranges":[[{"subnet":"10.244.3.0/24"}]],"routes":[{"dst":"10.244.0.0/16"}],"type":"host-local"}})
    }

    #[test]
    fn reads_the_flannel_rendering() {
        let c = NativeConf::from_delegate(&rendered()).unwrap();
        assert_eq!(c.bridge, "cni0");
        assert!(c.is_gateway && c.is_default_gateway && c.hairpin && !c.ip_masq);
        assert_eq!(c.mtu, Some(1450));
        assert_eq!(
            c.ranges[0].subnet,
            "10.244.3.0/24".parse::<IpNet>().unwrap()
        );
        assert_eq!(c.routes[0].dst, "10.244.0.0/16".parse::<IpNet>().unwrap());
        assert!(c.dns.is_empty());
        let mut d = rendered();
        d["dns"] =
            json!({"nameservers": ["10.96.0.10"], "search": ["svc"], "options": ["ndots:5"]});
        let c = NativeConf::from_delegate(&d).unwrap();
        assert_eq!(c.dns.nameservers, ["10.96.0.10"]);
        assert_eq!(c.dns.search, ["svc"]);
        assert_eq!(c.dns.options, ["ndots:5"]);
    }

    #[test]
    fn reads_go_spelled_delegate_keys_as_bridge_does() {
        // The user's delegate map is passed on as written; bridge and
        // host-local fold its keys, and so does native mode.
        let d = json!({"cniVersion":"1.0.0","name":"cbr0","type":"bridge","Bridge":"br9",
            "HairpinMode":true,"IPMasq":true,"MTU":1400,"isDefaultGateway":false,"IsDefaultGateway":true,
            "DNS":{"Nameservers":["10.96.0.10"]},
            "IPAM":{"Type":"host-local","Ranges":[[{"Subnet":"10.244.3.0/24","RangeStart":"10.244.3.10"}]],
                    "Routes":[{"Dst":"10.244.0.0/16"}],"DataDir":"/run/x"}});
        let c = NativeConf::from_delegate(&d).unwrap();
        assert_eq!(c.bridge, "br9");
        assert!(c.hairpin && c.ip_masq && c.is_default_gateway && c.is_gateway);
        assert_eq!(c.mtu, Some(1400));
        assert_eq!(c.dns.nameservers, ["10.96.0.10"]);
        assert_eq!(
            c.ranges[0].range_start,
            Some("10.244.3.10".parse().unwrap())
        );
        assert_eq!(c.routes[0].dst, "10.244.0.0/16".parse::<IpNet>().unwrap());
        assert_eq!(c.ipam_data_dir, Some(PathBuf::from("/run/x")));
        let mut d = rendered();
        d["MTU"] = json!("big");
        let e = NativeConf::from_delegate(&d).unwrap_err();
        assert!(e.msg.contains("delegate.mtu"), "{}", e.msg);
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        for (key, val, code) in [
            ("vlan", json!(100), codes::UNSUPPORTED_FIELD),
            ("promiscMode", json!(true), codes::INVALID_CONFIG),
            ("bridge", json!("a/b"), codes::INVALID_CONFIG),
            ("mtu", json!(10), codes::INVALID_CONFIG),
            ("isGateway", json!("yes"), codes::INVALID_CONFIG),
        ] {
            let mut d = rendered();
            d[key] = val;
            assert_eq!(
                NativeConf::from_delegate(&d).unwrap_err().code,
                code,
                "{key}"
            );
        }
        let mut d = rendered();
        d["dns"] = json!({"nameservers": "10.0.0.10"});
        let e = NativeConf::from_delegate(&d).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG);
        assert!(e.msg.contains("delegate.dns"), "{}", e.msg);
        let mut d = rendered();
        d["ipam"]["type"] = json!("dhcp");
        assert_eq!(
            NativeConf::from_delegate(&d).unwrap_err().code,
            codes::UNSUPPORTED_FIELD
        );
    }
}
