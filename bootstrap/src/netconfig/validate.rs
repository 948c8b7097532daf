//! Validation and defaults, as flannel's `CheckNetworkConfig`
//! (`pkg/subnet/config.go`) computes them, with one message per problem
//! naming the value and the rule it breaks.
//!
//! Defaults (IPv4; IPv6 in brackets):
//! - `SubnetLen`: 24 [64] when the network prefix is ≤ 22 [62], else
//!   prefix + 2; a network longer than /28 [/124] is rejected.
//! - an explicit `SubnetLen` must be ≤ 30 [126] and ≥ prefix + 2: the network
//!   must hold at least four subnets, since the first is never handed out.
//! - `SubnetMin` = the second subnet; `SubnetMax` = the last subnet.
//! - both inside the network and on a `SubnetLen` boundary; netboot also
//!   requires min ≤ max (flannel would just find no free subnet).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use super::backend::{parse_vxlan, DEFAULT_VNI, VXLAN_DEFAULT_PORT};
use super::model::{Effective, Effective4, Effective6, NetConfig, KNOWN_BACKENDS};

const MAX_VNI: i64 = (1 << 24) - 1;

/// One address family's numbers, as u128 so IPv4 and IPv6 share the code.
struct Family {
    /// "" or "IPv6": the prefix of the field names.
    pfx: &'static str,
    bits: u32,
    max_len: u32,
    min_net_prefix: u32,
    default_len: u32,
    default_len_up_to: u32,
}

const V4: Family = Family {
    pfx: "",
    bits: 32,
    max_len: 30,
    min_net_prefix: 28,
    default_len: 24,
    default_len_up_to: 22,
};
const V6: Family = Family {
    pfx: "IPv6",
    bits: 128,
    max_len: 126,
    min_net_prefix: 124,
    default_len: 64,
    default_len_up_to: 62,
};

fn ip_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn u128_ip(v: u128, bits: u32) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// Check one family; returns (subnet_len, min, max) or pushes problems.
fn check_family(
    f: &Family,
    net: (IpAddr, u32),
    cfg: (Option<u32>, Option<IpAddr>, Option<IpAddr>),
    net_text: &str,
    errs: &mut Vec<String>,
) -> Option<(u8, IpAddr, IpAddr)> {
    let (net_ip, prefix) = net;
    let (len, min, max) = cfg;
    let p = f.pfx;
    let net_field = if p.is_empty() {
        "Network"
    } else {
        "IPv6Network"
    };
    let len = match len {
        Some(l) if l > f.max_len => {
            errs.push(format!(
                "{p}SubnetLen {l} is too long: it must be at most {}, so each node's \
                 subnet has room for its gateway and pods",
                f.max_len
            ));
            return None;
        }
        Some(l) if l < prefix + 2 => {
            errs.push(format!(
                "{p}SubnetLen {l} does not fit {net_field} {net_text}: it must be at least {} \
                 (the prefix + 2), so the network holds at least four subnets; flannel never \
                 hands out the first one",
                prefix + 2
            ));
            return None;
        }
        Some(l) => l,
        None if prefix > f.min_net_prefix => {
            errs.push(format!(
                "{net_field} {net_text} is too small: flannel needs a /{} or larger network",
                f.min_net_prefix
            ));
            return None;
        }
        None if prefix <= f.default_len_up_to => f.default_len,
        None => prefix + 2,
    };
    let size: u128 = 1u128 << (f.bits - len);
    let base = ip_u128(net_ip);
    let net_size: u128 = if prefix == 0 && f.bits == 128 {
        u128::MAX
    } else {
        (1u128 << (f.bits - prefix)) - 1
    };
    let last = base + net_size; // last address of the network
    let inside = |a: u128| a >= base && a <= last;
    let mut ok = true;
    let mut bound = |name: &str, given: Option<IpAddr>, default: u128| -> u128 {
        let Some(a) = given else { return default };
        let v = ip_u128(a);
        if !inside(v) {
            errs.push(format!(
                "{p}{name} {a} is outside {net_field} {net_text}: it must lie inside the network"
            ));
            ok = false;
        } else if v % size != 0 {
            errs.push(format!(
                "{p}{name} {a} is not on a subnet boundary: with {p}SubnetLen {len} it must be \
                 a multiple of /{len}, e.g. {}",
                u128_ip(v - v % size, f.bits)
            ));
            ok = false;
        }
        v
    };
    let min_v = bound("SubnetMin", min, base + size);
    let max_v = bound("SubnetMax", max, last + 1 - size);
    if ok && min_v > max_v {
        errs.push(format!(
            "{p}SubnetMin {} is above {p}SubnetMax {}: min must be at most max",
            u128_ip(min_v, f.bits),
            u128_ip(max_v, f.bits)
        ));
        ok = false;
    }
    ok.then(|| (len as u8, u128_ip(min_v, f.bits), u128_ip(max_v, f.bits)))
}

