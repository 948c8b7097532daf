//! netkit::firewall against the real kernel. Every nft/iptables call runs
//! inside a throwaway named netns (through `Netns::run`, whose thread's
//! children inherit the namespace); nothing touches the root netns.

mod common;

use common::hostport::{HostportLab, POD_IP};
use common::portmap::{ip, map, run, spec};
use common::{need_root, root_ns, TestNs};
use ipnet::IpNet;
use netkit::firewall::{self, PortMapping, Proto};
use serde_json::Value;

/// `nft -j list ARGS` in `ns`, as the list of its `nftables` objects
/// (empty when the object does not exist).
fn nft_json(ns: &TestNs, args: &[&str]) -> Vec<Value> {
    let mut cmd = vec!["nft", "-j", "list"];
    cmd.extend_from_slice(args);
    let (ok, out) = ns.exec(&cmd);
    if !ok {
        return vec![];
    }
    let v: Value = serde_json::from_str(&out).expect("nft -j output is JSON");
    v["nftables"].as_array().unwrap().clone()
}

fn rules<'a>(objs: &'a [Value], chain: &str) -> Vec<&'a Value> {
    objs.iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["chain"] == chain)
        .collect()
}

fn chain<'a>(objs: &'a [Value], name: &str) -> Option<&'a Value> {
    objs.iter()
        .filter_map(|o| o.get("chain"))
        .find(|c| c["name"] == name)
}

fn tcp(host: u16, cont: u16) -> PortMapping {
    map(host, cont, Proto::Tcp, None)
}

fn payload_match(e: &Value, proto: &str, field: &str) -> Value {
    let m = &e["match"];
    assert_eq!(m["left"]["payload"]["protocol"], proto, "{e}");
    assert_eq!(m["left"]["payload"]["field"], field, "{e}");
    m["right"].clone()
}

