//! netboot-cni with `FLANNEL_IPV6_*` in subnet.env, end to end on a real
//! kernel: dual stack and IPv6-only in native mode (addresses, gateways,
//! routes, pings over both families, CHECK, DEL back to the node's
//! baseline), IPv6 masquerade, IPv6 hostPorts (hostIP filtering included),
//! and bridge mode handing both families to the reference plugins.
//!
//! Pod ranges: 10.2.1.0/24 of 10.2.0.0/16 and fd10:2:1::/64 of
//! fd10:2::/48; the "outside" is 2001:db8::/32 (documentation prefix).

use netboot_tests::cni_node::CniNode;
use netboot_tests::native6_support::{
    add_addr_nodad, assert_ping6, dual_env, fetch6, fetch6_once, ip_of, ips_of, ipv6_addrs,
    result_routes, routes6, serve6, sysctl, v6_only_env, V6_GATEWAY, V6_NETWORK,
};
use netboot_tests::native_support::{NativeNode, Wired};
use netboot_tests::plugin_support::{
    cid, err_code, err_text, fetch, mapping, merged, routes, serve, with_ports, with_prev,
    PluginNode, HOST_PORT, POD_PORT,
};
use netboot_tests::{assert_ping, require_root, Netns, SubnetEnv};
use serde_json::{json, Value};
use std::net::IpAddr;

/// The pod's `eth0` carries `ip` (v4 or v6) with its prefix, and every
/// global IPv6 address there is usable (no `tentative`/`dadfailed`).
#[track_caller]
fn assert_pod_addresses(pod: &Netns, res: &Value) {
    let v4: Vec<String> = ips_of(res, false)
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(pod.ipv4_addrs("eth0"), v4, "IPv4 on eth0: {res}");
    let v6 = ipv6_addrs(pod, "eth0");
    let want: Vec<String> = ips_of(res, true)
        .iter()
        .map(|ip| ip["address"].as_str().unwrap().to_owned())
        .collect();
    let have: Vec<String> = v6.iter().map(|a| a.cidr.clone()).collect();
    assert_eq!(have, want, "IPv6 on eth0: {res}");
    for a in &v6 {
        assert!(
            a.flags.is_empty(),
            "{} is not usable yet: {:?}",
            a.cidr,
            a.flags
        );
    }
}

