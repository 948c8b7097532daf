//! The network config's model: as stored in etcd ([`NetConfig`], absent
//! keys kept absent) and as flanneld runs it ([`Effective`], every default
//! filled in).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

/// Backends netboot supports (flannel has more: udp, ipip, wireguard, ...).
pub const KNOWN_BACKENDS: &[&str] = &["vxlan", "host-gw"];

/// The network config as stored: `None` means the key was absent (flannel
/// then computes a default).
#[derive(Debug, Clone, PartialEq)]
pub struct NetConfig {
    pub enable_ipv4: bool,
    pub enable_ipv6: bool,
    pub enable_nftables: bool,
    pub network: Option<Ipv4Net>,
    pub subnet_len: Option<u32>,
    pub subnet_min: Option<Ipv4Addr>,
    pub subnet_max: Option<Ipv4Addr>,
    pub ipv6_network: Option<Ipv6Net>,
    pub ipv6_subnet_len: Option<u32>,
    pub ipv6_subnet_min: Option<Ipv6Addr>,
    pub ipv6_subnet_max: Option<Ipv6Addr>,
    /// `None`: no Backend key, which flanneld treats as `udp`.
    pub backend: Option<Backend>,
}

impl Default for NetConfig {
    /// flannel's starting point: IPv4 enabled, everything else unset.
    fn default() -> Self {
        NetConfig {
            enable_ipv4: true,
            enable_ipv6: false,
            enable_nftables: false,
            network: None,
            subnet_len: None,
            subnet_min: None,
            subnet_max: None,
            ipv6_network: None,
            ipv6_subnet_len: None,
            ipv6_subnet_min: None,
            ipv6_subnet_max: None,
            backend: None,
        }
    }
}

/// The `Backend` object: its `Type`, the vxlan `VNI` and `Port`, and any
/// other keys (`DirectRouting`, `GBP`, `MTU`, ...) kept as they were.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Backend {
    pub kind: String,
    pub vni: Option<i64>,
    pub port: Option<i64>,
    pub other: Vec<(String, Value)>,
}

impl Backend {
    /// A backend of type `kind` with flannel's defaults for the rest.
    pub fn new(kind: impl Into<String>) -> Backend {
        Backend {
            kind: kind.into(),
            ..Backend::default()
        }
    }
}

/// The IPv4 half of a config with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective4 {
    pub network: Ipv4Net,
    pub subnet_len: u8,
    pub subnet_min: Ipv4Addr,
    pub subnet_max: Ipv4Addr,
}

/// The IPv6 half of a config with every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective6 {
    pub network: Ipv6Net,
    pub subnet_len: u8,
    pub subnet_min: Ipv6Addr,
    pub subnet_max: Ipv6Addr,
}

/// A valid config as flanneld would run it: the basis of "same config".
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub v4: Option<Effective4>,
    pub v6: Option<Effective6>,
    pub enable_nftables: bool,
    pub backend: String,
    /// vxlan only (None for host-gw).
    pub vni: Option<u32>,
    /// vxlan only; 0 is normalised to 8472.
    pub port: Option<u16>,
    /// Other backend keys (DirectRouting, MTU, ...), compared verbatim.
    pub backend_other: Vec<(String, Value)>,
}
