//! `nl.route().get` (`ip route get`) and address flags against the real
//! kernel, in throwaway namespaces; every answer checked against `ip -j`.

mod common;

use std::net::IpAddr;

use common::{need_root, root_ns, TestNs};

fn sh(ns: &TestNs, cmd: &[&str]) {
    let mut argv = vec!["ip"];
    argv.extend_from_slice(cmd);
    let (ok, _) = ns.exec(&argv);
    assert!(ok, "ip {cmd:?} in {}", ns.name);
}

/// A veth `dev` whose peer (`dev`p) stays in the same namespace, both up:
/// the dummy driver may not be there.
fn veth(ns: &TestNs, dev: &str) {
    let peer = format!("{dev}p");
    sh(
        ns,
        &["link", "add", dev, "type", "veth", "peer", "name", &peer],
    );
    sh(ns, &["link", "set", &peer, "up"]);
}

/// Two veths: d1 10.50.1.1/24 + 2001:db8:1::1/64, d2 10.50.2.1/24 +
/// 2001:db8:2::1/64, a route to 10.60.0.0/16 via 10.50.2.254 and a default
/// IPv6 route via d1.
fn two_dummies() -> TestNs {
    let ns = TestNs::new();
    sh(&ns, &["link", "set", "lo", "up"]);
    for (dev, v4, v6) in [
        ("d1", "10.50.1.1/24", "2001:db8:1::1/64"),
        ("d2", "10.50.2.1/24", "2001:db8:2::1/64"),
    ] {
        veth(&ns, dev);
        sh(&ns, &["addr", "add", v4, "dev", dev]);
        sh(&ns, &["addr", "add", v6, "dev", dev, "nodad"]);
        sh(&ns, &["link", "set", dev, "up"]);
    }
    sh(&ns, &["route", "add", "10.60.0.0/16", "via", "10.50.2.254"]);
    sh(
        &ns,
        &["-6", "route", "add", "default", "via", "2001:db8:1::fe"],
    );
    ns
}

fn index(ns: &TestNs, dev: &str) -> u32 {
    ns.nl().link().by_name(dev).unwrap().unwrap().index
}

#[test]
fn route_get_names_interface_source_and_gateway() {
    if !need_root() {
        return;
    }
    let ns = two_dummies();
    let mut nl = ns.nl();
    let (d1, d2) = (index(&ns, "d1"), index(&ns, "d2"));
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();

    let via = nl.route().get(ip("10.60.3.4")).unwrap();
    assert_eq!(
        (via.oif, via.src, via.gw),
        (Some(d2), Some(ip("10.50.2.1")), Some(ip("10.50.2.254")))
    );
    let j = ns.ip(&["route", "get", "10.60.3.4"]);
    assert_eq!(
        (j[0]["dev"].as_str(), j[0]["prefsrc"].as_str()),
        (Some("d2"), Some("10.50.2.1"))
    );

    let onlink = nl.route().get(ip("10.50.1.77")).unwrap();
    assert_eq!(
        (onlink.oif, onlink.src, onlink.gw),
        (Some(d1), Some(ip("10.50.1.1")), None)
    );

    let v6 = nl.route().get(ip("2001:db8:99::5")).unwrap();
    assert_eq!((v6.oif, v6.gw), (Some(d1), Some(ip("2001:db8:1::fe"))));
    assert_eq!(v6.src, Some(ip("2001:db8:1::1")));

    let own = nl.route().get(ip("10.50.2.1")).unwrap();
    assert_eq!(own.oif, Some(index(&ns, "lo")));

    let none = nl.route().get(ip("192.0.2.1")).unwrap_err();
    assert_eq!(none.errno(), Some(libc::ENETUNREACH), "{none}");
    assert!(none.to_string().contains("192.0.2.1"), "{none}");
}

#[test]
fn address_flags_are_read() {
    let Some(ns) = root_ns() else {
        return;
    };
    veth(&ns, "d1");
    sh(&ns, &["addr", "add", "10.70.0.1/24", "dev", "d1"]);
    sh(&ns, &["addr", "add", "10.70.0.2/24", "dev", "d1"]);
    let lft = ["valid_lft", "600", "preferred_lft"];
    sh(
        &ns,
        &[
            &["addr", "add", "10.71.0.1/24", "dev", "d1"],
            &lft[..],
            &["0"],
        ]
        .concat(),
    );
    sh(
        &ns,
        &[
            &["addr", "add", "10.72.0.1/24", "dev", "d1"],
            &lft[..],
            &["300"],
        ]
        .concat(),
    );
    let d1 = index(&ns, "d1");
    let addrs = ns.nl().addr().list(Some(d1)).unwrap();
    let get = |s: &str| {
        *addrs
            .iter()
            .find(|a| a.addr.addr().to_string() == s)
            .unwrap_or_else(|| panic!("{s} not in {addrs:?}"))
    };
    let first = get("10.70.0.1");
    assert!(first.is_permanent() && !first.is_temporary() && !first.is_deprecated());
    let second = get("10.70.0.2");
    assert!(
        second.is_temporary(),
        "second address in a subnet is secondary: {second:?}"
    );
    let old = get("10.71.0.1");
    assert!(old.is_deprecated() && !old.is_permanent(), "{old:?}");
    let dynamic = get("10.72.0.1");
    assert!(
        !dynamic.is_permanent() && !dynamic.is_deprecated(),
        "{dynamic:?}"
    );
    let j = ns.ip(&["addr", "show", "dev", "d1"]);
    let info = j[0]["addr_info"].as_array().unwrap();
    let shown = info.iter().find(|a| a["local"] == "10.71.0.1").unwrap();
    assert_eq!(shown["deprecated"], true);
}
