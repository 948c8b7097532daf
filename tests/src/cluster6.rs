//! The backend and IPv6 side of the namespace cluster ([`crate::cluster`]),
//! for `tests/agent_backends.rs`:
//! - an IPv6 underlay address per node (`fd00:100::<host>/64`, `nodad` so
//!   that it is usable at once);
//! - flanneld's lease keys and values, built from flannel's formats
//!   (`pkg/subnet/subnet.go` MakeSubnetKey, Go's `json.Marshal` of
//!   `pkg/lease` LeaseAttrs) and read back, by this file's own code, never
//!   netboot's;
//! - the kernel state a backend leaves (gateway routes, permanent
//!   neighbour and FDB entries, addresses) read as sorted lines.
//!
//! The "foreign" node running flanneld's data plane is in
//! [`crate::foreign`].

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::Value;

use crate::cluster::{wait_until, PREFIX, UNDERLAY};
use crate::exec::{nsenter, run};
use crate::netns::Netns;

/// The IPv4 cluster network of the backend tests.
pub const NETWORK4: &str = "10.2.0.0/16";
/// The IPv6 cluster network of the backend tests.
pub const NETWORK6: &str = "fd42:10::/56";
/// flannel's default vxlan VNI.
pub const VNI: u32 = 1;
/// The kernel's vxlan port, flannel's default.
pub const VXLAN_PORT: u16 = 8472;

/// A node's IPv6 underlay address: `fd00:100::<host>` (the host number
/// written as hex digits, as its IPv4 address ends in it).
pub fn underlay6(host: u8) -> Ipv6Addr {
    format!("fd00:100::{host}")
        .parse()
        .expect("IPv6 underlay address")
}

/// A node's IPv4 underlay address.
pub fn underlay4(host: u8) -> Ipv4Addr {
    format!("{UNDERLAY}.{host}")
        .parse()
        .expect("IPv4 underlay address")
}

/// Give the `eth0` of a namespace attached by
/// [`crate::cluster::Underlay::attach`] its IPv6 underlay address, without
/// duplicate address detection.
pub fn add_underlay6(ns: &Netns, host: u8) {
    let addr = format!("{}/64", underlay6(host));
    ns.exec(&["ip", "-6", "addr", "add", &addr, "dev", "eth0", "nodad"])
        .expect_ok();
}

/// The two backends flanneld and netboot share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vxlan,
    HostGw,
}

impl Backend {
    /// flannel's BackendType.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }
}

/// flanneld's vxlan device for a family.
pub fn vxlan_dev(v6: bool) -> String {
    if v6 {
        format!("flannel-v6.{VNI}")
    } else {
        format!("flannel.{VNI}")
    }
}

/// flannel's MakeSubnetKey under the default prefix: `10.2.3.0-24`,
/// `10.2.3.0-24&fd42:10:0:3::-64`, IPv6-only `0.0.0.0-0&fd42:10:0:3::-64`.
pub fn flannel_key(v4: Option<Ipv4Net>, v6: Option<Ipv6Net>) -> String {
    let a = v4.map_or("0.0.0.0-0".to_string(), |n| {
        format!("{}-{}", n.network(), n.prefix_len())
    });
    match v6 {
        Some(n) => format!("{PREFIX}/subnets/{a}&{}-{}", n.network(), n.prefix_len()),
        None => format!("{PREFIX}/subnets/{a}"),
    }
}

/// Go's `json.Marshal` of flannel's LeaseAttrs: PublicIP (`0.0.0.0` when
/// IPv4 is off), PublicIPv6 (`null` when off), BackendType, then
/// BackendData and BackendV6Data (`{"VNI":1,"VtepMAC":"…"}`), each left out
/// when empty (host-gw writes neither).
pub fn flannel_value(
    public_ip: Option<Ipv4Addr>,
    public_ipv6: Option<Ipv6Addr>,
    backend: Backend,
    mac4: Option<&str>,
    mac6: Option<&str>,
) -> String {
    let v6 = public_ipv6.map_or("null".to_string(), |a| format!("\"{a}\""));
    let mut s = format!(
        "{{\"PublicIP\":\"{}\",\"PublicIPv6\":{v6},\"BackendType\":\"{}\"",
        public_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        backend.name()
    );
    for (field, mac) in [("BackendData", mac4), ("BackendV6Data", mac6)] {
        if let Some(m) = mac {
            s.push_str(&format!(
                ",\"{field}\":{{\"VNI\":{VNI},\"VtepMAC\":\"{m}\"}}"
            ));
        }
    }
    s.push('}');
    s
}

/// A lease as the test reads it from etcd (its own parse of flannel's
/// formats).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerLease {
    pub subnet4: Option<Ipv4Net>,
    pub subnet6: Option<Ipv6Net>,
    /// `None` for `0.0.0.0`.
    pub public_ip: Option<Ipv4Addr>,
    pub public_ipv6: Option<Ipv6Addr>,
    pub mac4: Option<String>,
    pub mac6: Option<String>,
}