/// What every dual-stack result of `node` must say, at version `v`.
#[track_caller]
fn assert_dual_result(v: &str, res: &Value, node: &PluginNode) {
    assert_eq!(res["cniVersion"], v, "{res}");
    let ips = res["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 2, "one IP per family: {res}");
    // Range order is flannel's: [[v4], [v6]].
    let v4 = &ips[0];
    let v6 = &ips[1];
    assert!(
        v4["address"].as_str().unwrap().starts_with("10.2.1."),
        "{res}"
    );
    assert!(
        v6["address"].as_str().unwrap().starts_with("fd10:2:1::"),
        "{res}"
    );
    assert!(v6["address"].as_str().unwrap().ends_with("/64"), "{res}");
    assert_eq!(v4["gateway"], node.gateway().as_str(), "{res}");
    assert_eq!(v6["gateway"], V6_GATEWAY, "{res}");
    for (ip, fam) in [(v4, "4"), (v6, "6")] {
        assert_eq!(ip["interface"], 2, "{res}");
        if v.starts_with("0.") {
            assert_eq!(ip["version"], fam, "{v} ips carry version: {res}");
        } else {
            assert!(ip.get("version").is_none(), "{v}: {res}");
        }
    }
    let routes = result_routes(res);
    for want in [
        "10.2.0.0/16".to_owned(),
        V6_NETWORK.to_owned(),
        format!("0.0.0.0/0 via {}", node.gateway()),
        format!("::/0 via {V6_GATEWAY}"),
    ] {
        assert!(routes.contains(&want), "route {want} missing: {routes:?}");
    }
}

/// The pod's kernel routes for both families, as the bridge plugin
/// installs the rendered ones (no `gw` → the family's gateway).
#[track_caller]
fn assert_pod_routes(pod: &Netns, gw4: Option<&str>) {
    let r6 = routes6(pod);
    for want in [
        format!("{V6_NETWORK} via {V6_GATEWAY}"),
        format!("default via {V6_GATEWAY}"),
        "fd10:2:1::/64".to_owned(),
    ] {
        assert!(r6.contains(&want), "{want} missing: {r6:?}");
    }
    let r4 = routes(pod);
    match gw4 {
        Some(gw) => {
            assert!(r4.contains(&format!("10.2.0.0/16 via {gw}")), "{r4:?}");
            assert!(r4.contains(&format!("default via {gw}")), "{r4:?}");
        }
        None => assert_eq!(r4, Vec::<String>::new(), "IPv4 routes in a v6-only pod"),
    }
}

/// Two pods of `node` attached with `conf` (version `v`) get a result
/// and an address of each family, the routes of both, and reach their
/// gateways and each other over IPv4 and IPv6 (native and bridge mode
/// alike).
#[track_caller]
fn dual_stack_pods_talk(
    node: &impl CniNode,
    v: &str,
    conf: &Value,
) -> (Netns, Netns, Value, Value) {
    let pn = node.plugin_node();
    let (a, b) = (pn.pod("a"), pn.pod("b"));
    let res_a = node.add(&a, conf);
    let res_b = node.add(&b, conf);
    assert_dual_result(v, &res_a, pn);
    assert_dual_result(v, &res_b, pn);
    assert_eq!(pn.allocations().len(), 4, "{v}: {:?}", pn.allocations());
    for (pod, res) in [(&a, &res_a), (&b, &res_b)] {
        assert_pod_addresses(pod, res);
        assert_pod_routes(pod, Some(&pn.gateway()));
        assert_ping(pod, &pn.gateway());
        assert_ping6(pod, V6_GATEWAY);
    }
    assert_ping(&a, &ip_of(&res_b, false));
    assert_ping6(&a, &ip_of(&res_b, true));
    assert_ping6(&b, &ip_of(&res_a, true));
    (a, b, res_a, res_b)
}

#[test]
fn dual_stack_add_ping_check_del_at_every_version() {
    require_root();
    let node = NativeNode::with_env("d6rt", dual_env());
    let baseline = {
        let warm = node.pod("warm");
        let conf = node.conf("1.0.0");
        node.add(&warm, &conf);
        node.del(&warm, &conf);
        node.snapshot()
    };
    for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let conf = node.conf(v);
        let (a, b, res_a, res_b) = dual_stack_pods_talk(&node, v, &conf);
        // The bridge: both gateways, usable; forwarding for both families.
        assert_eq!(
            node.ns.ipv4_addrs("cni0"),
            vec![format!("{}/24", node.gateway())]
        );
        let br6 = ipv6_addrs(&node.ns, "cni0");
        assert_eq!(br6.len(), 1, "{br6:?}");
        assert_eq!(br6[0].cidr, format!("{V6_GATEWAY}/64"));
        assert_eq!(sysctl(&node.ns, "net/ipv4/ip_forward"), "1");
        assert_eq!(sysctl(&node.ns, "net/ipv6/conf/all/forwarding"), "1");
        assert_eq!(sysctl(&a, "net/ipv6/conf/eth0/accept_dad"), "0");

        if v != "0.3.1" {
            node.check(&a, &conf, &res_a).expect_ok();
            // CHECK looks at both families: drop the pod's IPv6 address.
            let v6 = ips_of(&res_b, true)[0]["address"]
                .as_str()
                .unwrap()
                .to_owned();
            b.exec(&["ip", "addr", "del", &v6, "dev", "eth0"])
                .expect_ok();
            let broken = node.check(&b, &conf, &res_b);
            assert_eq!(err_code(&broken), 100, "{v}: {}", broken.output);
            assert!(err_text(&broken).contains(&v6), "{}", broken.output);
        }
        node.run(&node.call("DEL", &a, &with_prev(&conf, &res_a)))
            .expect_ok();
        // DEL without prevResult, the netns already gone: the record
        // names both IPs.
        let del_b = node.call("DEL", &b, &conf);
        drop(b);
        node.run(&del_b).expect_ok();
        node.assert_clean(&[&cid(&a)]);
        let diff = node.settled_diff(&baseline);
        assert!(diff.is_empty(), "{v}: node differs from before:\n{diff}");
    }
}