impl NetConfig {
    /// Validate and fill in flannel's defaults. Every problem found is
    /// returned, one message each.
    pub fn check(&self) -> Result<Effective, Vec<String>> {
        let mut errs = Vec::new();
        if !self.enable_ipv4 && !self.enable_ipv6 {
            errs.push("EnableIPv4 and EnableIPv6 are both false: enable at least one".into());
        }
        let mut v4 = None;
        if self.enable_ipv4 {
            match self.network {
                None => errs.push(
                    "Network is missing: it is required while EnableIPv4 is true (the default)"
                        .into(),
                ),
                Some(n) => {
                    let r = check_family(
                        &V4,
                        (IpAddr::V4(n.network()), u32::from(n.prefix_len())),
                        (
                            self.subnet_len,
                            self.subnet_min.map(IpAddr::V4),
                            self.subnet_max.map(IpAddr::V4),
                        ),
                        &n.to_string(),
                        &mut errs,
                    );
                    v4 = r.map(|(len, min, max)| Effective4 {
                        network: n,
                        subnet_len: len,
                        subnet_min: as_v4(min),
                        subnet_max: as_v4(max),
                    });
                }
            }
        }
        let mut v6 = None;
        if self.enable_ipv6 {
            match self.ipv6_network {
                None => errs
                    .push("IPv6Network is missing: it is required while EnableIPv6 is true".into()),
                Some(n) => {
                    let r = check_family(
                        &V6,
                        (IpAddr::V6(n.network()), u32::from(n.prefix_len())),
                        (
                            self.ipv6_subnet_len,
                            self.ipv6_subnet_min.map(IpAddr::V6),
                            self.ipv6_subnet_max.map(IpAddr::V6),
                        ),
                        &n.to_string(),
                        &mut errs,
                    );
                    v6 = r.map(|(len, min, max)| Effective6 {
                        network: n,
                        subnet_len: len,
                        subnet_min: as_v6(min),
                        subnet_max: as_v6(max),
                    });
                }
            }
        }
        let (backend, vni, port, other) = self.check_backend(&mut errs);
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Effective {
            v4,
            v6,
            enable_nftables: self.enable_nftables,
            backend,
            vni,
            port,
            backend_other: other,
        })
    }

    #[allow(clippy::type_complexity)]
    fn check_backend(
        &self,
        errs: &mut Vec<String>,
    ) -> (String, Option<u32>, Option<u16>, Vec<(String, Value)>) {
        let Some(b) = &self.backend else {
            errs.push(
                "Backend is missing: flanneld would fall back to the udp backend; \
                 set {\"Type\":\"vxlan\"} or {\"Type\":\"host-gw\"}"
                    .into(),
            );
            return (String::new(), None, None, Vec::new());
        };
        if b.kind.is_empty() {
            errs.push("Backend has no Type: it must be one of vxlan, host-gw".into());
        } else if !KNOWN_BACKENDS.contains(&b.kind.as_str()) {
            errs.push(format!(
                "Backend type {:?} is not supported: it must be one of {} (flannel's names are \
                 case-sensitive)",
                b.kind,
                KNOWN_BACKENDS.join(", ")
            ));
        }
        let (mut vni, mut port) = (None, None);
        if b.kind == "vxlan" {
            let v = b.vni.unwrap_or(i64::from(DEFAULT_VNI));
            if !(0..=MAX_VNI).contains(&v) {
                errs.push(format!(
                    "Backend VNI {v} is out of range: a VXLAN network identifier is 0 to {MAX_VNI}"
                ));
            }
            let p = b.port.unwrap_or(0);
            if !(0..=65535).contains(&p) {
                errs.push(format!(
                    "Backend Port {p} is out of range: a UDP port is 0 to 65535 (0 = 8472)"
                ));
            }
            vni = u32::try_from(v).ok();
            port = u16::try_from(p)
                .ok()
                .map(|p| if p == 0 { VXLAN_DEFAULT_PORT } else { p });
        }
        let mut other = b.other.clone();
        if b.kind == "vxlan" {
            if let Err(e) = parse_vxlan(&other) {
                errs.extend(e);
            }
        }
        other.sort_by(|x, y| x.0.cmp(&y.0));
        (b.kind.clone(), vni, port, other)
    }
}

fn as_v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!("IPv4 family yields IPv4 addresses"),
    }
}

fn as_v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => unreachable!("IPv6 family yields IPv6 addresses"),
    }
}

impl Effective {
    /// Every setting as (canonical field name, value), defaults included: what
    /// `config` prints and what a diff compares.
    pub fn fields(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: String| out.push((k.to_string(), v));
        if let Some(v4) = &self.v4 {
            push("Network", v4.network.to_string());
            push("SubnetLen", v4.subnet_len.to_string());
            push("SubnetMin", v4.subnet_min.to_string());
            push("SubnetMax", v4.subnet_max.to_string());
        } else {
            push("EnableIPv4", "false".into());
        }
        if let Some(v6) = &self.v6 {
            push("IPv6Network", v6.network.to_string());
            push("IPv6SubnetLen", v6.subnet_len.to_string());
            push("IPv6SubnetMin", v6.subnet_min.to_string());
            push("IPv6SubnetMax", v6.subnet_max.to_string());
        }
        if self.enable_nftables {
            push("EnableNFTables", "true".into());
        }
        push("Backend.Type", self.backend.clone());
        if let Some(v) = self.vni {
            push("Backend.VNI", v.to_string());
        }
        if let Some(p) = self.port {
            push("Backend.Port", p.to_string());
        }
        for (k, v) in &self.backend_other {
            push(&format!("Backend.{k}"), v.to_string());
        }
        out
    }
}

/// Lines describing how `new` differs from `old` ("-"/"+" per field).
pub fn diff_fields(old: &[(String, String)], new: &[(String, String)]) -> Vec<String> {
    let mut keys: Vec<&String> = old.iter().map(|(k, _)| k).collect();
    for (k, _) in new {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let get = |set: &[(String, String)], k: &str| {
        set.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone())
    };
    let mut out = Vec::new();
    for k in keys {
        let (a, b) = (get(old, k), get(new, k));
        if a != b {
            let show = |v: Option<String>| v.unwrap_or_else(|| "(unset)".into());
            out.push(format!("  {k}: {} -> {}", show(a), show(b)));
        }
    }
    out
}
