//! [`find_external`] through real netlink dumps, in throwaway namespaces
//! named with the test harness's prefix (`NETBOOT_TEST_NETNS_PREFIX`, else
//! `nbt-`) so `scripts/test.sh` notices a leftover. Needs root, like every
//! kernel test; skipped (loudly) without it.

use std::net::IpAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use netkit::{Netlink, Netns};

use super::{find_external, Families};
use crate::agent::IfaceArgs;

const V4: Families = Families::V4;
const V6: Families = Families::V6;
const DUAL: Families = Families { v4: true, v6: true };

/// A named netns deleted on drop.
struct TestNs {
    name: String,
    ns: Netns,
}

impl TestNs {
    fn new() -> Option<TestNs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: the interface choice kernel tests need root");
            return None;
        }
        static N: AtomicU32 = AtomicU32::new(0);
        let prefix = std::env::var("NETBOOT_TEST_NETNS_PREFIX")
            .ok()
            .filter(|p| !p.is_empty() && p.len() <= 8)
            .unwrap_or_else(|| "nbt-".into());
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("{prefix}{}-{n}-iface", std::process::id());
        let path = netkit::create_named(&name).expect("create test netns");
        let ns = match Netns::open(&path) {
            Ok(ns) => ns,
            Err(e) => {
                let _ = netkit::delete_named(&name);
                panic!("open {name}: {e}");
            }
        };
        let t = TestNs { name, ns };
        t.ip(&["link", "set", "lo", "up"]);
        Some(t)
    }

    /// `ip -n NAME ARGS`, which must succeed; its stdout.
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nl(&self) -> Netlink {
        self.ns.netlink().expect("netlink in the test netns")
    }

    /// A veth `dev` (peer `dev`p, same namespace), both up, with addresses.
    fn veth(&self, dev: &str, addrs: &[&str]) {
        let peer = format!("{dev}p");
        self.ip(&["link", "add", dev, "type", "veth", "peer", "name", &peer]);
        for a in addrs {
            let mut cmd = vec!["addr", "add"];
            cmd.extend(a.split(' '));
            cmd.extend(["dev", dev]);
            if a.contains(':') {
                cmd.push("nodad");
            }
            self.ip(&cmd);
        }
        self.ip(&["link", "set", &peer, "up"]);
        self.ip(&["link", "set", dev, "up"]);
    }

    /// Waits (up to 10 s) until the kernel's addrconf has given `dev` a
    /// link-local IPv6 address past duplicate address detection: it does
    /// so asynchronously after the link comes up.
    fn wait_link_local(&self, dev: &str) {
        for _ in 0..200 {
            let out = self.ip(&["-6", "addr", "show", "dev", dev, "scope", "link"]);
            if out.contains("fe80::") && !out.contains("tentative") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("{dev} in {} got no link-local IPv6 address", self.name);
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = netkit::delete_named(&self.name) {
            eprintln!("cleanup of {} failed: {e}", self.name);
        }
    }
}

/// eth0 10.0.0.2 + 2001:db8::2 (IPv4 default route), eth1 with a
/// deprecated 10.1.0.5 first, then 10.1.0.2, + 2001:db8:1::2 (IPv6 default
/// route, and 10.9.0.0/16), cni0 10.244.0.1.
fn lab() -> Option<TestNs> {
    let t = TestNs::new()?;
    t.veth("eth0", &["10.0.0.2/24", "2001:db8::2/64"]);
    t.veth(
        "eth1",
        &[
            "10.1.0.5/24 valid_lft 600 preferred_lft 0",
            "10.1.0.2/24",
            "2001:db8:1::2/64",
        ],
    );
    t.ip(&["link", "add", "cni0", "type", "bridge"]);
    t.ip(&["addr", "add", "10.244.0.1/24", "dev", "cni0"]);
    t.ip(&["link", "set", "cni0", "up"]);
    t.ip(&["route", "add", "default", "via", "10.0.0.1"]);
    t.ip(&["route", "add", "10.9.0.0/16", "via", "10.1.0.1"]);
    t.ip(&["-6", "route", "add", "default", "via", "2001:db8:1::1"]);
    Some(t)
}

