//! Transmit checksum offload through ethtool's netlink family, on a vxlan
//! device and a veth in a throwaway namespace, checked against the
//! `ethtool` binary both ways (its `-k` reads what netkit set; netkit reads
//! what its `-K` set).

mod common;

use common::{need_root, root_ns, TestNs};
use netkit::{set_tx_checksum, tx_checksum, Netlink, Netns, VxlanParams};

fn index(nl: &mut Netlink, name: &str) -> u32 {
    nl.link().by_name(name).unwrap().unwrap().index
}

fn state(ns: &Netns, ifindex: u32) -> Option<bool> {
    ns.run(|| tx_checksum(ifindex)).unwrap().unwrap()
}

fn set(ns: &Netns, ifindex: u32, on: bool) -> bool {
    ns.run(|| set_tx_checksum(ifindex, on)).unwrap().unwrap()
}

/// `ethtool -k DEV` in `ns`, as (feature, "on"/"off", fixed) triples.
fn ethtool_k(ns: &TestNs, dev: &str) -> Vec<(String, String, bool)> {
    let (ok, out) = ns.exec(&["ethtool", "-k", dev]);
    assert!(
        ok,
        "`ethtool -k {dev}` failed in {} (is ethtool installed? scripts/install-deps.sh)",
        ns.name
    );
    out.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(": ")?;
            let value = rest.split_whitespace().next()?.to_string();
            Some((name.to_string(), value, rest.contains("[fixed]")))
        })
        .collect()
}

/// The `ethtool -k` value of one feature ("on"/"off").
fn ethtool_value(ns: &TestNs, dev: &str, feature: &str) -> String {
    ethtool_k(ns, dev)
        .into_iter()
        .find(|(n, ..)| n == feature)
        .unwrap_or_else(|| panic!("`ethtool -k {dev}` shows no {feature}"))
        .1
}

/// Every `tx-checksum-*` feature ethtool shows as changeable and on.
fn ethtool_tx_on(ns: &TestNs, dev: &str) -> Vec<String> {
    ethtool_k(ns, dev)
        .into_iter()
        .filter(|(n, v, fixed)| n.starts_with("tx-checksum-") && v == "on" && !fixed)
        .map(|(n, ..)| n)
        .collect()
}

fn round_trip(ns: &TestNs, ifindex: u32, dev: &str, changeable: &[&str]) {
    assert_eq!(
        state(&ns.ns, ifindex),
        Some(true),
        "{dev} starts with it on"
    );
    assert_eq!(ethtool_value(ns, dev, "tx-checksumming"), "on");
    assert_eq!(ethtool_tx_on(ns, dev), changeable, "{dev} before");

    assert!(set(&ns.ns, ifindex, false), "{dev}: off changes something");
    assert_eq!(state(&ns.ns, ifindex), Some(false), "{dev} read back");
    assert_eq!(ethtool_value(ns, dev, "tx-checksumming"), "off", "{dev}");
    for f in changeable {
        assert_eq!(ethtool_value(ns, dev, f), "off", "{dev} {f}");
    }
    assert!(!set(&ns.ns, ifindex, false), "{dev}: off again is a no-op");

    assert!(set(&ns.ns, ifindex, true), "{dev}: on changes something");
    assert_eq!(state(&ns.ns, ifindex), Some(true), "{dev} on again");
    assert_eq!(ethtool_tx_on(ns, dev), changeable, "{dev} after");
    assert!(!set(&ns.ns, ifindex, true), "{dev}: on again is a no-op");

    // And the other way: what the ethtool binary sets is what we read.
    let (ok, _) = ns.exec(&["ethtool", "-K", dev, "tx", "off"]);
    assert!(ok, "ethtool -K {dev} tx off");
    assert_eq!(
        state(&ns.ns, ifindex),
        Some(false),
        "{dev} after ethtool -K"
    );
    assert!(set(&ns.ns, ifindex, true));
    assert_eq!(state(&ns.ns, ifindex), Some(true));
}

#[test]
fn vxlan_and_veth_tx_checksum_off_and_on() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let mut nl = node.nl();
    nl.link()
        .add_veth("ul0", "ul0", &peer.ns, None, None)
        .unwrap();
    let ul = index(&mut nl, "ul0");
    let mut p = VxlanParams::new("flannel.1", 1);
    p.dev = Some(ul);
    nl.link().add_vxlan(&p).unwrap();
    let vx = index(&mut nl, "flannel.1");
    nl.link().set_up(vx).unwrap();

    // vxlan: ip-generic only; veth: ip-generic and sctp, both changeable.
    round_trip(&node, vx, "flannel.1", &["tx-checksum-ip-generic"]);
    round_trip(
        &node,
        ul,
        "ul0",
        &["tx-checksum-ip-generic", "tx-checksum-sctp"],
    );

    // Turning the vxlan device's off leaves the veth under it alone.
    assert!(set(&node.ns, vx, false));
    assert_eq!(state(&node.ns, ul), Some(true));
    assert_eq!(ethtool_value(&node, "ul0", "tx-checksumming"), "on");
    assert_eq!(ethtool_value(&node, "flannel.1", "tx-checksumming"), "off");
}

#[test]
fn fixed_features_are_refused_by_name() {
    let Some(node) = root_ns() else {
        return;
    };
    // lo's tx checksum features are on and fixed ("[fixed]" in ethtool -k).
    let lo = index(&mut node.nl(), "lo");
    assert_eq!(state(&node.ns, lo), Some(true));
    let err = node.ns.run(|| set_tx_checksum(lo, false)).unwrap();
    let msg = err.unwrap_err().to_string();
    assert!(
        msg.contains("lo (ifindex 1)") && msg.contains("tx-checksum-ip-generic"),
        "{msg}"
    );
    assert!(msg.contains("fixed on"), "{msg}");
    assert_eq!(state(&node.ns, lo), Some(true), "nothing changed");
    assert!(!set(&node.ns, lo, true), "already on: nothing to do");
}

#[test]
fn a_missing_device_is_a_not_found_error() {
    let Some(node) = root_ns() else {
        return;
    };
    let missing = 4_000_000;
    for err in [
        node.ns.run(|| tx_checksum(missing)).unwrap().unwrap_err(),
        node.ns
            .run(|| set_tx_checksum(missing, false))
            .unwrap()
            .unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("ifindex 4000000"), "{err}");
    }
    // An index that exists only in another namespace is missing here.
    let other = TestNs::new();
    let mut nl = other.nl();
    nl.link()
        .add_veth("only0", "only1", &other.ns, None, None)
        .unwrap();
    let only = index(&mut nl, "only0");
    assert!(node.nl().link().by_index(only).unwrap().is_none());
    let err = node.ns.run(|| tx_checksum(only)).unwrap().unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(state(&other.ns, only), Some(true));
}
