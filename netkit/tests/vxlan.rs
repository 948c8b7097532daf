//! flannel's vxlan data plane (device, ARP, FDB, onlink route) and batched
//! requests, against the real kernel in throwaway namespaces.

mod common;

use std::net::IpAddr;

use common::{mac, need_root, root_ns, TestNs};
use netkit::{Family, Link, LinkEvent, LinkMonitor, Netlink, RouteSpec, VxlanParams};

const VTEP: &str = "0e:00:00:00:00:02";

/// `flannel.1` over an underlay veth `ul0` (10.98.0.1/24) to `peer`.
fn flannel_device(node: &TestNs, peer: &TestNs) -> (Netlink, Link) {
    let mut nl = node.nl();
    // Underlay: a veth to the "other node" namespace.
    nl.link()
        .add_veth("ul0", "ul0", &peer.ns, None, None)
        .unwrap();
    let ul = nl.link().by_name("ul0").unwrap().unwrap();
    nl.addr()
        .add(ul.index, "10.98.0.1/24".parse().unwrap())
        .unwrap();
    nl.link().set_up(ul.index).unwrap();

    let mut p = VxlanParams::new("flannel.1", 1);
    p.local = Some("10.98.0.1".parse().unwrap());
    p.dev = Some(ul.index);
    p.mtu = Some(1450);
    p.mac = Some(mac("0e:00:00:00:00:01"));
    nl.link().add_vxlan(&p).unwrap();
    assert!(nl.link().add_vxlan(&p).unwrap_err().is_exists());
    let vx = nl.link().by_name("flannel.1").unwrap().unwrap();
    assert_eq!(
        (vx.kind.as_deref(), vx.mtu, vx.mac),
        (Some("vxlan"), 1450, p.mac)
    );
    let info = &node.link_json("flannel.1")["linkinfo"];
    assert_eq!(info["info_kind"], "vxlan");
    let d = &info["info_data"];
    assert_eq!(
        (d["id"].as_u64(), d["port"].as_u64()),
        (Some(1), Some(8472))
    );
    assert_eq!(
        (d["local"].as_str(), d["link"].as_str()),
        (Some("10.98.0.1"), Some("ul0"))
    );
    assert_eq!(d["learning"], false);

    nl.addr()
        .add(vx.index, "10.244.1.0/32".parse().unwrap())
        .unwrap();
    nl.link().set_up(vx.index).unwrap();

    (nl, vx)
}

/// One remote lease: 10.244.2.0/24 behind VTEP 0e:..:02 at 10.98.0.2.
fn program_lease(nl: &mut Netlink, vx: &Link) -> RouteSpec {
    let vtep = mac(VTEP);
    let remote_gw: IpAddr = "10.244.2.0".parse().unwrap();
    nl.neigh().add(vx.index, remote_gw, vtep).unwrap();
    nl.neigh().add(vx.index, remote_gw, vtep).unwrap(); // replace: idempotent
    nl.neigh()
        .add_fdb(vx.index, vtep, "10.98.0.2".parse().unwrap())
        .unwrap();
    let route = RouteSpec {
        dst: "10.244.2.0/24".parse().unwrap(),
        gw: Some(remote_gw),
        oif: Some(vx.index),
        onlink: true,
        scope: None,
    };
    nl.route().replace(&route).unwrap();
    nl.route().replace(&route).unwrap();

    route
}

fn check_arp(node: &TestNs, nl: &mut Netlink, vx: &Link, remote_gw: IpAddr) {
    let vtep = mac(VTEP);
    let n = nl.neigh().list(vx.index, false).unwrap();
    assert!(
        n.iter()
            .any(|e| e.ip == Some(remote_gw) && e.mac == Some(vtep) && e.permanent),
        "{n:?}"
    );
    let jn = node.ip(&["neigh", "show", "dev", "flannel.1"]);
    assert_eq!(jn[0]["dst"], "10.244.2.0");
    assert_eq!(jn[0]["lladdr"], "0e:00:00:00:00:02");
    assert_eq!(jn[0]["state"][0], "PERMANENT");
}