#[test]
fn portmap_rules_have_upstream_layout_and_check_passes() {
    let Some(node) = root_ns() else {
        return;
    };
    let ips = [ip("10.99.0.2"), ip("fd99::2")];
    let maps = [
        tcp(8080, 80),
        PortMapping {
            host_port: 5353,
            container_port: 53,
            protocol: Proto::Udp,
            host_ip: Some(ip("192.0.2.1")),
        },
        PortMapping {
            host_port: 9999,
            container_port: 99,
            protocol: Proto::Sctp,
            host_ip: None,
        },
    ];
    let s = spec("cid-a", &ips, &maps);
    run(&node, || firewall::add_port_mappings(&s)).unwrap();

    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    // Base chains: hooks and priorities exactly as knftables renders
    // portmap's (dstnat = -100, srcnat = 100).
    for (name, hook, prio) in [
        ("prerouting", "prerouting", -100),
        ("output", "output", -100),
        ("masquerading", "postrouting", 100),
    ] {
        let c = chain(&t, name).unwrap_or_else(|| panic!("chain {name}"));
        assert_eq!(
            (&c["type"], &c["hook"], &c["prio"]),
            (&"nat".into(), &hook.into(), &prio.into())
        );
    }
    for name in ["hostports", "hostip_hostports", "hostports_all"] {
        assert!(
            chain(&t, name).unwrap().get("hook").is_none(),
            "{name} is a regular chain"
        );
    }
    for base in ["prerouting", "output"] {
        let r = rules(&t, base);
        assert_eq!(r.len(), 1);
        let e = r[0]["expr"].as_array().unwrap();
        assert_eq!(e[0]["match"]["left"]["fib"]["result"], "type");
        assert_eq!(e[0]["match"]["left"]["fib"]["flags"][0], "daddr");
        assert_eq!(e[0]["match"]["right"], "local");
        assert_eq!(e[1]["jump"]["target"], "hostports_all");
    }
    let all: Vec<_> = rules(&t, "hostports_all")
        .iter()
        .map(|r| r["expr"][0]["jump"]["target"].clone())
        .collect();
    assert_eq!(all, ["hostip_hostports", "hostports"]);

    let hp = rules(&t, "hostports");
    assert_eq!(hp.len(), 3);
    assert!(
        hp.iter().all(|r| r["comment"] == "cid-a"),
        "comment is the bare container ID"
    );
    let e = hp[0]["expr"].as_array().unwrap();
    assert_eq!(payload_match(&e[0], "tcp", "dport"), 8080);
    assert_eq!(e[1]["dnat"]["addr"], "10.99.0.2");
    assert_eq!(e[1]["dnat"]["port"], 80);
    let e = hp[1]["expr"].as_array().unwrap();
    assert_eq!(payload_match(&e[0], "ip", "daddr"), "192.0.2.1");
    assert_eq!(payload_match(&e[1], "udp", "dport"), 5353);
    assert_eq!(e[2]["dnat"]["port"], 53);
    assert_eq!(payload_match(&hp[2]["expr"][0], "sctp", "dport"), 9999);

    let mq = rules(&t, "masquerading");
    assert_eq!(mq.len(), 2);
    assert_eq!(payload_match(&mq[0]["expr"][0], "ip", "saddr"), "10.99.0.2");
    assert_eq!(payload_match(&mq[0]["expr"][1], "ip", "daddr"), "10.99.0.2");
    assert_eq!(payload_match(&mq[1]["expr"][0], "ip", "saddr"), "127.0.0.1");
    assert!(mq[1]["expr"][2].get("masquerade").is_some());
    let (_, text) = node.exec(&["nft", "list", "table", "ip", "cni_hostport"]);
    assert!(text.contains("comment \"CNI portmap plugin\""), "{text}");

    // IPv6: the v4 hostIP mapping is skipped, no localhost rule.
    let t6 = nft_json(&node, &["table", "ip6", "cni_hostport"]);
    assert_eq!(rules(&t6, "hostports").len(), 2);
    assert_eq!(
        rules(&t6, "hostports")[0]["expr"][1]["dnat"]["addr"],
        "fd99::2"
    );
    assert_eq!(rules(&t6, "masquerading").len(), 1);

    run(&node, || firewall::check_port_mappings(&s)).unwrap();
    assert!(firewall::needs_route_localnet(&s));
    assert_eq!(
        run(&node, firewall::list_port_mapping_owners).unwrap(),
        ["cid-a"]
    );
}

