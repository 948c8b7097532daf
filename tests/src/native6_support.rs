//! Helpers for the dual-stack and IPv6-only plugin tests
//! (`tests/tests/plugin_native6.rs`): subnet.env contents with
//! `FLANNEL_IPV6_*`, a result's addresses per family, IPv6 pings and TCP
//! over IPv6 inside test namespaces. Pod ranges are ULAs (`fd10:2::/48`),
//! "outside" addresses the documentation prefix `2001:db8::/32`.

use std::time::Duration;

use serde_json::Value;

use crate::netns::Netns;
use crate::node::SubnetEnv;
use crate::{exec, retry};

/// flannel's IPv6 network in these tests.
pub const V6_NETWORK: &str = "fd10:2::/48";
/// The node's IPv6 subnet as flanneld writes it (first address / len).
pub const V6_SUBNET: &str = "fd10:2:1::1/64";
/// The node's IPv6 pod gateway (first address of [`V6_SUBNET`]).
pub const V6_GATEWAY: &str = "fd10:2:1::1";

/// The default IPv4 subnet.env plus `FLANNEL_IPV6_*`.
pub fn dual_env() -> SubnetEnv {
    SubnetEnv {
        ipv6_network: V6_NETWORK.into(),
        ipv6_subnet: V6_SUBNET.into(),
        ..SubnetEnv::default()
    }
}

/// A subnet.env with only the IPv6 keys (flannel `EnableIPv4: false`).
pub fn v6_only_env() -> SubnetEnv {
    SubnetEnv {
        network: String::new(),
        subnet: String::new(),
        ..dual_env()
    }
}

/// The result's `ips` entries of one family (`v6`), as JSON objects.
pub fn ips_of(result: &Value, v6: bool) -> Vec<Value> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|ip| ip["address"].as_str().is_some_and(|a| a.contains(':')) == v6)
        .cloned()
        .collect()
}

/// The address (without prefix) of the result's only IP of a family.
#[track_caller]
pub fn ip_of(result: &Value, v6: bool) -> String {
    let ips = ips_of(result, v6);
    assert_eq!(ips.len(), 1, "one IP of the family (v6: {v6}): {result}");
    let cidr = ips[0]["address"].as_str().unwrap_or_default();
    cidr.split('/').next().unwrap_or_default().to_owned()
}

/// The result's `routes` as `dst via gw` strings (`dst` alone without gw).
pub fn result_routes(result: &Value) -> Vec<String> {
    result["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| crate::plugin_support::route_line(r, "gw"))
        .collect()
}

/// The IPv6 routes of `ns` (main table, no kernel link-local or
/// multicast ones) as `dst via gw` strings.
pub fn routes6(ns: &Netns) -> Vec<String> {
    ns.ip_json(&["-6", "route", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dst"].as_str().is_some_and(|d| !d.starts_with("fe80:")))
        .map(|r| crate::plugin_support::route_line(r, "gateway"))
        .collect()
}

/// One global IPv6 address on `dev` in `ns`: `addr/len` and its flags
/// (`tentative`, `dadfailed`, ... as `ip -j` reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr6 {
    pub cidr: String,
    pub flags: Vec<String>,
}

/// The global-scope IPv6 addresses on `dev` in `ns`.
pub fn ipv6_addrs(ns: &Netns, dev: &str) -> Vec<Addr6> {
    let v = ns.ip_json(&["-6", "addr", "show", "dev", dev, "scope", "global"]);
    let mut out = Vec::new();
    for link in v.as_array().into_iter().flatten() {
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            let flags = [
                "tentative",
                "dadfailed",
                "deprecated",
                "nodad",
                "optimistic",
            ]
            .iter()
            .filter(|f| a[**f].as_bool() == Some(true))
            .map(|f| f.to_string())
            .collect();
            out.push(Addr6 {
                cidr: format!("{ip}/{len}"),
                flags,
            });
        }
    }
    out
}

/// `ping -6` once from `from` to `ip` (`-c1 -W2`), up to 3 attempts.
pub fn ping6(from: &Netns, ip: &str) -> bool {
    (0..3).any(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
        from.exec(&["ping", "-6", "-n", "-q", "-c1", "-W2", ip])
            .success()
    })
}

/// Assert that `ip` answers `ping -6` from `from`.
#[track_caller]
pub fn assert_ping6(from: &Netns, ip: &str) {
    assert!(
        ping6(from, ip),
        "no ping -6 reply from {ip} in {}",
        from.name()
    );
}

/// Serve `text` on TCP `port` over IPv6 inside `ns` (killed with the
/// namespace guard). `text` may use socat's `$SOCAT_PEERADDR`.
pub fn serve6(ns: &Netns, port: u16, text: &str) {
    let listen = format!("TCP6-LISTEN:{port},fork,reuseaddr,ipv6only=1");
    ns.spawn(&["socat", &listen, &format!("SYSTEM:echo {text}")]);
}

/// Connect from `from` to `[ip]:port` over IPv6 and return what the
/// service said, retrying for ~5 s (the server may still be starting).
pub fn fetch6(from: &Netns, ip: &str, port: u16) -> Option<String> {
    retry(25, Duration::from_millis(200), || {
        fetch6_once(from, ip, port)
    })
}

/// One IPv6 connection attempt (no retries).
pub fn fetch6_once(from: &Netns, ip: &str, port: u16) -> Option<String> {
    let target = format!("TCP6:[{ip}]:{port},connect-timeout=1");
    let out = exec::run(
        exec::nsenter(from.path(), &["socat", "-u", &target, "STDOUT"]),
        None,
        Duration::from_secs(10),
    );
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
}

/// Add `cidr` to `dev` in `ns` without duplicate address detection, so it
/// is usable at once (test wiring only; `ip addr add … nodad`).
pub fn add_addr_nodad(ns: &Netns, dev: &str, cidr: &str) {
    ns.exec(&["ip", "addr", "add", cidr, "dev", dev, "nodad"])
        .expect_ok();
}

/// `sysctl` value `key` (slash form under /proc/sys) inside `ns`.
pub fn sysctl(ns: &Netns, key: &str) -> String {
    let path = format!("/proc/sys/{key}");
    ns.exec(&["cat", &path])
        .expect_ok()
        .stdout
        .trim()
        .to_owned()
}
