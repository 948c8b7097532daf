//! Links, addresses, routes, neighbours against the real kernel, each test in
//! its own namespaces; every result checked through netkit AND `ip -j`.

mod common;

use common::{mac, need_root, root_links, TestNs};
use ipnet::IpNet;
use netkit::{host_veth_name, Family, Link, Netlink, RouteSpec, Scope};

#[test]
fn veth_peer_is_created_directly_in_target_ns() {
    if !need_root() {
        return;
    }
    let root_before = root_links();
    let (host, cont) = (TestNs::new(), TestNs::new());
    let hname = host_veth_name("container-1", "eth0");
    let mut nl = host.nl();
    nl.link()
        .add_veth(
            &hname,
            "eth0",
            &cont.ns,
            Some(1400),
            Some(mac("0a:58:0a:f4:01:02")),
        )
        .unwrap();

    let h = nl.link().by_name(&hname).unwrap().expect("host end");
    assert_eq!(
        (h.mtu, h.kind.as_deref(), h.up),
        (1400, Some("veth"), false)
    );
    assert!(
        nl.link().by_name("eth0").unwrap().is_none(),
        "peer leaked into host ns"
    );
    let p = cont.nl().link().by_name("eth0").unwrap().expect("peer");
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
        .link()
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
    nl.link().del(h.index).unwrap();
    nl.link().del(h.index).unwrap();
    assert!(cont.nl().link().by_name("eth0").unwrap().is_none());
    assert_eq!(root_links(), root_before, "root namespace changed");
}

/// cni0 (mtu 1450, fixed MAC) with one hairpin port whose peer is in `cont`.
fn bridge_with_hairpin_port(host: &TestNs, cont: &TestNs) -> (Netlink, Link) {
    let mut nl = host.nl();
    nl.link()
        .add_bridge("cni0", Some(1450), Some(mac("02:00:00:00:00:01")))
        .unwrap();
    let br = nl.link().by_name("cni0").unwrap().unwrap();
    assert_eq!((br.kind.as_deref(), br.mtu), (Some("bridge"), 1450));
    assert!(nl
        .link()
        .add_bridge("cni0", None, None)
        .unwrap_err()
        .is_exists());

    nl.link()
        .add_veth("vethbr0", "eth0", &cont.ns, Some(1450), None)
        .unwrap();
    let v = nl.link().by_name("vethbr0").unwrap().unwrap();
    nl.link().set_master(v.index, br.index).unwrap();
    nl.link().set_hairpin(v.index, true).unwrap();
    nl.link().set_mtu(v.index, 1400).unwrap();
    nl.link().set_up(v.index).unwrap();
    nl.link().set_up(br.index).unwrap();
    let v = nl.link().by_index(v.index).unwrap().unwrap();
    assert_eq!((v.master, v.mtu, v.up), (Some(br.index), 1400, true));
    let j = host.link_json("vethbr0");
    assert_eq!(j["master"], "cni0");
    assert_eq!(j["linkinfo"]["info_slave_kind"], "bridge");
    assert_eq!(j["linkinfo"]["info_slave_data"]["hairpin"], true);
    nl.link().set_hairpin(v.index, false).unwrap();
    assert_eq!(
        host.link_json("vethbr0")["linkinfo"]["info_slave_data"]["hairpin"],
        false
    );
    (nl, br)
}