impl PeerLease {
    /// Parse a key `…/subnets/<v4>-<len>[&<v6>-<len>]` and its value.
    #[track_caller]
    pub fn parse(key: &str, value: &str) -> PeerLease {
        let name = key.rsplit('/').next().unwrap_or_default();
        let (a, b) = match name.split_once('&') {
            Some((a, b)) => (a, Some(b)),
            None => (name, None),
        };
        let cidr = |s: &str| s.replacen('-', "/", 1);
        let v4: Ipv4Net = cidr(a).parse().unwrap_or_else(|_| panic!("bad key {key}"));
        let v: Value =
            serde_json::from_str(value).unwrap_or_else(|e| panic!("lease {key}: {e}: {value}"));
        let mac = |f: &str| v[f]["VtepMAC"].as_str().map(str::to_string);
        let public_ip: Ipv4Addr = v["PublicIP"].as_str().expect("PublicIP").parse().unwrap();
        PeerLease {
            subnet4: (v4.prefix_len() > 0).then_some(v4),
            subnet6: b.map(|b| cidr(b).parse().unwrap_or_else(|_| panic!("bad key {key}"))),
            public_ip: (!public_ip.is_unspecified()).then_some(public_ip),
            public_ipv6: v["PublicIPv6"].as_str().map(|s| s.parse().unwrap()),
            mac4: mac("BackendData"),
            mac6: mac("BackendV6Data"),
        }
    }
}

/// `ip -j <args>` in a namespace; `[]` when the command fails (no such
/// device) or prints nothing.
pub fn ip_json_or_empty(ns: &Path, argv: &[&str]) -> Vec<Value> {
    let out = run(nsenter(ns, argv), None, Duration::from_secs(10));
    if !out.success() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Gateway routes in the main table through `dev`, whose destination is
/// in `within`: `10.2.5.0/24 via 10.2.5.0 onlink`,
/// `fd42:10:0:5::/64 via fd00:100::12`.
pub fn gw_routes(ns: &Path, dev: &str, within: ipnet::IpNet) -> BTreeSet<String> {
    let fam = if matches!(within, ipnet::IpNet::V6(_)) {
        "-6"
    } else {
        "-4"
    };
    ip_json_or_empty(ns, &["ip", "-j", fam, "route", "show", "dev", dev])
        .iter()
        .filter_map(|r| {
            let gw = r["gateway"].as_str()?;
            let dst = r["dst"].as_str()?;
            let net: ipnet::IpNet = dst.parse().ok()?;
            if !within.contains(&net) {
                return None;
            }
            let onlink = r["flags"]
                .as_array()
                .is_some_and(|f| f.iter().any(|x| x == "onlink"));
            Some(format!(
                "{dst} via {gw}{}",
                if onlink { " onlink" } else { "" }
            ))
        })
        .collect()
}

/// Permanent neighbour entries on `dev`: `10.2.5.0 lladdr aa:…`.
pub fn perm_neighs(ns: &Path, dev: &str) -> BTreeSet<String> {
    ip_json_or_empty(ns, &["ip", "-j", "neigh", "show", "dev", dev])
        .iter()
        .filter(|n| {
            n["state"]
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == "PERMANENT"))
        })
        .filter_map(|n| {
            Some(format!(
                "{} lladdr {}",
                n["dst"].as_str()?,
                n["lladdr"].as_str()?
            ))
        })
        .collect()
}

/// Permanent FDB entries with a remote on `dev`: `aa:… dst 192.168.100.12`.
pub fn perm_fdb(ns: &Path, dev: &str) -> BTreeSet<String> {
    ip_json_or_empty(ns, &["bridge", "-j", "fdb", "show", "dev", dev])
        .iter()
        .filter(|f| f["state"] == "permanent")
        .filter_map(|f| Some(format!("{} dst {}", f["mac"].as_str()?, f["dst"].as_str()?)))
        .collect()
}

/// Addresses on `dev` (IPv6 link-local ones left out): `10.2.5.0/32`.
pub fn dev_addrs(ns: &Path, dev: &str) -> BTreeSet<String> {
    ip_json_or_empty(ns, &["ip", "-j", "addr", "show", "dev", dev])
        .iter()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["scope"] != "link")
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect()
}

/// Names of the links starting with `flannel`.
pub fn flannel_links(ns: &Path) -> BTreeSet<String> {
    ip_json_or_empty(ns, &["ip", "-j", "link", "show"])
        .iter()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("flannel"))
        .map(str::to_string)
        .collect()
}

/// A vxlan device as one line: `vxlan id 1 local 192.168.100.11 port 8472
/// learning false mtu 1450 mac aa:…` (`None`: no such device).
pub fn vxlan_line(ns: &Path, dev: &str) -> Option<String> {
    let l = ip_json_or_empty(ns, &["ip", "-d", "-j", "link", "show", "dev", dev])
        .into_iter()
        .next()?;
    let d = &l["linkinfo"]["info_data"];
    let local = d["local"].as_str().or(d["local6"].as_str()).unwrap_or("-");
    Some(format!(
        "{} id {} local {local} port {} learning {} mtu {} mac {}",
        l["linkinfo"]["info_kind"].as_str().unwrap_or("-"),
        d["id"],
        d["port"],
        d["learning"],
        l["mtu"],
        l["address"].as_str().unwrap_or("-")
    ))
}

/// Ping `ip` from namespace `from`, from source address `src`, until it
/// answers or `timeout` passes.
pub fn ping_from(from: &Path, src: &str, ip: &str, timeout: Duration) -> bool {
    wait_until(timeout, || {
        run(
            nsenter(from, &["ping", "-n", "-q", "-c1", "-W1", "-I", src, ip]),
            None,
            Duration::from_secs(5),
        )
        .success()
    })
}