#[test]
fn ipv6_only_add_ping_check_del() {
    require_root();
    let node = NativeNode::with_env("v6only", v6_only_env());
    let conf = node.conf("1.0.0");
    let baseline = {
        let warm = node.pod("warm");
        node.add(&warm, &conf);
        node.del(&warm, &conf);
        node.snapshot()
    };
    let (a, b) = (node.pod("a"), node.pod("b"));
    let res_a = node.add(&a, &conf);
    let res_b = node.add(&b, &conf);
    for res in [&res_a, &res_b] {
        let ips = res["ips"].as_array().unwrap();
        assert_eq!(ips.len(), 1, "{res}");
        assert_eq!(ips[0]["gateway"], V6_GATEWAY, "{res}");
        let routes = result_routes(res);
        assert_eq!(
            routes,
            vec![V6_NETWORK.to_owned(), format!("::/0 via {V6_GATEWAY}")],
            "{res}"
        );
    }
    for (pod, res) in [(&a, &res_a), (&b, &res_b)] {
        assert_pod_addresses(pod, res);
        assert_pod_routes(pod, None);
        assert_ping6(pod, V6_GATEWAY);
    }
    assert_ping6(&a, &ip_of(&res_b, true));
    assert_eq!(node.ns.ipv4_addrs("cni0"), Vec::<String>::new());
    assert_eq!(sysctl(&node.ns, "net/ipv6/conf/all/forwarding"), "1");
    node.check(&a, &conf, &res_a).expect_ok();
    node.check(&b, &conf, &res_b).expect_ok();
    node.del(&a, &conf);
    node.del(&b, &conf);
    node.assert_clean(&[&cid(&a), &cid(&b)]);
    let diff = node.settled_diff(&baseline);
    assert!(diff.is_empty(), "node differs from before:\n{diff}");
}