fn check_fdb(node: &TestNs, nl: &mut Netlink, vx: &Link) {
    let vtep = mac(VTEP);
    let jf = node.bridge(&["fdb", "show", "dev", "flannel.1"]);
    let entry = |v: &serde_json::Value| v["mac"] == "0e:00:00:00:00:02";
    let e = jf
        .as_array()
        .unwrap()
        .iter()
        .find(|v| entry(v))
        .expect("fdb entry");
    assert_eq!(e["dst"], "10.98.0.2");
    assert_eq!(e["state"], "permanent");
    assert!(
        e["flags"].as_array().unwrap().iter().any(|f| f == "self"),
        "{e}"
    );
    // Replace semantics: a new public IP rewrites the entry, no second dst.
    nl.neigh()
        .add_fdb(vx.index, vtep, "10.98.0.3".parse().unwrap())
        .unwrap();
    let f = nl.neigh().list_fdb(vx.index).unwrap();
    let dsts: Vec<_> = f
        .iter()
        .filter(|e| e.mac == Some(vtep))
        .map(|e| e.ip)
        .collect();
    assert_eq!(dsts, vec![Some("10.98.0.3".parse().unwrap())]);
    // Flood list (head-end replication), written by `bridge`: listing
    // shows one entry per destination.
    for dst in ["10.98.0.2", "10.98.0.3"] {
        let (ok, _) = node.exec(&[
            "bridge",
            "fdb",
            "append",
            "00:00:00:00:00:00",
            "dev",
            "flannel.1",
            "dst",
            dst,
            "self",
            "permanent",
        ]);
        assert!(ok, "bridge fdb append {dst}");
    }
    assert_eq!(
        nl.neigh()
            .list_fdb(vx.index)
            .unwrap()
            .iter()
            .filter(|e| e.mac == Some([0; 6]))
            .count(),
        2
    );
}

fn check_route(node: &TestNs, nl: &mut Netlink, vx: &Link, route: &RouteSpec) {
    let remote_gw = route.gw.unwrap();
    let r = nl.route().list(Family::V4).unwrap();
    let r = r.iter().find(|e| e.dst == route.dst).expect("route");
    assert!(
        r.onlink && r.gw == Some(remote_gw) && r.oif == Some(vx.index),
        "{r:?}"
    );
    let jr = node.ip(&["route", "show", "10.244.2.0/24"]);
    assert_eq!(jr[0]["gateway"], "10.244.2.0");
    assert!(
        jr[0]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "onlink"),
        "{jr}"
    );
}

