//! Dual stack and IPv6-only in native mode, without a kernel: what the
//! subnet.env renders to, the IPAM pool built from it, the pod's routes
//! and what the record keeps for DEL.

use super::conf::NativeConf;
use super::ips::pool;
use super::pod;
use crate::conf::PluginConf;
use crate::flannel::bridge_delegate;
use crate::record::{result_ips, Record};
use crate::record::{NativeState, PortLayout, PortRule};
use crate::subnet_env::SubnetEnv;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DUAL: &str = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.3.1/24\n\
                    FLANNEL_IPV6_NETWORK=fd00:10::/48\nFLANNEL_IPV6_SUBNET=fd00:10:3::1/64\n\
                    FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";
const V6_ONLY: &str = "FLANNEL_IPV6_NETWORK=fd00:10::/48\nFLANNEL_IPV6_SUBNET=fd00:10:3::1/64\n\
                       FLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// The rendering of `env_text` for the canonical flannel conflist entry.
fn rendered(env_text: &str) -> Value {
    let json = r#"{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni","mode":"native",
        "delegate":{"hairpinMode":true,"isDefaultGateway":true}}"#;
    let conf = PluginConf::from_netconf(
        cni::conf::NetConf::parse_as(json.as_bytes(), &crate::conf::SCHEMA).unwrap(),
    )
    .unwrap();
    let env = SubnetEnv::parse(env_text, Path::new("subnet.env")).unwrap();
    bridge_delegate(&conf, &env)
}

fn state(conf: Value, dir: PathBuf) -> NativeState {
    NativeState {
        conf,
        bridge: "cni0".into(),
        host_veth: "nbv0123456789ab".into(),
        ipam_dir: dir,
        port_mappings: Vec::new(),
        snat: true,
        sweep_ports: false,
        port_layout: PortLayout::Maps,
        port_rules: Vec::new(),
        bandwidth: None,
        ifb: None,
    }
}

#[test]
fn dual_stack_renders_both_ranges_and_networks() {
    // flannel's getDelegateIPAM: [[v4],[v6]], then a route per network.
    assert_eq!(
        rendered(DUAL)["ipam"],
        json!({"ranges": [[{"subnet": "10.244.3.0/24"}], [{"subnet": "fd00:10:3::/64"}]],
               "routes": [{"dst": "10.244.0.0/16"}, {"dst": "fd00:10::/48"}],
               "type": "host-local"})
    );
    let c = NativeConf::from_delegate(&rendered(DUAL)).unwrap();
    let subnets: Vec<IpNet> = c.ranges.iter().map(|r| r.subnet).collect();
    assert_eq!(subnets, [net("10.244.3.0/24"), net("fd00:10:3::/64")]);
    let dsts: Vec<IpNet> = c.routes.iter().map(|r| r.dst).collect();
    assert_eq!(dsts, [net("10.244.0.0/16"), net("fd00:10::/48")]);
    assert!(c.is_gateway && c.is_default_gateway && c.ip_masq);
    assert!(!c.enable_dad, "DAD is off unless enabledad");
    let mut d = rendered(DUAL);
    d["enabledad"] = json!(true);
    assert!(NativeConf::from_delegate(&d).unwrap().enable_dad);
}

#[test]
fn ipv6_only_renders_one_range() {
    let d = rendered(V6_ONLY);
    assert_eq!(d["ipam"]["ranges"], json!([[{"subnet": "fd00:10:3::/64"}]]));
    assert_eq!(d["ipam"]["routes"], json!([{"dst": "fd00:10::/48"}]));
    let c = NativeConf::from_delegate(&d).unwrap();
    assert_eq!(c.ranges.len(), 1);
}

#[test]
fn pool_hands_out_one_address_per_family_with_host_local_gateways() {
    let tmp = tempfile::tempdir().unwrap();
    let d = rendered(DUAL);
    let st = state(d.clone(), tmp.path().join("cbr0"));
    let p = pool(&st, &NativeConf::from_delegate(&d).unwrap()).unwrap();
    let got = p.allocate_new("c1", "eth0").unwrap();
    let summary: Vec<(IpAddr, u8, IpAddr)> =
        got.iter().map(|a| (a.ip, a.prefix, a.gateway)).collect();
    // host-local with [[v4],[v6]]: gateway = first address, never handed out.
    assert_eq!(
        summary,
        [
            (ip("10.244.3.2"), 24, ip("10.244.3.1")),
            (ip("fd00:10:3::2"), 64, ip("fd00:10:3::1"))
        ]
    );
    let held = p.holds("c1", "eth0").unwrap();
    assert_eq!(held, [ip("10.244.3.2"), ip("fd00:10:3::2")]);
    // DEL with the recorded IPs frees both, and only those files.
    let freed = p
        .release_known("c1", "eth0", &[ip("10.244.3.2"), ip("fd00:10:3::2")])
        .unwrap();
    assert_eq!(freed.len(), 2);
    assert_eq!(p.holds("c1", "eth0").unwrap(), Vec::<IpAddr>::new());
    // DEL without a result (crash before it was saved): by owner, both.
    p.allocate_new("c2", "eth0").unwrap();
    let mut freed = p.release("c2", "eth0").unwrap();
    freed.sort();
    assert_eq!(freed, [ip("10.244.3.3"), ip("fd00:10:3::3")]);
}