/// The gateway address on the bridge, checked via netkit and `ip -j addr`.
fn bridge_gateway_addr(host: &TestNs, nl: &mut Netlink, br: &Link, gw: IpNet) {
    // Gateway address on the bridge.
    nl.addr().add(br.index, gw).unwrap();
    assert!(nl.addr().add(br.index, gw).unwrap_err().is_exists());
    assert_eq!(
        nl.addr()
            .list(Some(br.index))
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
}

/// Container side: address, up, default route via the bridge, ping.
fn container_default_route(cont: &TestNs) {
    // Container side: address, up, default route via the bridge.
    let mut cnl = cont.nl();
    let eth0 = cnl.link().by_name("eth0").unwrap().unwrap();
    cnl.addr()
        .add(eth0.index, "10.99.0.2/24".parse().unwrap())
        .unwrap();
    cnl.link().set_up(eth0.index).unwrap();
    let lo = cnl.link().by_name("lo").unwrap().unwrap();
    cnl.link().set_up(lo.index).unwrap();
    let default = RouteSpec {
        dst: "0.0.0.0/0".parse().unwrap(),
        gw: Some("10.99.0.1".parse().unwrap()),
        oif: Some(eth0.index),
        onlink: false,
        scope: None,
    };
    cnl.route().add(&default).unwrap();
    assert!(cnl.route().add(&default).unwrap_err().is_exists());
    cnl.route().replace(&default).unwrap();
    let routes = cnl.route().list(Family::V4).unwrap();
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

    cnl.route().del(&default).unwrap();
    cnl.route().del(&default).unwrap();
    assert!(cont
        .ip(&["route", "show", "default"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn bridge_port_hairpin_mtu_addr_route() {
    if !need_root() {
        return;
    }
    let (host, cont) = (TestNs::new(), TestNs::new());
    let (mut nl, br) = bridge_with_hairpin_port(&host, &cont);
    let gw: IpNet = "10.99.0.1/24".parse().unwrap();
    bridge_gateway_addr(&host, &mut nl, &br, gw);
    container_default_route(&cont);
    nl.addr().del(br.index, gw).unwrap();
    nl.addr().del(br.index, gw).unwrap();
    assert!(nl
        .addr()
        .list(Some(br.index))
        .unwrap()
        .iter()
        .all(|a| a.addr != gw));
}

#[test]
fn links_lists_everything_and_moves_between_namespaces() {
    if !need_root() {
        return;
    }
    let (a, b) = (TestNs::new(), TestNs::new());
    let mut nl = a.nl();
    nl.link().add_bridge("br-move", None, None).unwrap();
    let names: Vec<String> = nl
        .link()
        .list()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert!(names.contains(&"lo".to_string()) && names.contains(&"br-move".to_string()));
    nl.link().add_veth("mv0", "mv1", &a.ns, None, None).unwrap();
    assert!(nl.link().by_name("mv1").unwrap().is_some());
    let (ok, _) = a.exec(&["ip", "link", "set", "dev", "mv1", "netns", &b.name]);
    assert!(ok, "ip link set mv1 netns {}", b.name);
    assert!(nl.link().by_name("mv1").unwrap().is_none());
    assert!(b.nl().link().by_name("mv1").unwrap().is_some());
    assert_eq!(b.link_json("mv1")["ifname"], "mv1");
    let mv0 = nl.link().by_name("mv0").unwrap().unwrap();
    nl.link()
        .set_mac(mv0.index, mac("02:11:22:33:44:55"))
        .unwrap();
    assert_eq!(a.link_json("mv0")["address"], "02:11:22:33:44:55");
    nl.link().del_by_name("mv0").unwrap();
    assert!(b.nl().link().by_name("mv1").unwrap().is_none());
}

#[test]
fn ipv6_address_flags_and_nodad() {
    if !need_root() {
        return;
    }
    let (host, cont) = (TestNs::new(), TestNs::new());
    let mut nl = host.nl();
    nl.link()
        .add_veth("vdad0", "eth0", &cont.ns, None, None)
        .unwrap();
    let v = nl.link().by_name("vdad0").unwrap().unwrap();
    // On a link that is down DAD cannot start: a plain IPv6 address stays
    // tentative until the link comes up; a `nodad` one never is.
    let (dad, nodad): (IpNet, IpNet) = (
        "fd00:99::1/64".parse().unwrap(),
        "fd00:99::2/64".parse().unwrap(),
    );
    nl.addr().add(v.index, dad).unwrap();
    nl.addr().add_nodad(v.index, nodad).unwrap();
    assert!(nl.addr().add_nodad(v.index, nodad).unwrap_err().is_exists());
    let addrs = nl.addr().list(Some(v.index)).unwrap();
    let find = |a: IpNet| *addrs.iter().find(|x| x.addr == a).expect("address listed");
    assert!(find(dad).is_tentative() && !find(dad).is_dad_failed());
    assert!(!find(nodad).is_tentative() && !find(nodad).is_dad_failed());
    // The kernel's view, through iproute2.
    let info = &host.ip(&["-6", "addr", "show", "dev", "vdad0"])[0]["addr_info"];
    let flag = |ip: &str, f: &str| {
        info.as_array()
            .unwrap()
            .iter()
            .find(|i| i["local"] == ip)
            .is_some_and(|i| i[f] == true)
    };
    assert!(flag("fd00:99::1", "tentative") && !flag("fd00:99::1", "nodad"));
    assert!(flag("fd00:99::2", "nodad") && !flag("fd00:99::2", "tentative"));
    // IPv4 takes no DAD: `add_addr_nodad` is a plain add.
    let v4: IpNet = "10.99.9.1/24".parse().unwrap();
    nl.addr().add_nodad(v.index, v4).unwrap();
    let a = nl.addr().list(Some(v.index)).unwrap();
    assert!(a.iter().any(|x| x.addr == v4 && !x.is_tentative()));
}
