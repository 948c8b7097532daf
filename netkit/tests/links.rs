//! Links, addresses, routes, neighbours against the real kernel, each test in
//! its own namespaces; every result checked through netkit AND `ip -j`.

mod common;

use std::net::IpAddr;

use common::{mac, need_root, root_links, TestNs};
use netkit::{host_veth_name, Family, RouteSpec, Scope, VxlanParams};

#[test]
fn veth_peer_is_created_directly_in_target_ns() {
    if !need_root() {
        return;
    }
    let root_before = root_links();
    let (host, cont) = (TestNs::new(), TestNs::new());
    let hname = host_veth_name("container-1", "eth0");
    let mut nl = host.nl();
    nl.add_veth(
        &hname,
        "eth0",
        &cont.ns,
        Some(1400),
        Some(mac("0a:58:0a:f4:01:02")),
    )
    .unwrap();

    let h = nl.link_by_name(&hname).unwrap().expect("host end");
    assert_eq!(
        (h.mtu, h.kind.as_deref(), h.up),
        (1400, Some("veth"), false)
    );
    assert!(
        nl.link_by_name("eth0").unwrap().is_none(),
        "peer leaked into host ns"
    );
    let p = cont.nl().link_by_name("eth0").unwrap().expect("peer");
    assert_eq!(p.mac, Some(mac("0a:58:0a:f4:01:02")));
    assert_eq!(p.mtu, 1400);
    // The kernel's view, through iproute2.
    let j = cont.link_json("eth0");
    assert_eq!(j["address"], "0a:58:0a:f4:01:02");
    assert_eq!(j["mtu"], 1400);
    assert_eq!(j["linkinfo"]["info_kind"], "veth");
    assert_eq!(host.link_json(&hname)["ifindex"], h.index);
    assert_eq!(p.link, Some(h.index), "peer's IFLA_LINK is the host end");

    // Same names again: EEXIST, with a message naming the objects.
    let err = nl
        .add_veth(&hname, "eth0", &cont.ns, None, None)
        .unwrap_err();
    assert!(err.is_exists(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("create veth {hname}")) && msg.contains("peer eth0 in /run/netns/"),
        "{msg}"
    );
    assert!(msg.contains("File exists"), "{msg}");

    // Deleting one end removes both; a second delete is a no-op.
    nl.del_link(h.index).unwrap();
    nl.del_link(h.index).unwrap();
    assert!(cont.nl().link_by_name("eth0").unwrap().is_none());
    assert_eq!(root_links(), root_before, "root namespace changed");
}

