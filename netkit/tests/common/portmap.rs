//! Port-mapping test helpers shared by the firewall, hostports and
//! netlink-vs-CLI tests: specs and mappings in a line, a closure run inside
//! a test namespace, and the namespace's rule set as `nft` lists it.

use std::net::IpAddr;

use netkit::firewall::{PortMapping, PortmapSpec, Proto};
use serde_json::Value;

use super::TestNs;

/// `f` on a thread inside `ns` (its children inherit the namespace).
pub fn run<T: Send>(ns: &TestNs, f: impl FnOnce() -> T + Send) -> T {
    ns.ns.run(f).expect("enter test netns")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `host` -> `cont` over `protocol`, on `host_ip` only when given.
pub fn map(host: u16, cont: u16, protocol: Proto, host_ip: Option<&str>) -> PortMapping {
    PortMapping {
        host_port: host,
        container_port: cont,
        protocol,
        host_ip: host_ip.map(ip),
    }
}

/// Container `id` of network `cbr0` on `eth0`, with SNAT, without masqAll.
pub fn spec<'a>(id: &'a str, ips: &'a [IpAddr], maps: &'a [PortMapping]) -> PortmapSpec<'a> {
    PortmapSpec {
        network: "cbr0",
        container_id: id,
        ifname: "eth0",
        container_ips: ips,
        mappings: maps,
        snat: true,
        masq_all: false,
    }
}

fn strip_handles(v: &mut Value) {
    match v {
        Value::Object(o) => {
            o.remove("handle");
            o.values_mut().for_each(strip_handles);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_handles),
        _ => {}
    }
}

/// `nft list ruleset` in `ns`, and `nft -j list ruleset` without handles.
pub fn ruleset(ns: &TestNs) -> (String, Value) {
    let (ok, text) = ns.exec(&["nft", "list", "ruleset"]);
    assert!(ok, "nft list ruleset in {}", ns.name);
    let (ok, json) = ns.exec(&["nft", "-j", "list", "ruleset"]);
    assert!(ok, "nft -j list ruleset in {}", ns.name);
    let mut v: Value = serde_json::from_str(&json).unwrap();
    strip_handles(&mut v);
    (text, v)
}
