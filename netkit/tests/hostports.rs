//! Native mode's hostPort maps (`firewall::hostports`) against the real
//! kernel, inside throwaway namespaces: the layout netlink writes is the
//! one `nft` writes from its text, traffic flows through it (node,
//! localhost, peer, hairpin, hostIP-specific and any address), DEL removes
//! exactly its own elements, conflicts are refused or taken over, GC's
//! sweep and CHECK see what they must.

mod common;

use common::hostport::{fetch, HostportLab, POD_IP};
use common::portmap::{ip, map, ruleset, run, spec};
use common::{need_root, root_ns, TestNs};
use netkit::firewall::{self, Proto};
use serde_json::Value;

/// The layout as `nft` text, for `nft -f`: what `firewall::hostports`
/// documents, written by hand.
fn layout_script() -> String {
    let mut s = String::from("add table inet netboot\n");
    let mut rules = String::new();
    for (f, addr, nfp) in [("ip", "ipv4_addr", "ipv4"), ("ip6", "ipv6_addr", "ipv6")] {
        for p in ["tcp", "udp", "sctp"] {
            s += &format!("add map inet netboot hostip_hostports_{f}_{p} {{ type {addr} . inet_service : {addr} . inet_service ; }}\n");
            s += &format!("add map inet netboot hostports_{f}_{p} {{ type inet_service : {addr} . inet_service ; }}\n");
            rules += &format!("add rule inet netboot hostports meta nfproto {nfp} meta l4proto {p} dnat {f} to {f} daddr . {p} dport map @hostip_hostports_{f}_{p}\n");
            rules += &format!("add rule inet netboot hostports meta nfproto {nfp} meta l4proto {p} dnat {f} to {p} dport map @hostports_{f}_{p}\n");
        }
        s += &format!("add set inet netboot hostports_masq_{f} {{ type {addr} . {addr} ; }}\n");
    }
    s += "add chain inet netboot hostports\n";
    s += "add chain inet netboot hostports_prerouting { type nat hook prerouting priority -100 ; }\n";
    s += "add chain inet netboot hostports_output { type nat hook output priority -100 ; }\n";
    s += "add chain inet netboot hostports_postrouting { type nat hook postrouting priority 100 ; }\n";
    s += &rules;
    for c in ["prerouting", "output"] {
        s += &format!("add rule inet netboot hostports_{c} fib daddr type local jump hostports\n");
    }
    for f in ["ip", "ip6"] {
        s += &format!("add rule inet netboot hostports_postrouting meta nfproto {} {f} saddr . {f} daddr @hostports_masq_{f} masquerade\n", if f == "ip" { "ipv4" } else { "ipv6" });
    }
    s
}