#[test]
fn vxlan_with_arp_fdb_and_onlink_route() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let (mut nl, vx) = flannel_device(&node, &peer);
    let route = program_lease(&mut nl, &vx);
    let (vtep, remote_gw) = (mac(VTEP), route.gw.unwrap());
    check_arp(&node, &mut nl, &vx, remote_gw);
    check_fdb(&node, &mut nl, &vx);
    check_route(&node, &mut nl, &vx, &route);

    // Lease removal: all three, twice (idempotent).
    for _ in 0..2 {
        nl.route().del(&route).unwrap();
        nl.neigh().del_fdb(vx.index, vtep, None).unwrap();
        nl.neigh().del(vx.index, remote_gw).unwrap();
    }
    assert!(node
        .ip(&["route", "show", "10.244.2.0/24"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(nl
        .neigh()
        .list(vx.index, false)
        .unwrap()
        .iter()
        .all(|e| e.ip != Some(remote_gw)));
    assert!(nl
        .neigh()
        .list_fdb(vx.index)
        .unwrap()
        .iter()
        .all(|e| e.mac != Some(vtep)));
}

#[test]
fn batch_applies_in_order_and_reports_each_failure() {
    let Some(t) = root_ns() else {
        return;
    };
    let mut nl = t.nl();
    nl.link().add_bridge("vtep0", Some(1450), None).unwrap();
    let dev = nl.link().by_name("vtep0").unwrap().unwrap();
    // Like flannel.1's /32: without any local address the netns has no
    // local table yet and the kernel rejects even onlink gateways.
    nl.addr()
        .add(dev.index, "10.244.6.0/32".parse().unwrap())
        .unwrap();
    nl.link().set_up(dev.index).unwrap();
    let vtep = mac("0e:00:00:00:00:07");
    let gw: IpAddr = "10.244.7.0".parse().unwrap();
    let route = RouteSpec {
        dst: "10.244.7.0/24".parse().unwrap(),
        gw: Some(gw),
        oif: Some(dev.index),
        onlink: true,
        scope: None,
    };
    // Without onlink the kernel refuses an unreachable gateway, and says why.
    let bad = RouteSpec {
        onlink: false,
        dst: "10.244.8.0/24".parse().unwrap(),
        ..route.clone()
    };
    let mut b = netkit::Batch::new();
    b.add_neigh(dev.index, gw, vtep);
    b.add_route(&bad).unwrap();
    b.replace_route(&route).unwrap();
    b.del_neigh(dev.index, "10.244.99.0".parse().unwrap()); // missing: ok
    assert_eq!(b.len(), 4);
    let res = nl.apply(b);
    assert_eq!(res.len(), 4);
    assert!(
        res[0].is_ok() && res[2].is_ok() && res[3].is_ok(),
        "{res:?}"
    );
    let err = res[1].as_ref().unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("add route 10.244.8.0/24 via 10.244.7.0"),
        "{msg}"
    );
    assert!(
        msg.contains("kernel: "),
        "extended ACK message missing: {msg}"
    );
    assert!(netkit::first_error(res).is_err());

    let jr = t.ip(&["route", "show", "10.244.7.0/24"]);
    assert_eq!(jr[0]["gateway"], "10.244.7.0");
    let jn = t.ip(&["neigh", "show", "dev", "vtep0"]);
    assert_eq!(jn[0]["lladdr"], "0e:00:00:00:00:07");

    let mut b = netkit::Batch::new();
    b.del_route(&route).unwrap().del_neigh(dev.index, gw);
    netkit::first_error(nl.apply(b)).unwrap();
    assert!(t
        .ip(&["route", "show", "10.244.7.0/24"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(nl.apply(netkit::Batch::new()).is_empty());
}

#[test]
fn link_monitor_reports_removals_on_the_vxlan_device_and_its_deletion() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let mut mon = node
        .ns
        .run(LinkMonitor::open)
        .expect("enter test netns")
        .expect("open link monitor");
    let (mut nl, vx) = flannel_device(&node, &peer);
    // Read until an event about flannel.1 matches `want` (the setup above
    // queued others: ul0, flannel.1 created and set up).
    let mut wait_for = |want: &dyn Fn(&LinkEvent) -> bool| {
        for _ in 0..100 {
            let evs = mon.wait(100).expect("link notifications");
            if evs
                .iter()
                .any(|e| e.concerns("flannel.1", vx.index) && want(e))
            {
                return;
            }
        }
        panic!("no matching flannel.1 notification");
    };
    // A remote's route, ARP and FDB entry deleted behind our back: each
    // notification names the entry.
    let route = program_lease(&mut nl, &vx);
    let gw = route.gw.unwrap();
    nl.route().del(&route).unwrap();
    wait_for(&|e| {
        matches!(e, LinkEvent::Route { gone: true, route: r }
            if r.dst == route.dst && r.gw == Some(gw))
    });
    nl.neigh().del(vx.index, gw).unwrap();
    wait_for(&|e| {
        matches!(e, LinkEvent::Neigh { gone: true, fdb: false, entry }
            if entry.ip == Some(gw))
    });
    nl.neigh().del_fdb(vx.index, mac(VTEP), None).unwrap();
    wait_for(&|e| {
        matches!(e, LinkEvent::Neigh { gone: true, fdb: true, entry }
            if entry.mac == Some(mac(VTEP)))
    });
    // Additions are reported too, with what was written.
    nl.neigh().add(vx.index, gw, mac(VTEP)).unwrap();
    wait_for(&|e| {
        matches!(e, LinkEvent::Neigh { gone: false, fdb: false, entry }
            if entry.ip == Some(gw) && entry.mac == Some(mac(VTEP)) && entry.permanent)
    });
    nl.neigh()
        .add_fdb(vx.index, mac(VTEP), "10.98.0.2".parse().unwrap())
        .unwrap();
    wait_for(&|e| {
        matches!(e, LinkEvent::Neigh { gone: false, fdb: true, entry }
            if entry.ip == Some("10.98.0.2".parse().unwrap()))
    });
    nl.addr()
        .del(vx.index, "10.244.1.0/32".parse().unwrap())
        .unwrap();
    wait_for(&|e| matches!(e, LinkEvent::AddrRemoved { .. }));
    let (ok, _) = node.exec(&["ip", "link", "set", "dev", "flannel.1", "down"]);
    assert!(ok, "ip link set flannel.1 down");
    wait_for(&|e| matches!(e, LinkEvent::Changed(l) if !l.up));
    nl.link().del(vx.index).unwrap();
    wait_for(&|e| matches!(e, LinkEvent::Deleted(l) if l.index == vx.index));
}

#[test]
fn one_entry_reads_route_neighbour_and_fdb() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let (mut nl, vx) = flannel_device(&node, &peer);
    let route = program_lease(&mut nl, &vx);
    let gw = route.gw.unwrap();
    // `ip route get fibmatch`: the entry itself, not the next hop.
    let m = nl.route().fib_match(gw).unwrap().expect("a matching route");
    assert_eq!(
        (m.dst, m.gw, m.oif, m.onlink),
        (route.dst, Some(gw), Some(vx.index), true)
    );
    let n = nl.neigh().get(vx.index, gw).unwrap().expect("ARP entry");
    assert_eq!((n.mac, n.permanent), (Some(mac(VTEP)), true));
    let f = nl
        .neigh()
        .get_fdb(vx.index, mac(VTEP))
        .unwrap()
        .expect("FDB entry");
    assert_eq!(f.ip, Some("10.98.0.2".parse().unwrap()));
    // Gone: None, not an error.
    nl.route().del(&route).unwrap();
    nl.neigh().del(vx.index, gw).unwrap();
    nl.neigh().del_fdb(vx.index, mac(VTEP), None).unwrap();
    assert!(nl
        .route()
        .fib_match(gw)
        .unwrap()
        .is_none_or(|m| m.dst != route.dst));
    assert_eq!(nl.neigh().get(vx.index, gw).unwrap(), None);
    assert_eq!(nl.neigh().get_fdb(vx.index, mac(VTEP)).unwrap(), None);
}

#[test]
fn a_batch_bigger_than_one_datagram_is_applied_whole() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let (mut nl, vx) = flannel_device(&node, &peer);
    // 1000 peers: 3000 requests, far more ACKs than one receive buffer.
    let mut b = netkit::Batch::new();
    for i in 0..1000u32 {
        let net: IpAddr = std::net::Ipv4Addr::from(0x0a_c8_00_00 + (i << 8)).into();
        let m = [0x0e, 0x01, 0, 0, (i >> 8) as u8, i as u8];
        b.add_neigh(vx.index, net, m);
        b.add_fdb(vx.index, m, "10.98.0.2".parse().unwrap());
        b.replace_route(&RouteSpec {
            dst: ipnet::IpNet::new(net, 24).unwrap(),
            gw: Some(net),
            oif: Some(vx.index),
            onlink: true,
            scope: None,
        })
        .unwrap();
    }
    let (datagrams, requests) = (nl.datagrams_sent(), nl.requests_sent());
    let res = nl.apply(b);
    assert_eq!(res.len(), 3000);
    netkit::first_error(res).unwrap();
    // Batched: many requests to a datagram (64 today), not one each.
    assert_eq!(nl.requests_sent() - requests, 3000);
    let sent = nl.datagrams_sent() - datagrams;
    assert!((3000 / 64..=3000 / 32).contains(&sent), "{sent} datagrams");
    let routes = nl.route().list(Family::V4).unwrap();
    assert_eq!(
        routes
            .iter()
            .filter(|r| r.oif == Some(vx.index) && r.gw.is_some())
            .count(),
        1000
    );
    assert_eq!(nl.neigh().list(vx.index, false).unwrap().len(), 1000);
    assert_eq!(
        nl.neigh()
            .list_fdb(vx.index)
            .unwrap()
            .iter()
            .filter(|f| f.permanent && f.mac.is_some_and(|m| m[1] == 1))
            .count(),
        1000
    );
}