#[test]
fn check_names_missing_rule_and_del_is_idempotent() {
    let Some(node) = root_ns() else {
        return;
    };
    let ips = [ip("10.99.0.2")];
    let maps = [tcp(8080, 80), tcp(8443, 443)];
    let s = spec("cid-b", &ips, &maps);
    // Nothing yet: DEL is fine, CHECK names the table, no owners.
    run(&node, || firewall::del_port_mappings("cbr0", "cid-b")).unwrap();
    let err = run(&node, || firewall::check_port_mappings(&s)).unwrap_err();
    assert!(err.to_string().contains("table ip cni_hostport"), "{err}");
    assert!(run(&node, firewall::list_port_mapping_owners)
        .unwrap()
        .is_empty());

    run(&node, || firewall::add_port_mappings(&s)).unwrap();
    run(&node, || firewall::check_port_mappings(&s)).unwrap();
    // Corrupt: delete the 8443 rule behind our back.
    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    let h = rules(&t, "hostports")[1]["handle"].to_string();
    let (ok, _) = node.exec(&[
        "nft",
        "delete",
        "rule",
        "ip",
        "cni_hostport",
        "hostports",
        "handle",
        &h,
    ]);
    assert!(ok);
    let err = run(&node, || firewall::check_port_mappings(&s)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("tcp dport 8443 dnat to 10.99.0.2:443")
            && msg.contains("chain ip cni_hostport hostports")
            && msg.contains("cid-b"),
        "{msg}"
    );
    // A removed jump is caught too.
    run(&node, || firewall::del_port_mappings("cbr0", "cid-b")).unwrap();
    run(&node, || firewall::add_port_mappings(&s)).unwrap();
    node.exec(&["nft", "flush", "chain", "ip", "cni_hostport", "output"]);
    let err = run(&node, || firewall::check_port_mappings(&s)).unwrap_err();
    assert!(
        err.to_string()
            .contains("`fib daddr type local jump hostports_all` in chain ip cni_hostport output"),
        "{err}"
    );
    run(&node, || firewall::del_port_mappings("cbr0", "cid-b")).unwrap();
    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    for c in ["hostports", "masquerading"] {
        assert!(rules(&t, c).is_empty(), "{c} emptied");
    }
    run(&node, || firewall::del_port_mappings("cbr0", "cid-b")).unwrap();
    // The steady-state ADD only adds rules, so it does not repair a jump
    // or base chain removed by hand while hostports/masquerading still
    // exist (documented); CHECK keeps saying so. A missing table, or a
    // missing chain the rules go to, makes ADD rebuild everything.
    run(&node, || firewall::add_port_mappings(&s)).unwrap();
    assert!(run(&node, || firewall::check_port_mappings(&s)).is_err());
    run(&node, || firewall::del_port_mappings("cbr0", "cid-b")).unwrap();
    node.exec(&[
        "nft",
        "delete",
        "chain",
        "ip",
        "cni_hostport",
        "masquerading",
    ]);
    run(&node, || firewall::add_port_mappings(&s)).unwrap();
    run(&node, || firewall::check_port_mappings(&s)).unwrap();
    node.exec(&["nft", "delete", "table", "ip", "cni_hostport"]);
    run(&node, || firewall::add_port_mappings(&s)).unwrap();
    run(&node, || firewall::check_port_mappings(&s)).unwrap();
}

#[test]
fn two_containers_with_the_same_ip_keep_separate_rules() {
    let Some(node) = root_ns() else {
        return;
    };
    let ips = [ip("10.99.0.7")];
    let (ma, mb) = ([tcp(8080, 80)], [tcp(9090, 90)]);
    let (a, b) = (spec("old-pod", &ips, &ma), spec("new-pod", &ips, &mb));
    run(&node, || firewall::add_port_mappings(&a)).unwrap();
    run(&node, || firewall::add_port_mappings(&b)).unwrap();
    assert_eq!(
        run(&node, firewall::list_port_mapping_owners).unwrap(),
        ["new-pod", "old-pod"]
    );
    run(&node, || firewall::del_port_mappings("cbr0", "old-pod")).unwrap();
    run(&node, || firewall::check_port_mappings(&b)).unwrap();
    assert!(run(&node, || firewall::check_port_mappings(&a)).is_err());
    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    assert!(rules(&t, "hostports")
        .iter()
        .all(|r| r["comment"] == "new-pod"));
    assert_eq!(rules(&t, "masquerading").len(), 2);
}