#[test]
fn ipv6_only_pool() {
    let tmp = tempfile::tempdir().unwrap();
    let d = rendered(V6_ONLY);
    let st = state(d.clone(), tmp.path().join("cbr0"));
    let p = pool(&st, &NativeConf::from_delegate(&d).unwrap()).unwrap();
    let got = p.allocate_new("c1", "eth0").unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].ip, got[0].gateway),
        (ip("fd00:10:3::2"), ip("fd00:10:3::1"))
    );
}

#[test]
fn pod_routes_per_family() {
    let c = NativeConf::from_delegate(&rendered(DUAL)).unwrap();
    let addrs = [
        (net("10.244.3.2/24"), ip("10.244.3.1")),
        (net("fd00:10:3::2/64"), ip("fd00:10:3::1")),
    ];
    let specs = pod::route_specs(7, &addrs, &c.routes, true);
    let got: Vec<(IpNet, Option<IpAddr>)> = specs.iter().map(|r| (r.dst, r.gw)).collect();
    // The bridge plugin's order: the default route of each family, then
    // the rendered routes, each via its family's gateway.
    assert_eq!(
        got,
        [
            (net("0.0.0.0/0"), Some(ip("10.244.3.1"))),
            (net("::/0"), Some(ip("fd00:10:3::1"))),
            (net("10.244.0.0/16"), Some(ip("10.244.3.1"))),
            (net("fd00:10::/48"), Some(ip("fd00:10:3::1"))),
        ]
    );
    assert!(specs.iter().all(|r| r.oif == Some(7)));
    // IPv6-only: no IPv4 route at all.
    let c = NativeConf::from_delegate(&rendered(V6_ONLY)).unwrap();
    let specs = pod::route_specs(7, &addrs[1..], &c.routes, true);
    assert!(specs.iter().all(|r| r.dst.addr().is_ipv6()), "{specs:?}");
    assert_eq!(specs.len(), 2);
}

#[test]
fn record_keeps_both_families_for_del() {
    let mut st = state(rendered(DUAL), PathBuf::from("/var/lib/cni/networks/cbr0"));
    // A record of a netboot before the maps: portmap's layout, by handle.
    st.port_layout = PortLayout::Portmap;
    st.port_rules = vec![
        PortRule {
            family: "ip".into(),
            chain: "hostports".into(),
            handle: 4,
        },
        PortRule {
            family: "ip6".into(),
            chain: "hostip_hostports".into(),
            handle: 9,
        },
    ];
    // A 0.3.1 result as the runtime caches it, IPs with "version".
    let result = json!({"cniVersion": "0.3.1",
    "interfaces": [{"name": "cni0"}, {"name": "nbv0123456789ab"}, {"name": "eth0"}],
    "ips": [
        {"version": "4", "address": "10.244.3.2/24", "gateway": "10.244.3.1", "interface": 2},
        {"version": "6", "address": "fd00:10:3::2/64", "gateway": "fd00:10:3::1", "interface": 2}
    ]});
    let rec = json!({"containerID": "c1", "ifname": "eth0", "network": "cbr0", "mode": "native",
        "delegate": null, "portmap": null, "result": result, "native": st});
    let back: Record = serde_json::from_value(rec.clone()).unwrap();
    assert_eq!(back.native.as_ref(), Some(&st));
    // Such records have no portLayout at all: portmap's is implied.
    let mut older = rec;
    older["native"]
        .as_object_mut()
        .unwrap()
        .remove("portLayout");
    let older: Record = serde_json::from_value(older).unwrap();
    assert_eq!(older.native.unwrap().port_layout, PortLayout::Portmap);
    let new = serde_json::to_value(state(json!({}), PathBuf::from("/x"))).unwrap();
    assert_eq!(new["portLayout"], "maps");
    assert_eq!(back.result_ips(), [ip("10.244.3.2"), ip("fd00:10:3::2")]);
    let refs: Vec<bool> = st
        .port_rules
        .iter()
        .map(|r| r.to_ref().unwrap().v6)
        .collect();
    assert_eq!(
        refs,
        [false, true],
        "each rule deleted in its family's table"
    );
    // 0.1.0/0.2.0 results name the families as ip4/ip6.
    let old = json!({"ip4": {"ip": "10.244.3.2/24"}, "ip6": {"ip": "fd00:10:3::2/64"}});
    assert_eq!(
        result_ips(Some(&old)),
        [ip("10.244.3.2"), ip("fd00:10:3::2")]
    );
}
