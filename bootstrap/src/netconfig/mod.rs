//! flannel's network config (`<prefix>/config` in etcd): the model, a reader
//! that accepts what flannel accepts (`pkg/subnet/config.go` `ParseConfig`,
//! decoded with Go's case-insensitive `encoding/json`), a writer that emits
//! flannel's canonical spelling, validation and defaults as flannel's
//! `CheckNetworkConfig` computes them, and semantic comparison.

mod backend;
mod model;
mod validate;

pub use backend::{device_name, VxlanOptions};
pub use model::{Backend, Effective, NetConfig};
pub use validate::diff_fields;

use cni::gojson::{self, kind_of, GoValue, Members};
use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{Map, Value};

/// A config that could not be read: every problem found, one per line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(pub Vec<String>);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ParseError {}

impl NetConfig {
    /// Read a stored config as flanneld does: keys match case-insensitively
    /// (the last matching key wins), unknown keys are ignored, `null` leaves
    /// a number or boolean at its default. Type errors are collected.
    pub fn parse(text: &[u8]) -> Result<NetConfig, ParseError> {
        let m = gojson::parse_object(text).map_err(|e| ParseError(vec![e]))?;
        let mut errs = Vec::new();
        let mut cfg = NetConfig::default();
        let mut r = Reader {
            m: &m,
            errs: &mut errs,
        };
        if let Some(b) = r.bool("EnableIPv4") {
            cfg.enable_ipv4 = b;
        }
        cfg.enable_ipv6 = r.bool("EnableIPv6").unwrap_or(false);
        cfg.enable_nftables = r.bool("EnableNFTables").unwrap_or(false);
        cfg.network = r.parsed("Network", "an IPv4 CIDR", parse_v4_cidr);
        cfg.ipv6_network = r.parsed("IPv6Network", "an IPv6 CIDR", parse_v6_cidr);
        cfg.subnet_min = r.parsed("SubnetMin", "an IPv4 address", |s| s.parse().ok());
        cfg.subnet_max = r.parsed("SubnetMax", "an IPv4 address", |s| s.parse().ok());
        cfg.ipv6_subnet_min = r.parsed("IPv6SubnetMin", "an IPv6 address", |s| s.parse().ok());
        cfg.ipv6_subnet_max = r.parsed("IPv6SubnetMax", "an IPv6 address", |s| s.parse().ok());
        cfg.subnet_len = r.uint("SubnetLen");
        cfg.ipv6_subnet_len = r.uint("IPv6SubnetLen");
        cfg.backend = match m.field("Backend") {
            None => None,
            Some(GoValue::Object(b)) => Some(parse_backend(b, &mut errs)),
            // `json.RawMessage` takes null as-is and flannel then fails to
            // decode its Type; any other non-object fails the same way.
            Some(other) => {
                errs.push(format!(
                    "Backend must be an object like {{\"Type\":\"vxlan\"}}, found {}",
                    kind_of(&other.to_value())
                ));
                None
            }
        };
        // Go treats the zero value as "unset" for these (config.go compares
        // with 0 / IsEmpty).
        cfg.subnet_len = cfg.subnet_len.filter(|&l| l != 0);
        cfg.ipv6_subnet_len = cfg.ipv6_subnet_len.filter(|&l| l != 0);
        cfg.subnet_min = cfg.subnet_min.filter(|a| !a.is_unspecified());
        cfg.subnet_max = cfg.subnet_max.filter(|a| !a.is_unspecified());
        cfg.ipv6_subnet_min = cfg.ipv6_subnet_min.filter(|a| !a.is_unspecified());
        cfg.ipv6_subnet_max = cfg.ipv6_subnet_max.filter(|a| !a.is_unspecified());
        if errs.is_empty() {
            Ok(cfg)
        } else {
            Err(ParseError(errs))
        }
    }

    /// flannel's canonical JSON: Go field spelling, only keys that are set
    /// (plus `EnableIPv4:false` / `EnableIPv6:true` when they differ from
    /// flannel's defaults), in the Go struct's order, compact.
    pub fn to_value(&self) -> Value {
        let mut o = Map::new();
        if !self.enable_ipv4 {
            o.insert("EnableIPv4".into(), false.into());
        }
        if self.enable_ipv6 {
            o.insert("EnableIPv6".into(), true.into());
        }
        if self.enable_nftables {
            o.insert("EnableNFTables".into(), true.into());
        }
        put(&mut o, "Network", self.network);
        put(&mut o, "IPv6Network", self.ipv6_network);
        put(&mut o, "SubnetMin", self.subnet_min);
        put(&mut o, "SubnetMax", self.subnet_max);
        put(&mut o, "IPv6SubnetMin", self.ipv6_subnet_min);
        put(&mut o, "IPv6SubnetMax", self.ipv6_subnet_max);
        if let Some(l) = self.subnet_len {
            o.insert("SubnetLen".into(), l.into());
        }
        if let Some(l) = self.ipv6_subnet_len {
            o.insert("IPv6SubnetLen".into(), l.into());
        }
        if let Some(b) = &self.backend {
            let mut bo = Map::new();
            bo.insert("Type".into(), b.kind.clone().into());
            if let Some(v) = b.vni {
                bo.insert("VNI".into(), v.into());
            }
            if let Some(p) = b.port {
                bo.insert("Port".into(), p.into());
            }
            for (k, v) in &b.other {
                bo.insert(k.clone(), v.clone());
            }
            o.insert("Backend".into(), Value::Object(bo));
        }
        Value::Object(o)
    }