fn args(f: impl FnOnce(&mut IfaceArgs)) -> IfaceArgs {
    let mut a = IfaceArgs::default();
    f(&mut a);
    a
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// (name, own IPv4, own IPv6, public IPv4, public IPv6), "-" for none.
fn pick(nl: &mut Netlink, a: &IfaceArgs, f: Families) -> [String; 5] {
    let e = find_external(nl, a, f).unwrap_or_else(|e| panic!("{a:?}: {e:#}"));
    let o = |x: Option<String>| x.unwrap_or_else(|| "-".into());
    [
        e.name,
        o(e.iface_ip.map(|i| i.to_string())),
        o(e.iface_ip6.map(|i| i.to_string())),
        o(e.ip.map(|i| i.to_string())),
        o(e.ip6.map(|i| i.to_string())),
    ]
}

fn fail(nl: &mut Netlink, a: &IfaceArgs, f: Families) -> String {
    match find_external(nl, a, f) {
        Ok(e) => panic!("{a:?}: expected an error, got {e:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn choice_through_the_kernel() {
    let Some(t) = lab() else { return };
    let nl = &mut t.nl();
    let none = IfaceArgs::default();
    assert_eq!(
        pick(nl, &none, V4),
        ["eth0", "10.0.0.2", "-", "10.0.0.2", "-"]
    );
    assert_eq!(
        pick(nl, &none, V6),
        ["eth1", "-", "2001:db8:1::2", "-", "2001:db8:1::2"]
    );
    let e = fail(nl, &none, DUAL);
    assert!(
        e.contains("IPv4 route leaves through eth0 but the default IPv6 route through eth1"),
        "{e}"
    );

    // By name: the deprecated primary is passed over.
    let by = |v: &[&str]| args(|a| a.iface = strs(v));
    assert_eq!(
        pick(nl, &by(&["eth1"]), DUAL),
        [
            "eth1",
            "10.1.0.2",
            "2001:db8:1::2",
            "10.1.0.2",
            "2001:db8:1::2"
        ]
    );
    // By address, whatever its flags.
    assert_eq!(pick(nl, &by(&["10.1.0.5"]), V4)[..2], ["eth1", "10.1.0.5"]);
    assert_eq!(pick(nl, &by(&["2001:db8::2"]), V6)[0], "eth0");
    // In order.
    assert_eq!(pick(nl, &by(&["nosuch", "eth1", "eth0"]), V4)[0], "eth1");
    assert_eq!(
        pick(nl, &by(&["nosuch", "10.0.0.2", "eth1"]), V4)[0],
        "eth0"
    );
    // Explicitly named, the pod bridge is allowed.
    assert_eq!(pick(nl, &by(&["cni0"]), V4)[..2], ["cni0", "10.244.0.1"]);

    let re = |v: &[&str]| args(|a| a.iface_regex = strs(v));
    assert_eq!(pick(nl, &re(&[r"^10\.1\."]), V4)[..2], ["eth1", "10.1.0.2"]);
    assert_eq!(pick(nl, &re(&["^eth0$"]), V4)[..2], ["eth0", "10.0.0.2"]);
    assert_eq!(pick(nl, &re(&[r"^10\.244|^wlan", "^eth1$"]), V4)[0], "eth1");

    let e = fail(nl, &re(&[r"^10\.244\."]), V4);
    assert!(
        e.contains(r"--iface-regex ^10\.244\.: matches no interface"),
        "{e}"
    );
    assert!(e.contains("eth1 [10.1.0.2]"), "{e}");

    // --public-ipv6 replaces the advertised address only.
    let pub6 = args(|a| {
        a.iface = strs(&["eth0"]);
        a.public_ipv6 = Some("2001:db8:ff::1".parse().unwrap());
    });
    assert_eq!(
        pick(nl, &pub6, V6),
        ["eth0", "-", "2001:db8::2", "-", "2001:db8:ff::1"]
    );
}

#[test]
fn can_reach_picks_the_routed_interface() {
    let Some(t) = lab() else { return };
    let nl = &mut t.nl();
    let reach = |dst: &str| args(|a| a.iface_can_reach = Some(dst.parse().unwrap()));
    for (dst, dev) in [
        ("10.9.1.1", "eth1"),
        ("10.0.0.77", "eth0"),
        ("192.0.2.1", "eth0"),
    ] {
        let got = pick(nl, &reach(dst), V4);
        let want: serde_json::Value =
            serde_json::from_str(&t.ip(&["-j", "route", "get", dst])).unwrap();
        assert_eq!(got[0], dev, "{dst}");
        assert_eq!(got[1], want[0]["prefsrc"].as_str().unwrap(), "{dst}");
    }
    let got = pick(nl, &reach("2001:db8:77::1"), V6);
    assert_eq!(got[..3], ["eth1", "-", "2001:db8:1::2"]);
}

#[test]
fn errors_through_the_kernel() {
    let Some(t) = TestNs::new() else { return };
    t.veth("eth0", &["10.0.0.2/24"]);
    let nl = &mut t.nl();
    let e = fail(nl, &IfaceArgs::default(), V4);
    assert_eq!(
        e,
        "cannot pick the public interface: there is no default IPv4 route; \
         name it with --iface, --iface-regex or --iface-can-reach"
    );
    let reach = args(|a| a.iface_can_reach = Some(IpAddr::from([192, 0, 2, 1])));
    let e = fail(nl, &reach, V4);
    assert_eq!(
        e,
        "no interface matches the options given: --iface-can-reach 192.0.2.1: \
         the kernel has no route to it: Network is unreachable (os error 101)"
    );
    let e = fail(nl, &args(|a| a.iface = strs(&["eth9", "10.0.0.9"])), V4);
    assert_eq!(
        e,
        "no interface matches the options given: --iface eth9: no such interface; \
         --iface 10.0.0.9: no interface has this address"
    );
    // Only the kernel's link-local IPv6 address: flanneld takes it.
    let eth0 = args(|a| a.iface = strs(&["eth0"]));
    t.wait_link_local("eth0");
    assert!(pick(nl, &eth0, V6)[2].starts_with("fe80::"));
    t.ip(&["-6", "addr", "flush", "dev", "eth0"]);
    let e = fail(nl, &eth0, V6);
    assert!(
        e.contains("--iface eth0: eth0 has no usable IPv6 address"),
        "{e}"
    );
    let e = fail(nl, &args(|a| a.iface_regex = strs(&["("])), V4);
    assert!(
        e.starts_with("--iface-regex (: not a valid regular expression"),
        "{e}"
    );
    let e = fail(
        nl,
        &args(|a| a.public_ip = Some("203.0.113.1".parse().unwrap())),
        V4,
    );
    assert!(
        e.starts_with("--public-ip 203.0.113.1: no interface has this address"),
        "{e}"
    );
}