/// Rules written the way upstream portmap's nftables backend writes them
/// (the script knftables generates for portmap_nftables.go `forwardPorts`)
/// are found and removed by netboot, and netboot's rules are found by
/// upstream's delete algorithm (list the chain, match comment ==
/// containerID). Debian ships portmap v1.1.1, which has no nftables
/// backend, so the compatibility is checked on rule shapes.
#[test]
fn interoperates_with_upstream_portmap_nftables_layout() {
    let Some(node) = root_ns() else {
        return;
    };
    let upstream = "\
add table ip cni_hostport { comment \"CNI portmap plugin\" ; }
add chain ip cni_hostport hostports
add chain ip cni_hostport hostip_hostports
add chain ip cni_hostport hostports_all
flush chain ip cni_hostport hostports_all
add rule ip cni_hostport hostports_all jump hostip_hostports
add rule ip cni_hostport hostports_all jump hostports
add chain ip cni_hostport prerouting { type nat hook prerouting priority -100 ; }
flush chain ip cni_hostport prerouting
add rule ip cni_hostport prerouting fib daddr type local jump hostports_all
add chain ip cni_hostport output { type nat hook output priority -100 ; }
flush chain ip cni_hostport output
add rule ip cni_hostport output fib daddr type local jump hostports_all
add chain ip cni_hostport masquerading { type nat hook postrouting priority 100 ; }
add rule ip cni_hostport hostports tcp dport 8080 dnat to 10.99.0.2:80 comment \"upstream-id\"
add rule ip cni_hostport masquerading ip saddr 10.99.0.2 ip daddr 10.99.0.2 masquerade comment \"upstream-id\"
add rule ip cni_hostport masquerading ip saddr 127.0.0.1 ip daddr 10.99.0.2 masquerade comment \"upstream-id\"
";
    node.feed(&["nft", "-f", "-"], upstream);

    // netboot's CHECK accepts upstream's rules for the same spec: the
    // shapes are identical.
    let ips = [ip("10.99.0.2")];
    let maps = [tcp(8080, 80)];
    run(&node, || {
        firewall::check_port_mappings(&spec("upstream-id", &ips, &maps))
    })
    .unwrap();
    // netboot adds its own next to it (ADD re-flushes the shared chains
    // exactly as upstream does, so they keep a single jump each).
    let m2 = [tcp(9090, 90)];
    let ours = spec("netboot-id", &ips, &m2);
    run(&node, || firewall::add_port_mappings(&ours)).unwrap();
    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    assert_eq!(rules(&t, "prerouting").len(), 1);
    assert_eq!(rules(&t, "hostports_all").len(), 2);
    // Upstream's DEL: every rule in hostports/hostip_hostports/masquerading
    // whose comment is the container ID.
    let theirs_view: Vec<_> = ["hostports", "hostip_hostports", "masquerading"]
        .iter()
        .flat_map(|c| rules(&t, c))
        .filter(|r| r["comment"] == "netboot-id")
        .collect();
    assert_eq!(
        theirs_view.len(),
        3,
        "upstream finds all of netboot's rules"
    );

    // netboot's DEL removes upstream's rules and only those.
    run(&node, || firewall::del_port_mappings("cbr0", "upstream-id")).unwrap();
    let t = nft_json(&node, &["table", "ip", "cni_hostport"]);
    let left: Vec<_> = rules(&t, "hostports")
        .iter()
        .chain(rules(&t, "masquerading").iter())
        .map(|r| r["comment"].clone())
        .collect();
    assert_eq!(left, ["netboot-id", "netboot-id", "netboot-id"]);
    run(&node, || firewall::check_port_mappings(&ours)).unwrap();
}

#[test]
fn node_masquerade_is_installed_once() {
    let Some(node) = root_ns() else {
        return;
    };
    let n = |s: &str| s.parse::<IpNet>().unwrap();
    let cluster = [n("10.244.0.0/16"), n("10.96.0.0/12")];
    assert!(!run(&node, || firewall::node_masquerade_present(
        "flannel",
        n("10.244.3.0/24")
    ))
    .unwrap());
    assert!(run(&node, || firewall::ensure_node_masquerade(
        "flannel",
        n("10.244.3.0/24"),
        &cluster
    ))
    .unwrap());
    for _ in 0..3 {
        assert!(!run(&node, || firewall::ensure_node_masquerade(
            "flannel",
            n("10.244.3.0/24"),
            &cluster
        ))
        .unwrap());
    }
    assert!(run(&node, || firewall::node_masquerade_present(
        "flannel",
        n("10.244.3.0/24")
    ))
    .unwrap());
    let c = nft_json(&node, &["chain", "inet", "netboot", "postrouting"]);
    let ch = chain(&c, "postrouting").unwrap();
    assert_eq!(
        (&ch["hook"], &ch["prio"]),
        (&"postrouting".into(), &100.into())
    );
    let r = rules(&c, "postrouting");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["comment"], "netboot-masq:flannel");
    let e = r[0]["expr"].as_array().unwrap();
    assert_eq!(
        payload_match(&e[0], "ip", "saddr")["prefix"]["addr"],
        "10.244.3.0"
    );
    assert_eq!(e[2]["match"]["op"], "!=");
    assert_eq!(e[2]["match"]["right"]["set"].as_array().unwrap().len(), 2);

    // A new subnet replaces the rule; another network and IPv6 sit beside.
    assert!(run(&node, || firewall::ensure_node_masquerade(
        "flannel",
        n("10.244.9.0/24"),
        &cluster
    ))
    .unwrap());
    assert!(!run(&node, || firewall::node_masquerade_present(
        "flannel",
        n("10.244.3.0/24")
    ))
    .unwrap());
    assert!(run(&node, || firewall::ensure_node_masquerade(
        "flannel",
        n("fd00:9::/64"),
        &[n("fd00::/48")]
    ))
    .unwrap());
    assert!(run(&node, || firewall::ensure_node_masquerade(
        "other",
        n("10.50.1.0/24"),
        &[]
    ))
    .unwrap());
    assert_eq!(
        rules(
            &nft_json(&node, &["chain", "inet", "netboot", "postrouting"]),
            "postrouting"
        )
        .len(),
        3
    );

    run(&node, || firewall::remove_node_masquerade("flannel")).unwrap();
    run(&node, || firewall::remove_node_masquerade("flannel")).unwrap();
    let r = nft_json(&node, &["chain", "inet", "netboot", "postrouting"]);
    let r = rules(&r, "postrouting");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["comment"], "netboot-masq:other");
}

