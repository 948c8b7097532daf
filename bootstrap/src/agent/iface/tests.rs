//! The choice over hand-made snapshots: every rule and every error.

use std::net::IpAddr;

use netkit::{Addr, Link, RouteEntry, RouteLookup, Scope};

use super::select::{select, Selection};
use super::{Families, Snapshot};
use crate::agent::IfaceArgs;

const V4: Families = Families::V4;
const V6: Families = Families::V6;
const DUAL: Families = Families { v4: true, v6: true };

const PERMANENT: u32 = 0x80;
const DEPRECATED: u32 = 0x20;
const TEMPORARY: u32 = 0x01;

/// A namespace being described: `lo` (1) with 127.0.0.1 and ::1.
struct Lab(Snapshot);

impl Lab {
    fn new() -> Lab {
        Lab(Snapshot::default())
            .link(1, "lo", &["127.0.0.1/8", "::1/128"])
            .link(2, "eth0", &["10.0.0.2/24", "2001:db8::2/64", "fe80::2/64"])
            .link(3, "eth1", &["10.1.0.2/24", "2001:db8:1::2/64"])
    }

    /// A link (MTU 1500) with permanent addresses.
    fn link(mut self, index: u32, name: &str, addrs: &[&str]) -> Lab {
        self.0.links.push(Link {
            index,
            name: name.into(),
            mac: None,
            mtu: 1500,
            up: true,
            master: None,
            kind: None,
            link: None,
        });
        for a in addrs {
            self = self.addr(index, a, PERMANENT);
        }
        self
    }

    fn addr(mut self, index: u32, cidr: &str, flags: u32) -> Lab {
        self.0.addrs.push(Addr {
            index,
            addr: cidr.parse().unwrap(),
            flags,
        });
        self
    }

    fn default(mut self, dst: &str, oif: Option<u32>) -> Lab {
        let r = RouteEntry {
            dst: dst.parse().unwrap(),
            gw: None,
            oif,
            onlink: false,
            scope: Scope::Universe,
            table: 254,
            metric: None,
        };
        match r.dst {
            ipnet::IpNet::V4(_) => self.0.routes4.push(r),
            ipnet::IpNet::V6(_) => self.0.routes6.push(r),
        }
        self
    }

    fn reach(mut self, r: Result<(u32, &str), &str>) -> Lab {
        self.0.reach = Some(
            r.map(|(oif, src)| RouteLookup {
                oif: Some(oif),
                src: Some(src.parse().unwrap()),
                gw: None,
            })
            .map_err(str::to_string),
        );
        self
    }