#[test]
fn bridge_port_hairpin_mtu_addr_route() {
    if !need_root() {
        return;
    }
    let (host, cont) = (TestNs::new(), TestNs::new());
    let mut nl = host.nl();
    nl.add_bridge("cni0", Some(1450), Some(mac("02:00:00:00:00:01")))
        .unwrap();
    let br = nl.link_by_name("cni0").unwrap().unwrap();
    assert_eq!((br.kind.as_deref(), br.mtu), (Some("bridge"), 1450));
    assert!(nl.add_bridge("cni0", None, None).unwrap_err().is_exists());

    nl.add_veth("vethbr0", "eth0", &cont.ns, Some(1450), None)
        .unwrap();
    let v = nl.link_by_name("vethbr0").unwrap().unwrap();
    nl.set_master(v.index, br.index).unwrap();
    nl.set_hairpin(v.index, true).unwrap();
    nl.set_mtu(v.index, 1400).unwrap();
    nl.set_up(v.index).unwrap();
    nl.set_up(br.index).unwrap();
    let v = nl.link_by_index(v.index).unwrap().unwrap();
    assert_eq!((v.master, v.mtu, v.up), (Some(br.index), 1400, true));
    let j = host.link_json("vethbr0");
    assert_eq!(j["master"], "cni0");
    assert_eq!(j["linkinfo"]["info_slave_kind"], "bridge");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], true);
    nl.set_hairpin(v.index, false).unwrap();
    assert_eq!(
        host.link_json("vethbr0")["linkinfo"]["info_slave_data"]["hairpin"],
        false
    );

    // Gateway address on the bridge.
    let gw: ipnet::IpNet = "10.99.0.1/24".parse().unwrap();
    nl.add_addr(br.index, gw).unwrap();
    assert!(nl.add_addr(br.index, gw).unwrap_err().is_exists());
    assert_eq!(
        nl.addrs(Some(br.index))
            .unwrap()
            .iter()
            .filter(|a| a.addr == gw)
            .count(),
        1
    );
    let a = &host.ip(&["addr", "show", "dev", "cni0"])[0]["addr_info"];
    let v4 = a
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["family"] == "inet")
        .unwrap();
    assert_eq!(
        (v4["local"].as_str(), v4["prefixlen"].as_u64()),
        (Some("10.99.0.1"), Some(24))
    );
    assert_eq!(v4["broadcast"], "10.99.0.255");

    // Container side: address, up, default route via the bridge.
    let mut cnl = cont.nl();
    let eth0 = cnl.link_by_name("eth0").unwrap().unwrap();
    cnl.add_addr(eth0.index, "10.99.0.2/24".parse().unwrap())
        .unwrap();
    cnl.set_up(eth0.index).unwrap();
    let lo = cnl.link_by_name("lo").unwrap().unwrap();
    cnl.set_up(lo.index).unwrap();
    let default = RouteSpec {
        dst: "0.0.0.0/0".parse().unwrap(),
        gw: Some("10.99.0.1".parse().unwrap()),
        oif: Some(eth0.index),
        onlink: false,
        scope: None,
    };
    cnl.add_route(&default).unwrap();
    assert!(cnl.add_route(&default).unwrap_err().is_exists());
    cnl.replace_route(&default).unwrap();
    let routes = cnl.routes(Family::V4).unwrap();
    let d = routes
        .iter()
        .find(|r| r.dst.prefix_len() == 0)
        .expect("default route");
    assert_eq!(
        (d.gw, d.oif, d.scope),
        (default.gw, Some(eth0.index), Scope::Universe)
    );
    let connected = routes
        .iter()
        .find(|r| r.dst == "10.99.0.0/24".parse().unwrap())
        .unwrap();
    assert_eq!(connected.scope, Scope::Link);
    let jr = cont.ip(&["route", "show", "default"]);
    assert_eq!(jr[0]["gateway"], "10.99.0.1");
    assert_eq!(jr[0]["dev"], "eth0");

    // And packets actually flow container -> bridge gateway.
    let (ok, _) = cont.exec(&["ping", "-c1", "-W2", "10.99.0.1"]);
    assert!(ok, "ping through veth + bridge failed");

    cnl.del_route(&default).unwrap();
    cnl.del_route(&default).unwrap();
    assert!(cont
        .ip(&["route", "show", "default"])
        .as_array()
        .unwrap()
        .is_empty());
    nl.del_addr(br.index, gw).unwrap();
    nl.del_addr(br.index, gw).unwrap();
    assert!(nl
        .addrs(Some(br.index))
        .unwrap()
        .iter()
        .all(|a| a.addr != gw));
}