#[test]
fn legacy_iptables_portmap_chain_is_removed() {
    let Some(node) = root_ns() else {
        return;
    };
    // No iptables nat table at all: nothing to do, and none is created.
    run(&node, || firewall::cleanup_legacy_portmap("cbr0", "cid-l")).unwrap();
    let (_, tables) = node.exec(&["nft", "list", "tables"]);
    assert!(tables.trim().is_empty(), "cleanup created {tables}");
    let mine = firewall::legacy_dnat_chain("cbr0", "cid-l");
    let other = firewall::legacy_dnat_chain("cbr0", "cid-other");
    // What the reference portmap (iptables backend) leaves for two pods.
    let dump = format!(
        "*nat\n:CNI-HOSTPORT-DNAT - [0:0]\n:{mine} - [0:0]\n:{other} - [0:0]\n\
         -A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
         -A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n\
         -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"cbr0\\\" id: \\\"cid-l\\\"\" -m multiport --dports 8080 -j {mine}\n\
         -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"cbr0\\\" id: \\\"cid-other\\\"\" -m multiport --dports 9090 -j {other}\n\
         -A {mine} -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.99.0.2:80\n\
         -A {other} -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.99.0.3:90\nCOMMIT\n"
    );
    node.feed(&["iptables-restore", "--noflush"], &dump);

    run(&node, || firewall::cleanup_legacy_portmap("cbr0", "cid-l")).unwrap();
    run(&node, || firewall::cleanup_legacy_portmap("cbr0", "cid-l")).unwrap();
    let (ok, saved) = node.exec(&["iptables-save", "-t", "nat"]);
    assert!(ok);
    assert!(!saved.contains(&mine), "{saved}");
    assert!(
        saved.contains(&format!("-j {other}")) && saved.contains("-j CNI-HOSTPORT-DNAT"),
        "{saved}"
    );
}

#[test]
fn hostport_traffic_from_node_localhost_and_peer() {
    if !need_root() {
        return;
    }
    let lab = HostportLab::new();
    let ips = [ip(POD_IP)];
    let maps = [tcp(8080, 80)];
    let s = spec("cid-traffic", &ips, &maps);
    lab.assert_unmapped();
    run(&lab.node, || firewall::add_port_mappings(&s)).unwrap();
    assert!(firewall::needs_route_localnet(&s));
    lab.assert_mapped();
    run(&lab.node, || {
        firewall::del_port_mappings("cbr0", "cid-traffic")
    })
    .unwrap();
    lab.assert_unmapped();
}