fn nft(ns: &TestNs, script: &str) {
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name));
    std::fs::write(&path, script).unwrap();
    let (ok, out) = ns.exec(&["nft", "-f", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(ok, "nft -f failed: {out}\n{script}");
}

#[test]
fn netlink_writes_the_layout_nft_writes_from_its_text() {
    if !need_root() {
        return;
    }
    let (nl, cli) = (TestNs::new(), TestNs::new());
    let ips = [ip("10.99.0.2"), ip("fd99::2")];
    let maps = [
        map(8080, 80, Proto::Tcp, None),
        map(5353, 53, Proto::Udp, Some("192.0.2.1")),
        map(8443, 443, Proto::Sctp, Some("fd99::1")),
    ];
    run(&nl, || firewall::add_hostports(&spec("c1", &ips, &maps))).unwrap();
    let o = "cbr0/c1/eth0";
    let elems = format!(
        "add element inet netboot hostports_ip_tcp {{ 8080 comment \"{o}\" : 10.99.0.2 . 80 }}\n\
         add element inet netboot hostip_hostports_ip_udp {{ 192.0.2.1 . 5353 comment \"{o}\" : 10.99.0.2 . 53 }}\n\
         add element inet netboot hostports_masq_ip {{ 10.99.0.2 . 10.99.0.2 comment \"{o}\", 127.0.0.1 . 10.99.0.2 comment \"{o}\" }}\n\
         add element inet netboot hostports_ip6_tcp {{ 8080 comment \"{o}\" : fd99::2 . 80 }}\n\
         add element inet netboot hostip_hostports_ip6_sctp {{ fd99::1 . 8443 comment \"{o}\" : fd99::2 . 443 }}\n\
         add element inet netboot hostports_masq_ip6 {{ fd99::2 . fd99::2 comment \"{o}\" }}\n"
    );
    nft(&cli, &(layout_script() + &elems));
    let (text_nl, json_nl) = ruleset(&nl);
    let (text_cli, json_cli) = ruleset(&cli);
    assert_eq!(text_nl, text_cli);
    assert_eq!(json_nl, json_cli);
    assert!(
        text_nl.contains("dnat ip to ip daddr . udp dport map @hostip_hostports_ip_udp"),
        "{text_nl}"
    );
    // CHECK reads both back as complete.
    for ns in [&nl, &cli] {
        run(ns, || firewall::check_hostports(&spec("c1", &ips, &maps))).unwrap();
    }
}

#[test]
fn traffic_reaches_the_pod_through_the_maps_and_stops_after_del() {
    if !need_root() {
        return;
    }
    let lab = HostportLab::new();
    let ips = [ip(POD_IP)];
    // 8080 on any address; 8081 on the peer-facing address only.
    let maps = [
        map(8080, 80, Proto::Tcp, None),
        map(8081, 80, Proto::Tcp, Some("10.98.0.1")),
    ];
    let s = spec("pod1", &ips, &maps);
    run(&lab.node, || firewall::add_hostports(&s)).unwrap();
    lab.assert_mapped();
    let hello = Some("pod-hello");
    assert_eq!(fetch(&lab.peer, "10.98.0.1:8081").as_deref(), hello);
    assert_eq!(fetch(&lab.node, "10.98.0.1:8081").as_deref(), hello);
    assert_eq!(fetch(&lab.node, "10.99.0.1:8081"), None, "hostIP-specific");
    run(&lab.node, || firewall::check_hostports(&s)).unwrap();
    // A repeated ADD of the same attachment changes nothing.
    run(&lab.node, || firewall::add_hostports(&s)).unwrap();
    assert_eq!(run(&lab.node, || firewall::del_hostports(&s)).unwrap(), 4);
    lab.assert_unmapped();
    assert_eq!(fetch(&lab.peer, "10.98.0.1:8081"), None);
    assert!(run(&lab.node, firewall::list_hostport_elements)
        .unwrap()
        .is_empty());
    // DEL is idempotent, and a DEL that does not know the pod's address
    // (its ADD result was never recorded) finds it through the DNAT data.
    assert_eq!(run(&lab.node, || firewall::del_hostports(&s)).unwrap(), 0);
    run(&lab.node, || firewall::add_hostports(&s)).unwrap();
    let blind = spec("pod1", &[], &maps);
    assert_eq!(
        run(&lab.node, || firewall::del_hostports(&blind)).unwrap(),
        4
    );
    assert!(run(&lab.node, firewall::list_hostport_elements)
        .unwrap()
        .is_empty());
    // The table going away (a reboot, a human) is repaired by the next ADD.
    let (ok, _) = lab
        .node
        .exec(&["nft", "delete", "table", "inet", "netboot"]);
    assert!(ok);
    run(&lab.node, || firewall::add_hostports(&s)).unwrap();
    lab.assert_mapped();
    // So is a flushed chain, even with the elements still there.
    for chain in ["hostports", "hostports_output"] {
        let (ok, _) = lab
            .node
            .exec(&["nft", "flush", "chain", "inet", "netboot", chain]);
        assert!(ok);
        assert!(run(&lab.node, || firewall::check_hostports(&s)).is_err());
        run(&lab.node, || firewall::add_hostports(&s)).unwrap();
        run(&lab.node, || firewall::check_hostports(&s)).unwrap();
    }
    lab.assert_mapped();
}

#[test]
fn del_removes_exactly_its_own_elements_and_conflicts_are_explicit() {
    let Some(node) = root_ns() else {
        return;
    };
    let (ia, ib) = ([ip("10.99.0.2")], [ip("10.99.0.3")]);
    let (ma, mb) = (
        [map(8080, 80, Proto::Tcp, None)],
        [map(9090, 90, Proto::Udp, None)],
    );
    let (a, b) = (spec("a", &ia, &ma), spec("b", &ib, &mb));
    run(&node, || firewall::add_hostports(&a)).unwrap();
    // Once the layout is there, an ADD is elements only: the rules keep
    // their handles (no setup transaction ran again).
    let handles = |ns: &TestNs| {
        let (ok, out) = ns.exec(&["nft", "-j", "list", "table", "inet", "netboot"]);
        assert!(ok);
        let v: Value = serde_json::from_str(&out).unwrap();
        let rules: Vec<Value> = v["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule").map(|r| r["handle"].clone()))
            .collect();
        assert_eq!(rules.len(), 16);
        rules
    };
    let before = handles(&node);
    run(&node, || firewall::add_hostports(&b)).unwrap();
    assert_eq!(handles(&node), before);
    let owners = |ns: &TestNs| {
        let mut v: Vec<(String, String)> = run(ns, firewall::list_hostport_elements)
            .unwrap()
            .into_iter()
            .map(|e| (e.owner.unwrap_or_default(), e.what))
            .collect();
        v.sort();
        v
    };
    assert_eq!(owners(&node).len(), 6, "{:?}", owners(&node));
    assert_eq!(run(&node, || firewall::del_hostports(&a)).unwrap(), 3);
    let left = owners(&node);
    assert!(left.iter().all(|(o, _)| o == "cbr0/b/eth0"), "{left:?}");
    assert_eq!(left.len(), 3);
    // b's key taken by c: refused, then taken over; b's late DEL leaves
    // c's element and removes only b's masquerade pairs.
    let ic = [ip("10.99.0.4")];
    let mc = [map(9090, 91, Proto::Udp, None)];
    let c = spec("c", &ic, &mc);
    let err = run(&node, || firewall::add_hostports(&c)).unwrap_err();
    assert!(err.is_exists(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("udp 9090 -> 10.99.0.3:90") && msg.contains("cbr0/b/eth0"),
        "{msg}"
    );
    assert_eq!(owners(&node), left, "a refused ADD changes nothing");
    // Left to b: c gets its other elements (its masquerade pairs) only.
    let held = "`udp 9090 -> 10.99.0.3:90` (owner cbr0/b/eth0)".to_string();
    let kept = run(&node, || {
        firewall::resolve_hostports(&c, &|o: &str| o == "cbr0/b/eth0")
    })
    .unwrap();
    assert_eq!((kept.kept, kept.displaced), (vec![held.clone()], vec![]));
    assert_eq!(owners(&node).len(), 5, "{:?}", owners(&node));
    run(&node, || firewall::check_hostports(&b)).unwrap();
    assert!(run(&node, || firewall::check_hostports(&c)).is_err());
    // Taken over: b's late DEL then leaves c's element alone.
    let took = run(&node, || firewall::resolve_hostports(&c, &|_: &str| false)).unwrap();
    assert_eq!((took.kept, took.displaced), (vec![], vec![held]));
    assert_eq!(run(&node, || firewall::del_hostports(&b)).unwrap(), 2);
    run(&node, || firewall::check_hostports(&c)).unwrap();
    assert!(run(&node, || firewall::check_hostports(&b)).is_err());
    assert_eq!(run(&node, || firewall::del_hostports(&c)).unwrap(), 3);
    assert!(owners(&node).is_empty());
}

#[test]
fn sweep_takes_only_stale_owners_and_check_names_what_is_missing() {
    let Some(node) = root_ns() else {
        return;
    };
    let ips = [[ip("10.99.0.2")], [ip("10.99.0.3")], [ip("10.99.0.4")]];
    let maps = [
        [map(8080, 80, Proto::Tcp, None)],
        [map(8081, 80, Proto::Tcp, None)],
        [map(8082, 80, Proto::Tcp, None)],
    ];
    let ids = ["keep", "gone1", "gone2"];
    for i in 0..3 {
        run(&node, || {
            firewall::add_hostports(&spec(ids[i], &ips[i], &maps[i]))
        })
        .unwrap();
    }
    let swept = run(&node, || {
        firewall::sweep_hostports(|o| o != "cbr0/keep/eth0")
    })
    .unwrap();
    assert_eq!(swept.len(), 6);
    let left = run(&node, firewall::list_hostport_elements).unwrap();
    assert_eq!(left.len(), 3);
    assert!(left
        .iter()
        .all(|e| e.owner.as_deref() == Some("cbr0/keep/eth0")));
    assert_eq!(left[0].pod, Some(ip("10.99.0.2")));
    let keep = spec("keep", &ips[0], &maps[0]);
    run(&node, || firewall::check_hostports(&keep)).unwrap();
    // An element gone, then a rule gone: CHECK names each.
    let (ok, _) = node.exec(&[
        "nft",
        "delete",
        "element",
        "inet",
        "netboot",
        "hostports_ip_tcp",
        "{",
        "8080",
        "}",
    ]);
    assert!(ok);
    let err = run(&node, || firewall::check_hostports(&keep))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`tcp 8080 -> 10.99.0.2:80`") && err.contains("missing"),
        "{err}"
    );
    run(&node, || firewall::add_hostports(&keep)).unwrap();
    run(&node, || firewall::check_hostports(&keep)).unwrap();
    let (ok, _) = node.exec(&[
        "nft",
        "flush",
        "chain",
        "inet",
        "netboot",
        "hostports_output",
    ]);
    assert!(ok);
    let err = run(&node, || firewall::check_hostports(&keep))
        .unwrap_err()
        .to_string();
    assert!(err.contains("chain inet netboot hostports_output"), "{err}");
}