#[test]
fn vxlan_with_arp_fdb_and_onlink_route() {
    if !need_root() {
        return;
    }
    let (node, peer) = (TestNs::new(), TestNs::new());
    let mut nl = node.nl();
    // Underlay: a veth to the "other node" namespace.
    nl.add_veth("ul0", "ul0", &peer.ns, None, None).unwrap();
    let ul = nl.link_by_name("ul0").unwrap().unwrap();
    nl.add_addr(ul.index, "10.98.0.1/24".parse().unwrap())
        .unwrap();
    nl.set_up(ul.index).unwrap();

    let mut p = VxlanParams::new("flannel.1", 1);
    p.local = Some("10.98.0.1".parse().unwrap());
    p.dev = Some(ul.index);
    p.mtu = Some(1450);
    p.mac = Some(mac("0e:00:00:00:00:01"));
    nl.add_vxlan(&p).unwrap();
    assert!(nl.add_vxlan(&p).unwrap_err().is_exists());
    let vx = nl.link_by_name("flannel.1").unwrap().unwrap();
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

    nl.add_addr(vx.index, "10.244.1.0/32".parse().unwrap())
        .unwrap();
    nl.set_up(vx.index).unwrap();

    // One remote lease: 10.244.2.0/24 behind VTEP 0e:..:02 at 10.98.0.2.
    let vtep = mac("0e:00:00:00:00:02");
    let remote_gw: IpAddr = "10.244.2.0".parse().unwrap();
    nl.add_neigh(vx.index, remote_gw, vtep).unwrap();
    nl.add_neigh(vx.index, remote_gw, vtep).unwrap(); // replace: idempotent
    nl.add_fdb(vx.index, vtep, "10.98.0.2".parse().unwrap())
        .unwrap();
    let route = RouteSpec {
        dst: "10.244.2.0/24".parse().unwrap(),
        gw: Some(remote_gw),
        oif: Some(vx.index),
        onlink: true,
        scope: None,
    };
    nl.replace_route(&route).unwrap();
    nl.replace_route(&route).unwrap();

    let n = nl.neighs(vx.index, false).unwrap();
    assert!(
        n.iter()
            .any(|e| e.ip == Some(remote_gw) && e.mac == Some(vtep) && e.permanent),
        "{n:?}"
    );
    let jn = node.ip(&["neigh", "show", "dev", "flannel.1"]);
    assert_eq!(jn[0]["dst"], "10.244.2.0");
    assert_eq!(jn[0]["lladdr"], "0e:00:00:00:00:02");
    assert_eq!(jn[0]["state"][0], "PERMANENT");

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
    nl.add_fdb(vx.index, vtep, "10.98.0.3".parse().unwrap())
        .unwrap();
    let f = nl.fdb(vx.index).unwrap();
    let dsts: Vec<_> = f
        .iter()
        .filter(|e| e.mac == Some(vtep))
        .map(|e| e.ip)
        .collect();
    assert_eq!(dsts, vec![Some("10.98.0.3".parse().unwrap())]);
    nl.append_fdb(vx.index, [0; 6], "10.98.0.2".parse().unwrap())
        .unwrap();
    nl.append_fdb(vx.index, [0; 6], "10.98.0.3".parse().unwrap())
        .unwrap();
    assert_eq!(
        nl.fdb(vx.index)
            .unwrap()
            .iter()
            .filter(|e| e.mac == Some([0; 6]))
            .count(),
        2
    );

    let r = nl.routes(Family::V4).unwrap();
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

    // Lease removal: all three, twice (idempotent).
    for _ in 0..2 {
        nl.del_route(&route).unwrap();
        nl.del_fdb(vx.index, vtep, None).unwrap();
        nl.del_neigh(vx.index, remote_gw).unwrap();
    }
    assert!(node
        .ip(&["route", "show", "10.244.2.0/24"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(nl
        .neighs(vx.index, false)
        .unwrap()
        .iter()
        .all(|e| e.ip != Some(remote_gw)));
    assert!(nl
        .fdb(vx.index)
        .unwrap()
        .iter()
        .all(|e| e.mac != Some(vtep)));
}

#[test]
fn links_lists_everything_and_moves_between_namespaces() {
    if !need_root() {
        return;
    }
    let (a, b) = (TestNs::new(), TestNs::new());
    let mut nl = a.nl();
    nl.add_bridge("br-move", None, None).unwrap();
    let names: Vec<String> = nl.links().unwrap().into_iter().map(|l| l.name).collect();
    assert!(names.contains(&"lo".to_string()) && names.contains(&"br-move".to_string()));
    nl.add_veth("mv0", "mv1", &a.ns, None, None).unwrap();
    let mv1 = nl.link_by_name("mv1").unwrap().unwrap();
    nl.set_netns(mv1.index, &b.ns).unwrap();
    assert!(nl.link_by_name("mv1").unwrap().is_none());
    assert!(b.nl().link_by_name("mv1").unwrap().is_some());
    assert_eq!(b.link_json("mv1")["ifname"], "mv1");
    let mv0 = nl.link_by_name("mv0").unwrap().unwrap();
    nl.set_mac(mv0.index, mac("02:11:22:33:44:55")).unwrap();
    assert_eq!(a.link_json("mv0")["address"], "02:11:22:33:44:55");
    nl.del_link_by_name("mv0").unwrap();
    assert!(b.nl().link_by_name("mv1").unwrap().is_none());
}

#[test]
fn batch_applies_in_order_and_reports_each_failure() {
    if !need_root() {
        return;
    }
    let t = TestNs::new();
    let mut nl = t.nl();
    nl.add_bridge("vtep0", Some(1450), None).unwrap();
    let dev = nl.link_by_name("vtep0").unwrap().unwrap();
    // Like flannel.1's /32: without any local address the netns has no
    // local table yet and the kernel rejects even onlink gateways.
    nl.add_addr(dev.index, "10.244.6.0/32".parse().unwrap())
        .unwrap();
    nl.set_up(dev.index).unwrap();
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
