//! Pre-1.0 result shapes and libcni's conversions to and from them.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::types::{opt_ip, CniResult, Dns, Interface, IpConfig, Route};
use crate::error::{codes, CniError};

/// One `ip4`/`ip6` entry of a 0.1.0/0.2.0 result.
#[derive(Debug, Serialize, Deserialize)]
struct IpV02 {
    ip: IpNet,
    #[serde(
        default,
        deserialize_with = "opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
}

/// A 0.1.0/0.2.0 result (libcni `types020.Result`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct ResultV02 {
    #[serde(rename = "cniVersion")]
    cni_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip4: Option<IpV02>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip6: Option<IpV02>,
    #[serde(skip_serializing_if = "Dns::is_empty")]
    dns: Dns,
}

/// Up-conversion (libcni `types040.convertFrom02x`): `ip4` then `ip6`
/// become `ips`, their routes are appended to `routes` in that order, and
/// there are no interfaces to point at.
pub(super) fn from_v02(v: &Value) -> Result<CniResult, CniError> {
    let old: ResultV02 = serde_json::from_value(v.clone())?;
    let mut out = CniResult {
        dns: old.dns,
        ..CniResult::default()
    };
    for ip in [old.ip4, old.ip6].into_iter().flatten() {
        out.ips.push(IpConfig {
            interface: None,
            address: ip.ip,
            gateway: ip.gateway,
        });
        out.routes
            .extend(ip.routes.into_iter().map(|r| Route::new(r.dst, r.gw)));
    }
    Ok(out)
}

/// Down-conversion (libcni `types040.convertTo02x`): only the first address
/// of each family survives; routes go to the entry of their destination's
/// family and are dropped if that family has no address; 0.2.0 cannot
/// express a result without any address, so that is an error.
pub(super) fn to_v02(r: &CniResult, version: &str) -> Result<Value, CniError> {
    let pick = |want_v4: bool| {
        r.ips
            .iter()
            .find(|ip| is_v4(&ip.address) == want_v4)
            .map(|ip| IpV02 {
                ip: ip.address,
                gateway: ip.gateway,
                routes: r
                    .routes
                    .iter()
                    .filter(|rt| is_v4(&rt.dst) == want_v4)
                    .map(|rt| Route::new(rt.dst, rt.gw))
                    .collect(),
            })
    };
    let out = ResultV02 {
        cni_version: version.to_string(),
        ip4: pick(true),
        ip6: pick(false),
        dns: r.dns.clone(),
    };
    if out.ip4.is_none() && out.ip6.is_none() {
        return Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("cannot convert result to {version}: no IP addresses, and {version} results need one"),
        ));
    }
    serde_json::to_value(&out).map_err(|e| CniError::internal(format!("encoding result: {e}")))
}

fn is_v4(net: &IpNet) -> bool {
    matches!(net, IpNet::V4(_))
}

/// Down-conversion to 0.3.x/0.4.0 (libcni `types100.convertTo04x`):
/// interfaces keep name/mac/sandbox, every IP gains `"version": "4"|"6"`
/// (placed first, as Go's struct order does), routes keep dst/gw.
pub(super) fn to_v04(r: &CniResult, version: &str) -> Value {
    let mut m = Map::new();
    m.insert("cniVersion".into(), Value::from(version));
    if !r.interfaces.is_empty() {
        let ifaces = r.interfaces.iter().map(interface_v04).collect();
        m.insert("interfaces".into(), Value::Array(ifaces));
    }
    if !r.ips.is_empty() {
        m.insert(
            "ips".into(),
            Value::Array(r.ips.iter().map(ip_v04).collect()),
        );
    }
    if !r.routes.is_empty() {
        let routes = r
            .routes
            .iter()
            .map(|rt| to_json(&Route::new(rt.dst, rt.gw)))
            .collect();
        m.insert("routes".into(), Value::Array(routes));
    }
    if !r.dns.is_empty() {
        m.insert("dns".into(), to_json(&r.dns));
    }
    Value::Object(m)
}

fn interface_v04(i: &Interface) -> Value {
    to_json(&Interface {
        name: i.name.clone(),
        mac: i.mac.clone(),
        sandbox: i.sandbox.clone(),
        ..Interface::default()
    })
}

fn ip_v04(ip: &IpConfig) -> Value {
    let mut m = Map::new();
    let family = if is_v4(&ip.address) { "4" } else { "6" };
    m.insert("version".into(), Value::from(family));
    if let Some(i) = ip.interface {
        m.insert("interface".into(), Value::from(i));
    }
    m.insert("address".into(), Value::from(ip.address.to_string()));
    if let Some(gw) = ip.gateway {
        m.insert("gateway".into(), Value::from(gw.to_string()));
    }
    Value::Object(m)
}

/// Serializing our own plain structs cannot fail; `Null` keeps this total.
fn to_json<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}