#[test]
fn ipv6_masquerade_shows_the_node_address_to_the_outside() {
    require_root();
    // FLANNEL_IPMASQ=false: the plugin masquerades (ipMasq = !IPMASQ).
    let env = SubnetEnv {
        ipmasq: false,
        ..dual_env()
    };
    let node = NativeNode::with_env("m6", env);
    let outside = Wired::new(&node, "out6", "vout", "192.0.2.1/24", "192.0.2.2/24");
    add_addr_nodad(&node.ns, "vout", "2001:db8:1::1/64");
    add_addr_nodad(&outside, "eth0", "2001:db8:1::2/64");
    // The outside has no route to fd10:2::/48: only a masqueraded reply
    // comes back.
    serve6(&outside, 9000, "$SOCAT_PEERADDR");
    let pod = node.pod("p");
    let conf = node.conf("1.0.0");
    let res = node.add(&pod, &conf);
    let seen = fetch6(&pod, "2001:db8:1::2", 9000);
    // socat prints the peer's address in full ("2001:0db8:0001:...").
    let seen: Option<IpAddr> = seen.and_then(|s| s.trim_matches(['[', ']']).parse().ok());
    assert_eq!(
        seen,
        Some("2001:db8:1::1".parse().unwrap()),
        "the outside must see the node's address, not {}",
        ip_of(&res, true)
    );
    serve(&outside, 9001, "$SOCAT_PEERADDR");
    assert_eq!(
        fetch(&pod, &outside.far_ip, 9001).as_deref(),
        Some(outside.node_ip.as_str())
    );
    // One rule per family; pod ↔ pod inside fd10:2::/48 is not NATed.
    let rules = node.nft_chain_rules("inet", "netboot", "postrouting");
    assert_eq!(rules.len(), 2, "{rules:#?}");
    let r6 = rules.iter().find(|r| r.contains("ip6")).expect("ip6 rule");
    assert!(
        r6.contains("fd10:2:1::") && r6.contains("fd10:2::") && r6.contains("masquerade"),
        "{r6}"
    );
    node.check(&pod, &conf, &res).expect_ok();
    // CHECK notices the missing IPv6 rule.
    let handle = node.nft_json()["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .find(|r| r["chain"] == "postrouting" && r.to_string().contains("ip6"))
        .and_then(|r| r["handle"].as_u64())
        .expect("ip6 rule handle");
    node.exec(&[
        "nft",
        "delete",
        "rule",
        "inet",
        "netboot",
        "postrouting",
        "handle",
        &handle.to_string(),
    ])
    .expect_ok();
    let broken = node.check(&pod, &conf, &res);
    assert_eq!(err_code(&broken), 100, "{}", broken.output);
    assert!(
        err_text(&broken).contains("fd10:2:1::/64"),
        "{}",
        broken.output
    );
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

#[test]
fn ipv6_host_ports_with_and_without_host_ip() {
    require_root();
    let node = NativeNode::with_env("hp6", dual_env());
    let peer = Wired::peer(&node, "peer6");
    add_addr_nodad(&node.ns, "vpeer", "2001:db8:2::1/64");
    add_addr_nodad(&peer, "eth0", "2001:db8:2::2/64");
    // A second node address that the hostIP mapping must not answer on.
    add_addr_nodad(&node.ns, "vpeer", "2001:db8:2::3/64");
    let (pod, conf, res) = node.serving_pod(
        json!([
            mapping(HOST_PORT, POD_PORT, "tcp"),
            merged(
                &mapping(HOST_PORT + 1, POD_PORT, "tcp"),
                json!({"hostIP": "2001:db8:2::1"}),
            ),
        ]),
        "hello-v4",
    );
    serve6(&pod, POD_PORT, "hello-v6");
    let (v6, v4) = (Some("hello-v6"), Some("hello-v4"));
    // Any-address mapping: both families, from the node and from a peer.
    assert_eq!(fetch6(&node.ns, V6_GATEWAY, HOST_PORT).as_deref(), v6);
    assert_eq!(fetch6(&peer, "2001:db8:2::1", HOST_PORT).as_deref(), v6);
    assert_eq!(fetch(&peer, &peer.node_ip, HOST_PORT).as_deref(), v4);
    // hostIP 2001:db8:2::1: that address only, IPv6 only.
    assert_eq!(fetch6(&peer, "2001:db8:2::1", HOST_PORT + 1).as_deref(), v6);
    assert_eq!(fetch6_once(&peer, "2001:db8:2::3", HOST_PORT + 1), None);
    assert_eq!(fetch6_once(&node.ns, V6_GATEWAY, HOST_PORT + 1), None);
    let id = cid(&pod);
    let owned = |set: &str| {
        node.hostport_elements(set)
            .into_iter()
            .filter(|e| e.contains(&id))
            .collect::<Vec<String>>()
    };
    assert_eq!(owned("hostports_ip6_tcp").len(), 1);
    let hostip6 = owned("hostip_hostports_ip6_tcp");
    assert_eq!(hostip6.len(), 1, "{hostip6:#?}");
    assert!(hostip6[0].contains("2001:db8:2::1"), "{hostip6:#?}");
    // IPv4 has only the any-address mapping.
    assert_eq!(owned("hostports_ip_tcp").len(), 1);
    assert_eq!(owned("hostip_hostports_ip_tcp"), Vec::<String>::new());
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &node.conf("1.0.0"));
    node.assert_clean(&[&id]);
    assert_eq!(fetch6_once(&node.ns, V6_GATEWAY, HOST_PORT), None);
}

#[test]
fn bridge_mode_dual_stack_with_the_reference_plugins() {
    require_root();
    let node = PluginNode::with_env("br6", dual_env());
    let conf = node.conf("1.0.0");
    let (a, b, res_a, res_b) = dual_stack_pods_talk(&node, "1.0.0", &conf);
    // flannel's rendering, both families: [[v4],[v6]] and both networks.
    let scratch: Value =
        serde_json::from_slice(&std::fs::read(node.data_dir.join(cid(&a))).expect("scratch file"))
            .unwrap();
    assert_eq!(
        scratch["ipam"]["ranges"],
        json!([[{"subnet": "10.2.1.0/24"}], [{"subnet": "fd10:2:1::/64"}]]),
        "{scratch}"
    );
    assert_eq!(
        scratch["ipam"]["routes"],
        json!([{"dst": "10.2.0.0/16"}, {"dst": V6_NETWORK}]),
        "{scratch}"
    );
    node.check(&a, &conf, &res_a).expect_ok();
    node.del(&a, &with_prev(&conf, &res_a));
    node.del(&b, &with_prev(&conf, &res_b));
    node.assert_clean(&[&cid(&a), &cid(&b)]);
}

#[test]
fn bridge_mode_ipv6_only_with_a_host_port() {
    require_root();
    let node = PluginNode::with_env("br6o", v6_only_env());
    let pod = node.pod("p");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let res = node.add(&pod, &conf);
    assert_eq!(ips_of(&res, false), Vec::<Value>::new(), "{res}");
    assert_eq!(ips_of(&res, true)[0]["gateway"], V6_GATEWAY, "{res}");
    assert_pod_addresses(&pod, &res);
    assert_pod_routes(&pod, None);
    assert_ping6(&pod, V6_GATEWAY);
    serve6(&pod, POD_PORT, "hello-v6");
    assert_eq!(
        fetch6(&node.ns, V6_GATEWAY, HOST_PORT).as_deref(),
        Some("hello-v6")
    );
    // portmap put its rules in ip6tables only; CHECK looks there.
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &with_prev(&conf, &res));
    node.assert_clean(&[&cid(&pod)]);
    let rules6 = node.exec(&["ip6tables-save"]).expect_ok().stdout;
    assert!(!rules6.contains(&cid(&pod)), "{rules6}");
}