    /// [`NetConfig::to_value`] as compact text: what `init` stores.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

fn put<T: ToString>(o: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        o.insert(key.into(), v.to_string().into());
    }
}

/// Go's `net.ParseCIDR` keeps the network part: `10.2.1.5/16` reads as
/// `10.2.0.0/16` (flannel `IP4Net.UnmarshalJSON`).
fn parse_v4_cidr(s: &str) -> Option<Ipv4Net> {
    s.parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

fn parse_v6_cidr(s: &str) -> Option<Ipv6Net> {
    s.parse::<Ipv6Net>().ok().map(|n| n.trunc())
}

fn parse_backend(b: &Members, errs: &mut Vec<String>) -> Backend {
    let mut r = Reader { m: b, errs };
    let kind = match b.field("Type") {
        None | Some(GoValue::Scalar(Value::Null)) => String::new(),
        Some(GoValue::Scalar(Value::String(s))) => s.clone(),
        Some(other) => {
            r.errs.push(format!(
                "Backend.Type must be a string, found {}",
                kind_of(&other.to_value())
            ));
            String::new()
        }
    };
    Backend {
        kind,
        vni: r.int("VNI"),
        port: r.int("Port"),
        other: b.unknown(&["Type", "VNI", "Port"]),
    }
}

/// Typed field access with Go's rules; problems go to `errs`.
struct Reader<'a> {
    m: &'a Members,
    errs: &'a mut Vec<String>,
}

impl Reader<'_> {
    fn scalar(&self, field: &str) -> Option<Value> {
        match self.m.field(field)? {
            GoValue::Scalar(v) => Some(v.clone()),
            other => Some(other.to_value()),
        }
    }

    fn bool(&mut self, field: &str) -> Option<bool> {
        match self.scalar(field)? {
            Value::Null => None,
            Value::Bool(b) => Some(b),
            v => {
                self.errs.push(format!(
                    "{field} must be true or false, found {} {v}",
                    kind_of(&v)
                ));
                None
            }
        }
    }

    /// Go `uint`: a non-negative integer literal.
    fn uint(&mut self, field: &str) -> Option<u32> {
        match self.scalar(field)? {
            Value::Null => None,
            Value::Number(n) if n.as_u64().is_some_and(|v| v <= u64::from(u32::MAX)) => {
                n.as_u64().map(|v| v as u32)
            }
            v => {
                self.errs.push(format!(
                    "{field} must be a whole number such as 24, found {v}"
                ));
                None
            }
        }
    }

    /// Go `int`.
    fn int(&mut self, field: &str) -> Option<i64> {
        match self.scalar(field)? {
            Value::Null => None,
            Value::Number(n) if n.as_i64().is_some() => n.as_i64(),
            v => {
                self.errs
                    .push(format!("Backend.{field} must be a whole number, found {v}"));
                None
            }
        }
    }

    /// A string field decoded by `f`. flannel's IP types reject `null` (their
    /// UnmarshalJSON is called with it and fails to parse it).
    fn parsed<T>(&mut self, field: &str, what: &str, f: impl Fn(&str) -> Option<T>) -> Option<T> {
        let v = self.scalar(field)?;
        // `IPv6SubnetMin/Max` are pointers in Go: null leaves them nil.
        if v.is_null() && field.starts_with("IPv6Subnet") {
            return None;
        }
        let parsed = v.as_str().and_then(&f);
        if parsed.is_none() {
            self.errs.push(format!("{field} must be {what}, found {v}"));
        }
        parsed
    }
}

/// Same config for flanneld: both valid with equal effective settings, or
/// (when either is invalid) identical canonical JSON.
pub fn same_config(a: &NetConfig, b: &NetConfig) -> bool {
    match (a.check(), b.check()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.to_value() == b.to_value(),
    }
}

/// Field-by-field difference from `old` to `new` (defaults filled in when
/// both are valid, raw keys otherwise).
pub fn diff(old: &NetConfig, new: &NetConfig) -> Vec<String> {
    let fields = |c: &NetConfig| match c.check() {
        Ok(e) => e.fields(),
        Err(_) => raw_fields(&c.to_value(), ""),
    };
    diff_fields(&fields(old), &fields(new))
}

fn raw_fields(v: &Value, pfx: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(o) = v {
        for (k, v) in o {
            match v {
                Value::Object(_) => out.extend(raw_fields(v, &format!("{pfx}{k}."))),
                Value::String(s) => out.push((format!("{pfx}{k}"), s.clone())),
                v => out.push((format!("{pfx}{k}"), v.to_string())),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
