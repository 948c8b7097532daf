//! `runtimeConfig.ipRanges`: the runtime's override of the IPAM ranges
//! (CNI CONVENTIONS.md capability `ipRanges`, read by host-local).
//!
//! A list of range sets, each a list of ranges `{subnet, rangeStart,
//! rangeEnd, gateway}`, validated here the way host-local's
//! `Range.Canonicalize` (plugins/ipam/host-local/backend/allocator
//! `range.go`) validates a range, with errors that name the field
//! (`runtimeConfig.ipRanges[0][0].rangeStart`). Keys arrive canonical:
//! the config is read with Go's key rule ([`cni::gojson`], `conf::SCHEMA`),
//! so containerd's go-cni spelling (`Subnet`, `RangeStart`, `RangeEnd`,
//! `Gateway`: its `IPRanges` struct has no JSON tags) reads as podman's and
//! libcni's lower-camel names.
//!
//! host-local *prepends* these sets to `ipam.ranges` and then refuses any
//! two that overlap ("range set 0 overlaps with 1", config.go
//! LoadIPAMConfig), so a narrower range inside the node's subnet, the
//! point of the capability under flannel, could never work there. netboot
//! renders the delegate's `ipam.ranges` as the runtime's sets followed by
//! the configured sets that overlap none of them, and takes `ipRanges` out
//! of the delegate's `runtimeConfig` (see `flannel::bridge_delegate`): a
//! runtime range inside the node subnet replaces it, a node subnet of the
//! other family is kept, and native mode and host-local read the same
//! `ipam.ranges`. Native mode allocates from one range per set and refuses
//! a set of several (code 2); host-local (bridge mode) takes them. In
//! flannel mode the upstream flannel binary renders the delegate, so
//! host-local's overlap error stands there.

use cni::error::{codes, CniError};
use ipnet::IpNet;
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// One range of a set, as host-local's `Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRange {
    pub subnet: IpNet,
    pub range_start: Option<IpAddr>,
    pub range_end: Option<IpAddr>,
    pub gateway: Option<IpAddr>,
}

impl IpRange {
    /// host-local's own spelling, for the rendered `ipam.ranges`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("subnet".into(), json!(self.subnet.to_string()));
        for (k, v) in [
            ("rangeStart", self.range_start),
            ("rangeEnd", self.range_end),
            ("gateway", self.gateway),
        ] {
            if let Some(ip) = v {
                m.insert(k.into(), json!(ip.to_string()));
            }
        }
        Value::Object(m)
    }
}

/// Do two subnets share an address?
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn invalid(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid config: {field}: {msg}"),
    )
}

/// Parses and validates the value of `runtimeConfig.ipRanges`.
pub fn parse(v: &Value) -> Result<Vec<Vec<IpRange>>, CniError> {
    const FIELD: &str = "runtimeConfig.ipRanges";
    let Value::Array(sets) = v else {
        return Err(invalid(
            FIELD,
            format!("must be a list of range sets, got {v}"),
        ));
    };
    let mut out = Vec::with_capacity(sets.len());
    for (i, set) in sets.iter().enumerate() {
        let at = format!("{FIELD}[{i}]");
        let ranges = match set {
            Value::Array(r) if !r.is_empty() => r,
            _ => return Err(invalid(&at, "must be a non-empty list of ranges")),
        };
        let parsed = ranges
            .iter()
            .enumerate()
            .map(|(j, r)| parse_range(r, &format!("{at}[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        out.push(parsed);
    }
    Ok(out)
}

fn parse_range(r: &Value, at: &str) -> Result<IpRange, CniError> {
    let Value::Object(obj) = r else {
        return Err(invalid(at, format!("must be an object, got {r}")));
    };
    let field = |k: &str| format!("{at}.{k}");
    let subnet: IpNet = match obj.get("subnet") {
        Some(Value::String(s)) => s
            .parse()
            .map_err(|_| invalid(&field("subnet"), format!("{s:?} is not a CIDR")))?,
        _ => {
            return Err(invalid(
                &field("subnet"),
                "is required and must be a CIDR string",
            ))
        }
    };
    // host-local: "Network has host bits set", "network ... too small".
    if subnet != subnet.trunc() {
        return Err(invalid(
            &field("subnet"),
            format!(
                "{subnet} has host bits set (the network is {})",
                subnet.trunc()
            ),
        ));
    }
    if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
        return Err(invalid(
            &field("subnet"),
            format!("{subnet} is too small to allocate from"),
        ));
    }
    let ip = |k: &str, inside: bool| -> Result<Option<IpAddr>, CniError> {
        let s = match obj.get(k) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) if s.is_empty() => return Ok(None),
            Some(Value::String(s)) => s,
            Some(other) => {
                return Err(invalid(&field(k), format!("must be a string, got {other}")))
            }
        };
        let a: IpAddr = s
            .parse()
            .map_err(|_| invalid(&field(k), format!("{s:?} is not an IP address")))?;
        if a.is_ipv4() != subnet.addr().is_ipv4() {
            return Err(invalid(
                &field(k),
                format!("{a} is not of {subnet}'s family"),
            ));
        }
        if inside && !subnet.contains(&a) {
            return Err(invalid(&field(k), format!("{a} is not in {subnet}")));
        }
        Ok(Some(a))
    };
    let r = IpRange {
        subnet,
        range_start: ip("rangeStart", true)?,
        range_end: ip("rangeEnd", true)?,
        // host-local checks only the gateway's family.
        gateway: ip("gateway", false)?,
    };
    if let (Some(s), Some(e)) = (r.range_start, r.range_end) {
        if s > e {
            return Err(invalid(
                &field("rangeEnd"),
                format!("{e} is before rangeStart {s}"),
            ));
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_bad_ranges_naming_the_field() {
        for (v, field) in [
            (json!({}), "runtimeConfig.ipRanges:"),
            (json!([[]]), "runtimeConfig.ipRanges[0]:"),
            (json!([["x"]]), "runtimeConfig.ipRanges[0][0]:"),
            (json!([[{"rangeStart":"10.0.0.5"}]]), "[0][0].subnet"),
            (json!([[{"subnet":"10.0.0.0/33"}]]), "[0][0].subnet"),
            (json!([[{"subnet":"10.0.0.1/24"}]]), "[0][0].subnet"),
            (json!([[{"subnet":"10.0.0.0/31"}]]), "[0][0].subnet"),
            (
                json!([[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.1.0/24","rangeStart":"10.0.0.9"}]]),
                "[1][0].rangeStart",
            ),
            (
                json!([[{"subnet":"10.0.0.0/24","rangeEnd":"fd00::1"}]]),
                "[0][0].rangeEnd",
            ),
            (
                json!([[{"subnet":"10.0.0.0/24","gateway":"fd00::1"}]]),
                "[0][0].gateway",
            ),
            (
                json!([[{"subnet":"10.0.0.0/24","gateway":7}]]),
                "[0][0].gateway",
            ),
            (
                json!([[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.9","rangeEnd":"10.0.0.2"}]]),
                "[0][0].rangeEnd",
            ),
        ] {
            let e = parse(&v).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{v}");
            assert!(e.msg.contains(field), "{v}: {}", e.msg);
        }
    }

    #[test]
    fn overlap_is_containment_either_way() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(overlaps(&n("10.2.1.0/24"), &n("10.2.1.0/26")));
        assert!(overlaps(&n("10.2.1.64/26"), &n("10.2.0.0/16")));
        assert!(!overlaps(&n("10.2.1.0/24"), &n("10.2.2.0/24")));
        assert!(!overlaps(&n("10.2.1.0/24"), &n("fd00::/64")));
    }
}