    fn pick(&self, a: &IfaceArgs, f: Families) -> Selection {
        select(&self.0, a, f).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn fail(&self, a: &IfaceArgs, f: Families) -> String {
        match select(&self.0, a, f) {
            Ok(s) => panic!("expected an error, got {s:?}"),
            Err(e) => format!("{e:#}"),
        }
    }
}

fn ifaces(v: &[&str]) -> IfaceArgs {
    IfaceArgs {
        iface: v.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn regexes(v: &[&str]) -> IfaceArgs {
    IfaceArgs {
        iface_regex: v.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (name, iface_ip, iface_ip6, ip, ip6) as strings.
fn summary(s: &Selection) -> (String, String, String, String, String) {
    let e = &s.external;
    let o = |x: Option<String>| x.unwrap_or_else(|| "-".into());
    (
        e.name.clone(),
        o(e.iface_ip.map(|i| i.to_string())),
        o(e.iface_ip6.map(|i| i.to_string())),
        o(e.ip.map(|i| i.to_string())),
        o(e.ip6.map(|i| i.to_string())),
    )
}

fn s5(a: &str, b: &str, c: &str, d: &str, e: &str) -> (String, String, String, String, String) {
    (a.into(), b.into(), c.into(), d.into(), e.into())
}

/// [`s5`] of interface `name` whose own addresses, `v4` and `v6`, are
/// the public ones too.
fn own(name: &str, v4: &str, v6: &str) -> (String, String, String, String, String) {
    s5(name, v4, v6, v4, v6)
}

#[test]
fn default_route_interface_per_family() {
    let lab = Lab::new()
        .default("0.0.0.0/0", Some(3))
        .default("0.0.0.0/0", Some(2))
        .default("::/0", Some(2));
    // The first default route in the kernel's order wins.
    let s = lab.pick(&IfaceArgs::default(), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.2", "-", "10.1.0.2", "-"));
    assert_eq!((s.external.index, s.external.mtu), (3, 1500));
    let s = lab.pick(&IfaceArgs::default(), V6);
    assert_eq!(
        summary(&s),
        s5("eth0", "-", "2001:db8::2", "-", "2001:db8::2")
    );
    let e = lab.fail(&IfaceArgs::default(), DUAL);
    assert!(
        e.contains(
            "default IPv4 route leaves through eth1 but the default IPv6 route through eth0"
        ),
        "{e}"
    );
}

#[test]
fn v6_only_default_route_needs_no_ipv4_at_all() {
    let lab = Lab(Snapshot::default())
        .link(5, "ens3", &["2001:db8:5::5/64"])
        .default("::/0", Some(5));
    let s = lab.pick(&IfaceArgs::default(), V6);
    assert_eq!(
        summary(&s),
        s5("ens3", "-", "2001:db8:5::5", "-", "2001:db8:5::5")
    );
    assert_eq!(s.external.ip4().to_string(), "0.0.0.0");
    let e = lab.fail(&IfaceArgs::default(), V4);
    assert!(e.contains("there is no default IPv4 route"), "{e}");
    assert!(e.contains("--iface"), "{e}");
}

#[test]
fn dual_stack_default_route_gives_both_addresses() {
    let lab = Lab::new()
        .default("0.0.0.0/0", Some(2))
        .default("::/0", Some(2));
    let s = lab.pick(&IfaceArgs::default(), DUAL);
    assert_eq!(summary(&s), own("eth0", "10.0.0.2", "2001:db8::2"));
}

#[test]
fn default_route_errors() {
    let e = Lab::new().fail(&IfaceArgs::default(), V4);
    assert!(
        e.starts_with("cannot pick the public interface: there is no default IPv4 route"),
        "{e}"
    );
    let multipath = Lab::new().default("0.0.0.0/0", None);
    let e = multipath.fail(&IfaceArgs::default(), V4);
    assert!(e.contains("no single outgoing interface"), "{e}");
    let bridge = Lab::new()
        .link(9, "cni0", &["10.244.0.1/24"])
        .default("0.0.0.0/0", Some(9));
    let e = bridge.fail(&IfaceArgs::default(), V4);
    assert!(e.contains("leaves through cni0"), "{e}");
    assert!(e.contains("never chosen automatically"), "{e}");
    let e = Lab::new().fail(
        &IfaceArgs::default(),
        Families {
            v4: false,
            v6: false,
        },
    );
    assert!(e.contains("both IPv4 and IPv6 off"), "{e}");
}

#[test]
fn iface_by_name_and_by_address() {
    let lab = Lab::new()
        .addr(3, "10.1.0.3/24", PERMANENT | TEMPORARY)
        .default("0.0.0.0/0", Some(2));
    let s = lab.pick(&ifaces(&["eth1"]), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.2", "-", "10.1.0.2", "-"));
    assert!(s.skipped.is_empty());
    // An address names the interface and is its address, even a secondary.
    let s = lab.pick(&ifaces(&["10.1.0.3"]), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.3", "-", "10.1.0.3", "-"));
    let s = lab.pick(&ifaces(&["2001:db8:1::2"]), V6);
    assert_eq!(
        summary(&s),
        s5("eth1", "-", "2001:db8:1::2", "-", "2001:db8:1::2")
    );
    // With both families: an IPv4 address, the interface's IPv6 address.
    let s = lab.pick(&ifaces(&["10.1.0.2"]), DUAL);
    assert_eq!(summary(&s), own("eth1", "10.1.0.2", "2001:db8:1::2"));
    // ... and an IPv6 address, the interface's IPv4 address.
    let s = lab.pick(&ifaces(&["2001:db8::2"]), DUAL);
    assert_eq!(summary(&s), own("eth0", "10.0.0.2", "2001:db8::2"));
    // An empty --iface is the default route's interface.
    let s = lab.pick(&ifaces(&[""]), V4);
    assert_eq!(s.external.name, "eth0");
}

#[test]
fn several_ifaces_are_tried_in_order() {
    let lab = Lab::new().link(4, "eth2", &["2001:db8:4::4/64"]);
    let s = lab.pick(&ifaces(&["nosuch", "eth2", "10.9.9.9", "eth1", "eth0"]), V4);
    assert_eq!(s.external.name, "eth1");
    assert_eq!(
        s.skipped,
        [
            "--iface nosuch: no such interface",
            "--iface eth2: eth2 has no usable IPv4 address (global or link-local, not deprecated)",
            "--iface 10.9.9.9: no interface has this address",
        ]
    );
    // The first that works wins, whatever comes later.
    let s = lab.pick(&ifaces(&["eth0", "eth1"]), V4);
    assert_eq!(s.external.name, "eth0");
    // eth2 does for IPv6.
    let s = lab.pick(&ifaces(&["nosuch", "eth2", "eth1"]), V6);
    assert_eq!(s.external.name, "eth2");
}

#[test]
fn no_option_matching_lists_every_reason() {
    let e = Lab::new().fail(&ifaces(&["nosuch", "10.9.9.9", "", "lo"]), V4);
    assert_eq!(
        e,
        "no interface matches the options given: --iface nosuch: no such interface; \
         --iface 10.9.9.9: no interface has this address; \
         --iface \"\" (the default route's interface): there is no default IPv4 route; \
         --iface lo: lo has no usable IPv4 address (global or link-local, not deprecated)"
    );
}

#[test]
fn address_of_the_wrong_family_is_refused() {
    let lab = Lab::new();
    let e = lab.fail(&ifaces(&["10.0.0.2"]), V6);
    assert!(
        e.contains("--iface 10.0.0.2: an IPv4 address, but the network config has IPv4 off"),
        "{e}"
    );
    let e = lab.fail(&ifaces(&["2001:db8::2"]), V4);
    assert!(
        e.contains("--iface 2001:db8::2: an IPv6 address, but the network config has IPv6 off"),
        "{e}"
    );
}

#[test]
fn reserved_interfaces_only_by_explicit_name() {
    let lab = Lab::new()
        .link(7, "flannel.1", &["10.244.0.0/32"])
        .link(8, "cni0", &["10.244.0.1/24"])
        .link(9, "flannel-v6.1", &["fd00:244::/128"]);
    let s = lab.pick(&ifaces(&["flannel.1"]), V4);
    assert_eq!(
        summary(&s),
        s5("flannel.1", "10.244.0.0", "-", "10.244.0.0", "-")
    );
    let e = lab.fail(&ifaces(&["10.244.0.1"]), V4);
    assert!(
        e.contains("--iface 10.244.0.1: only cni0 has this address"),
        "{e}"
    );
    let e = lab.fail(&regexes(&[r"^10\.244\.", "cni|flannel"]), V4);
    assert!(
        e.contains(r"--iface-regex ^10\.244\.: matches no interface"),
        "{e}"
    );
    assert!(
        e.contains("--iface-regex cni|flannel: matches no interface"),
        "{e}"
    );
    let e = lab.fail(&regexes(&["^fd00"]), V6);
    assert!(e.contains("matches no interface"), "{e}");
    let e = lab.reach(Ok((8, "10.244.0.1"))).fail(
        &IfaceArgs {
            iface_can_reach: Some(ip("10.244.3.3")),
            ..Default::default()
        },
        V4,
    );
    assert!(
        e.contains("--iface-can-reach 10.244.3.3: the route to it leaves through cni0"),
        "{e}"
    );
}

#[test]
fn regex_matches_addresses_first_then_names() {
    let lab = Lab::new().addr(3, "10.1.0.9/24", PERMANENT);
    let s = lab.pick(&regexes(&[r"^10\.1\.0\.9$"]), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.9", "-", "10.1.0.9", "-"));
    // A name match takes the interface's preferred address.
    let s = lab.pick(&regexes(&["^eth1$"]), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.2", "-", "10.1.0.2", "-"));
    // eth0's name matches, but eth1's address is looked at first.
    let s = lab.pick(&regexes(&[r"eth0|^10\.1\."]), V4);
    assert_eq!(s.external.name, "eth1");
    // IPv6 text form is the compressed one.
    let s = lab.pick(&regexes(&["^2001:db8:1::"]), V6);
    assert_eq!(s.external.iface_ip6.unwrap().to_string(), "2001:db8:1::2");
    // Regexes in order, after every --iface.
    let a = IfaceArgs {
        iface: vec!["nosuch".into()],
        iface_regex: vec!["^wlan".into(), "^eth".into()],
        ..Default::default()
    };
    let s = lab.pick(&a, V4);
    assert_eq!(s.external.name, "eth0");
    assert_eq!(s.skipped.len(), 2);
    assert!(s.skipped[1].starts_with("--iface-regex ^wlan: matches no interface's name or usable address (interfaces: lo [], eth0 [10.0.0.2], eth1 [10.1.0.2 10.1.0.9])"), "{}", s.skipped[1]);
}

#[test]
fn regex_with_both_families_needs_both_to_match() {
    let lab = Lab::new();
    let s = lab.pick(&regexes(&[r"^10\.1\.|^2001:db8:1:"]), DUAL);
    assert_eq!(summary(&s), own("eth1", "10.1.0.2", "2001:db8:1::2"));
    // Only the IPv4 side matches an address: no address match, no name.
    let e = lab.fail(&regexes(&[r"^10\.1\."]), DUAL);
    assert!(e.contains("matches no interface"), "{e}");
}

#[test]
fn bad_regex_is_an_error_up_front() {
    let e = Lab::new().fail(&regexes(&["eth(", "eth0"]), V4);
    assert!(
        e.starts_with("--iface-regex eth(: not a valid regular expression"),
        "{e}"
    );
}

#[test]
fn can_reach_takes_the_routes_interface_and_source() {
    let lab = Lab::new()
        .addr(3, "10.1.0.7/24", PERMANENT)
        .reach(Ok((3, "10.1.0.7")));
    let reach = |dst: &str| IfaceArgs {
        iface_can_reach: Some(ip(dst)),
        ..Default::default()
    };
    let s = lab.pick(&reach("10.1.5.5"), V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.7", "-", "10.1.0.7", "-"));
    // Tried last, after --iface and --iface-regex.
    let a = IfaceArgs {
        iface: vec!["nosuch".into()],
        iface_regex: vec!["^wlan".into()],
        ..reach("10.1.5.5")
    };
    let s = lab.pick(&a, V4);
    assert_eq!((s.external.name.as_str(), s.skipped.len()), ("eth1", 2));
    // An IPv4 source does not stand in for the IPv6 address.
    let s = lab.pick(&reach("10.1.5.5"), DUAL);
    assert_eq!(summary(&s), own("eth1", "10.1.0.7", "2001:db8:1::2"));
    let e = Lab::new()
        .reach(Err("Network is unreachable (os error 101)"))
        .fail(&reach("192.0.2.1"), V4);
    assert_eq!(
        e,
        "no interface matches the options given: --iface-can-reach 192.0.2.1: \
         the kernel has no route to it: Network is unreachable (os error 101)"
    );
}

#[test]
fn public_addresses_override_what_is_advertised() {
    let lab = Lab::new().default("0.0.0.0/0", Some(2));
    let a = IfaceArgs {
        iface: vec!["eth1".into()],
        public_ip: Some("203.0.113.1".parse().unwrap()),
        public_ipv6: Some("2001:db8:ff::1".parse().unwrap()),
        ..Default::default()
    };
    let s = lab.pick(&a, V4);
    assert_eq!(summary(&s), s5("eth1", "10.1.0.2", "-", "203.0.113.1", "-"));
    let s = lab.pick(&a, V6);
    assert_eq!(
        summary(&s),
        s5("eth1", "-", "2001:db8:1::2", "-", "2001:db8:ff::1")
    );
}

#[test]
fn public_ip_alone_picks_the_interface_holding_it() {
    let lab = Lab::new().default("0.0.0.0/0", Some(2));
    let a = IfaceArgs {
        public_ip: Some("10.1.0.2".parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(lab.pick(&a, V4).external.name, "eth1");
    let a = IfaceArgs {
        public_ip: Some("203.0.113.1".parse().unwrap()),
        ..Default::default()
    };
    let e = lab.fail(&a, V4);
    assert_eq!(
        e,
        "--public-ip 203.0.113.1: no interface has this address (with no --iface, \
         --iface-regex or --iface-can-reach, the interface holding the public address is used)"
    );
    let v6 = IfaceArgs {
        public_ipv6: Some("2001:db8:1::2".parse().unwrap()),
        ..Default::default()
    };
    let s = lab.pick(&v6, V6);
    assert_eq!(
        summary(&s),
        s5("eth1", "-", "2001:db8:1::2", "-", "2001:db8:1::2")
    );
    let s = lab.pick(&v6, DUAL);
    assert_eq!(summary(&s), own("eth1", "10.1.0.2", "2001:db8:1::2"));
    let e = lab.fail(&v6, V4);
    assert!(
        e.starts_with(
            "--public-ipv6 2001:db8:1::2: an IPv6 address, but the network config has IPv6 off"
        ),
        "{e}"
    );
}

#[test]
fn dual_stack_address_and_public_ipv6_must_share_the_interface() {
    let lab = Lab::new().addr(2, "2001:db8:ff::2/64", PERMANENT);
    let both = |v4: &str, v6: &str| IfaceArgs {
        iface: vec![v4.into()],
        public_ipv6: Some(v6.parse().unwrap()),
        ..Default::default()
    };
    let s = lab.pick(&both("10.0.0.2", "2001:db8:ff::2"), DUAL);
    assert_eq!(summary(&s), own("eth0", "10.0.0.2", "2001:db8:ff::2"));
    let e = lab.fail(&both("10.0.0.2", "2001:db8:1::2"), DUAL);
    assert!(
        e.contains("this address is on eth0, but --public-ipv6 2001:db8:1::2 is on eth1"),
        "{e}"
    );
    let e = lab.fail(&both("10.0.0.2", "2001:db8:99::1"), DUAL);
    assert!(
        e.contains("--iface 10.0.0.2: --public-ipv6 2001:db8:99::1: no interface has this address"),
        "{e}"
    );
    // A name is not held to it: --public-ipv6 is only advertised.
    let a = IfaceArgs {
        iface: vec!["eth0".into()],
        ..both("", "2001:db8:99::1")
    };
    assert_eq!(
        lab.pick(&a, DUAL).external.ip6.unwrap().to_string(),
        "2001:db8:99::1"
    );
}

#[test]
fn interface_address_preference_follows_flanneld() {
    let lab = Lab(Snapshot::default())
        .link(2, "eth0", &[])
        .addr(2, "169.254.0.9/16", PERMANENT)
        .addr(2, "10.0.0.5/24", DEPRECATED)
        .addr(2, "10.0.1.5/24", 0)
        .addr(2, "10.0.2.5/24", PERMANENT | TEMPORARY)
        .addr(2, "10.0.3.5/24", PERMANENT)
        .addr(2, "fe80::5/64", PERMANENT)
        .addr(2, "2001:db8::7/64", TEMPORARY)
        .addr(2, "2001:db8::6/64", 0)
        .addr(2, "2001:db8::5/64", DEPRECATED);
    let s = lab.pick(&ifaces(&["eth0"]), DUAL);
    assert_eq!(
        (
            s.external.iface_ip.unwrap().to_string(),
            s.external.iface_ip6.unwrap().to_string()
        ),
        ("10.0.3.5".into(), "2001:db8::6".into())
    );
    // Link-local addresses only as the last resort.
    let ll = Lab(Snapshot::default())
        .link(2, "eth0", &["169.254.0.9/16", "fe80::5/64"])
        .addr(2, "2001:db8::5/64", DEPRECATED);
    let s = ll.pick(&ifaces(&["eth0"]), DUAL);
    assert_eq!(summary(&s), own("eth0", "169.254.0.9", "fe80::5"));
}

#[test]
fn mtu_zero_is_an_error() {
    let mut lab = Lab::new();
    lab.0.links[1].mtu = 0;
    let e = lab.fail(&ifaces(&["eth0"]), V4);
    assert!(e.contains("--iface eth0: eth0 reports an MTU of 0"), "{e}");
}