#[test]
fn enabledad_runs_dad_and_add_waits_for_it() {
    require_root();
    let node = NativeNode::with_env("dad6", dual_env());
    let mut conf = node.conf("1.0.0");
    conf["delegate"]["enabledad"] = json!(true);
    let pod = node.pod("p");
    let res = node.add(&pod, &conf);
    // DAD ran (about a second on a fresh link) and ADD returned only
    // once it was over: nothing is tentative when the runtime gets the
    // result.
    assert_eq!(sysctl(&pod, "net/ipv6/conf/eth0/accept_dad"), "1");
    assert_eq!(sysctl(&pod, "net/ipv6/conf/eth0/enhanced_dad"), "1");
    assert_pod_addresses(&pod, &res);
    assert_ping6(&pod, V6_GATEWAY);
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

#[test]
fn gc_releases_both_families_of_stale_attachments() {
    require_root();
    let node = NativeNode::with_env("gc6", dual_env());
    let conf = node.conf("1.1.0");
    let (keep, stale) = (node.pod("keep"), node.pod("stale"));
    let keep_res = node.add(&keep, &conf);
    node.add(&stale, &with_ports(&conf, HOST_PORT, POD_PORT));
    let id = cid(&stale);
    assert_eq!(node.allocations().len(), 4);
    let v6_rules = |n: &NativeNode| {
        n.hostport_elements("hostports_ip6_tcp")
            .into_iter()
            .filter(|e| e.contains(&id))
            .count()
    };
    assert_eq!(v6_rules(&node), 1, "IPv6 DNAT element of the stale pod");
    node.gc(&conf, &[&cid(&keep)]);
    let mut kept = node.allocations();
    kept.sort();
    let mut want = vec![ip_of(&keep_res, false), ip_of(&keep_res, true)];
    want.sort();
    assert_eq!(kept, want, "GC keeps both IPs of the valid attachment only");
    assert_eq!(v6_rules(&node), 0);
    assert_eq!(node.nft_mentioning(&id), Vec::<String>::new());
    node.check(&keep, &conf, &keep_res).expect_ok();
    node.del(&keep, &conf);
    node.assert_clean(&[&cid(&keep), &id]);
}
