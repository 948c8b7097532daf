//! netboot-cni in native mode, end to end on a real kernel with NO binary
//! on CNI_PATH (an empty temp dir): the plugin suite's round trips, bad
//! inputs and DEL variants, pod traffic, masquerade towards an "outside"
//! namespace, hostPort reachability, switching a node between bridge and
//! native mode, cni0 address reconciliation, concurrency, GC and CHECK
//! (SIGKILL during ADD and DEL: `crash_trials.rs`).
//!
//! Every node and pod is a namespace the test creates; the "outside" world
//! is one more namespace behind a veth, addressed from TEST-NET-1
//! (192.0.2.0/24) and TEST-NET-2 (198.51.100.0/24).

use std::fs;
use std::thread;
use std::time::Instant;

use netboot_tests::cni_node::CniNode;
use netboot_tests::mode_suite::{
    assert_refused, assert_second_add_refused, del_after_netns_is_gone, gc_candidates,
    round_trip_at_every_version, set_conf, shared_bad_inputs, two_pods_talk, BadInput, TwoPods,
};
use netboot_tests::native_support::{env_with_subnet, NativeNode, Wired};
use netboot_tests::plugin_support::{
    cid, err_code, err_text, fetch, fetch_once, mapping, merged, serve, with_mappings, with_ports,
    with_prev, HOST_PORT, NET, POD_PORT,
};
use netboot_tests::{
    assert_ping, first_gateway, first_ip, require_root, Netns, PluginCall, SubnetEnv,
};
use serde_json::{json, Value};

#[test]
fn add_check_del_round_trip_at_every_version() {
    require_root();
    let node = NativeNode::new("nrt");
    round_trip_at_every_version(
        &node,
        |_, pod, res| {
            let ifaces = res["interfaces"].as_array().unwrap();
            assert_eq!(ifaces.len(), 3, "bridge, host veth, pod iface: {res}");
            assert_eq!(ifaces[0]["name"], "cni0", "{res}");
            let host = ifaces[1]["name"].as_str().unwrap();
            assert!(host.starts_with("nbv") && host.len() == 15, "{res}");
            assert_eq!(res["ips"][0]["interface"], 2, "{res}");
            assert_eq!(node.host_veths(), vec![host.to_owned()]);
            let rec = node.record(pod);
            assert_eq!(rec["native"]["hostVeth"], host, "{rec}");
        },
        |v, pod, conf, res| {
            pod.exec(&["ip", "link", "set", "eth0", "down"]).expect_ok();
            let broken = node.check(pod, conf, res);
            assert_eq!(err_code(&broken), 100, "{v}: {}", broken.output);
        },
    );
}

#[test]
fn auto_mode_without_plugins_attaches_natively() {
    require_root();
    let node = NativeNode::new("auto");
    let pod = node.pod("a");
    let conf = merged(&node.conf("1.1.0"), json!({"mode": "auto"}));
    node.run(&node.bare_call("STATUS", &conf)).expect_ok();
    let res = node.add(&pod, &conf);
    assert_eq!(node.record(&pod)["mode"], "native");
    assert_ping(&pod, &first_gateway(&res));
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

fn delegate_opt(n: &NativeNode, key: &str, val: Value) -> Value {
    let mut c = n.conf("1.0.0");
    c["delegate"][key] = val;
    c
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    require_root();
    let node = NativeNode::new("nbad");
    let pod = node.pod("bad");
    // Warm up: cni0, the node rule sets and the store exist, so a refused
    // ADD that got as far as the kernel would show in the snapshot.
    let warm = node.pod("warm");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    node.add(&warm, &conf);
    node.del(&warm, &conf);
    let mut cases: Vec<BadInput<NativeNode>> = shared_bad_inputs();
    cases.extend::<Vec<BadInput<NativeNode>>>(vec![
        (
            "netns is not a namespace",
            "ADD",
            Box::new(|c, n| c.netns = Some(n.subnet_file.clone())),
            4,
            vec!["CNI_NETNS"],
        ),
        (
            "unsupported bridge option",
            "ADD",
            set_conf(|n| delegate_opt(n, "vlan", json!(100))),
            2,
            vec!["vlan", "native"],
        ),
        (
            "hairpin and promisc",
            "ADD",
            set_conf(|n| delegate_opt(n, "promiscMode", json!(true))),
            7,
            vec!["promiscMode"],
        ),
        (
            "port 0",
            "ADD",
            set_conf(|n: &NativeNode| with_ports(&n.conf("1.0.0"), 0, POD_PORT)),
            7,
            vec!["hostPort"],
        ),
        // Last: the pod keeps the eth0 it gets here.
        (
            "pod already has eth0",
            "ADD",
            Box::new(|_, _| {}),
            4,
            vec!["eth0"],
        ),
    ]);
    assert_refused(
        &node,
        &pod,
        &conf,
        cases,
        |what| {
            if what == "pod already has eth0" {
                pod.exec(&[
                    "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
                ])
                .expect_ok();
            }
            pod.link_names()
        },
        |what, pod_links| {
            assert_eq!(pod.link_names(), pod_links, "{what} changed the pod");
            node.assert_clean(&[&cid(&pod)]);
        },
    );
}

#[test]
fn del_twice_after_netns_gone_with_empty_netns_and_without_record() {
    require_root();
    let node = NativeNode::new("ndel");
    let conf = node.conf("1.0.0");
    let mapped = with_ports(&conf, HOST_PORT, POD_PORT);

    // With the runtime passing the mappings again (containerd does).
    let pod = node.pod("mapped");
    node.add(&pod, &mapped);
    assert!(!node.nft_mentioning(&cid(&pod)).is_empty());
    node.del(&pod, &mapped);
    node.assert_clean(&[&cid(&pod)]);

    // Twice, the first time without the port mappings (the record knows).
    let pod = node.pod("twice");
    node.add(&pod, &mapped);
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"));
    node.del(&pod, &conf);
    node.del(&pod, &mapped);
    node.assert_clean(&[&cid(&pod)]);

    // containerd's second DEL: CNI_NETNS empty.
    let pod = node.pod("empty");
    node.add(&pod, &mapped);
    let call = PluginCall {
        netns: None,
        ..node.call("DEL", &pod, &conf)
    };
    node.run(&call).expect_ok();
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"));
    node.run(&call).expect_ok();

    // The pod netns was deleted before DEL.
    let pod = node.pod("gone");
    node.add(&pod, &mapped);
    del_after_netns_is_gone(&node, pod, &conf);

    // No record (lost with a wiped dataDir): the deterministic veth name,
    // the IPAM owner and a sweep of rules tagged with the id undo it all.
    let pod = node.pod("norec");
    node.add(&pod, &mapped);
    fs::remove_file(node.record_path(&cid(&pod))).unwrap();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"));
}

#[test]
fn two_pods_ping_each_other_and_the_gateway() {
    require_root();
    let node = NativeNode::new("ntwo");
    let conf = node.conf("1.0.0");
    let TwoPods {
        a, b, res_a, res_b, ..
    } = two_pods_talk(&node, &conf);
    for pod in [&a, &b] {
        let lo = &pod.ip_json(&["link", "show", "lo"])[0];
        assert!(lo["flags"].to_string().contains("\"UP\""), "lo down: {lo}");
    }
    // The bridge: stable locally administered MAC, and the host veths
    // enslaved to it with hairpin on.
    let mac = node.bridge_mac();
    assert!(mac.starts_with("02:"), "cni0 MAC {mac}");
    assert_eq!(res_a["interfaces"][0]["mac"], mac.as_str());
    for res in [&res_a, &res_b] {
        let host = res["interfaces"][1]["name"].as_str().unwrap();
        let port = &node.ip_json(&["-d", "link", "show", host])[0];
        assert_eq!(port["master"], "cni0", "{port}");
        assert_eq!(
            port["linkinfo"]["info_slave_data"]["hairpin"], true,
            "{port}"
        );
        // A bridge port carries no IPv6 of its own (see pod::disable_ipv6);
        // the pod's interface keeps its link-local address.
        let sysctl = format!("/proc/sys/net/ipv6/conf/{host}/disable_ipv6");
        let off = node.exec(&["cat", &sysctl]).expect_ok().stdout;
        assert_eq!(off.trim(), "1", "IPv6 on host veth {host}");
        let v6 = node.exec(&["ip", "-6", "addr", "show", "dev", host]);
        assert_eq!(v6.expect_ok().stdout.trim(), "", "{host}");
    }
    for pod in [&a, &b] {
        let v6 = pod.exec(&["ip", "-6", "addr", "show", "dev", "eth0"]);
        assert!(v6.expect_ok().stdout.contains("fe80::"), "pod eth0");
    }
    let fwd = node
        .exec(&["cat", "/proc/sys/net/ipv4/ip_forward"])
        .expect_ok()
        .stdout;
    assert_eq!(fwd.trim(), "1", "ip_forward in the node netns");
    assert_eq!(node.host_veths().len(), 2);
    assert_second_add_refused(&node, &a, &conf, 2);

    node.del(&a, &conf);
    node.del(&b, &conf);
    node.assert_clean(&[&cid(&a), &cid(&b)]);
    assert_eq!(node.bridge_mac(), mac, "cni0 MAC changed");
}

#[test]
fn masquerade_shows_the_node_address_to_the_outside() {
    require_root();
    // FLANNEL_IPMASQ=false: flanneld does not masquerade, so the plugin
    // must (ipMasq defaults to !FLANNEL_IPMASQ, as in flannel).
    let env = SubnetEnv {
        ipmasq: false,
        ..SubnetEnv::default()
    };
    let node = NativeNode::with_env("nmasq", env);
    let outside = Wired::new(&node, "out", "vout", "192.0.2.1/24", "192.0.2.2/24");
    // The outside knows nothing about 10.2.0.0/16: only a masqueraded
    // reply can come back.
    serve(&outside, 9000, "$SOCAT_PEERADDR");
    let pod = node.pod("p");
    let conf = node.conf("1.0.0");
    let res = node.add(&pod, &conf);
    let seen = fetch(&pod, &outside.far_ip, 9000);
    assert_eq!(
        seen.as_deref(),
        Some(outside.node_ip.as_str()),
        "the outside service must see the node's address, not {}",
        first_ip(&res)
    );
    // Pod-to-pod traffic inside the cluster network is not masqueraded.
    let rules = node.nft_chain_rules("inet", "netboot", "postrouting");
    assert_eq!(rules.len(), 1, "one rule for the node's subnet: {rules:#?}");
    assert!(
        rules[0].contains("10.2.1.0") && rules[0].contains("10.2.0.0"),
        "{rules:#?}"
    );
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);

    // FLANNEL_IPMASQ=true (flanneld masquerades): no node rule.
    let node = NativeNode::new("nmasq2");
    let pod = node.pod("p");
    node.add(&pod, &node.conf("1.0.0"));
    assert_eq!(
        node.nft_chain_rules("inet", "netboot", "postrouting"),
        Vec::<String>::new()
    );
    node.del(&pod, &node.conf("1.0.0"));
}

#[test]
fn host_port_is_reachable_from_the_node_and_a_peer() {
    require_root();
    let node = NativeNode::new("nhp");
    let peer = Wired::peer(&node, "peer");
    let (pod, conf, res) = node.serving_pod(
        json!([
            mapping(HOST_PORT, POD_PORT, "tcp"),
            mapping(HOST_PORT + 1, POD_PORT, "udp"),
        ]),
        "hello-from-pod",
    );
    let hello = Some("hello-from-pod");
    assert_eq!(
        fetch(&node.ns, &node.gateway(), HOST_PORT).as_deref(),
        hello
    );
    assert_eq!(fetch(&node.ns, "127.0.0.1", HOST_PORT).as_deref(), hello);
    assert_eq!(fetch(&peer, &peer.node_ip, HOST_PORT).as_deref(), hello);
    let localnet = node
        .exec(&["cat", "/proc/sys/net/ipv4/conf/cni0/route_localnet"])
        .expect_ok()
        .stdout;
    assert_eq!(localnet.trim(), "1");
    // Map elements in inet netboot owned by the attachment, one per
    // mapping; no rule of the node names the pod.
    let id = cid(&pod);
    let owner = format!("{NET}/{id}/eth0");
    let ip = first_ip(&res);
    for (set, port) in [
        ("hostports_ip_tcp", HOST_PORT),
        ("hostports_ip_udp", HOST_PORT + 1),
    ] {
        let elems = node.hostport_elements(set);
        assert_eq!(elems.len(), 1, "{set}: {elems:#?}");
        let want = format!(
            r#"[{{"elem":{{"val":{port},"comment":"{owner}"}}}},{{"concat":["{ip}",{POD_PORT}]}}]"#
        );
        assert!(elems[0].contains(&want), "{set}: {} lacks {want}", elems[0]);
    }
    assert_eq!(node.nft_rules_mentioning(&id), Vec::<String>::new());
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &node.conf("1.0.0"));
    node.assert_clean(&[&id]);
    assert!(fetch_once(&node.ns, &node.gateway(), HOST_PORT).is_none());
}

#[test]
fn del_cleans_everything_even_after_the_netns_is_gone() {
    require_root();
    let node = NativeNode::new("nclean");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let baseline = {
        let warm = node.pod("warm");
        node.add(&warm, &conf);
        node.del(&warm, &conf);
        node.snapshot()
    };
    for netns_first in [false, true] {
        let pod = node.pod("p");
        let id = cid(&pod);
        let res = node.add(&pod, &conf);
        let host = res["interfaces"][1]["name"].as_str().unwrap().to_owned();
        let links = node.ip_json(&["link", "show"]).to_string();
        assert!(links.contains(&host), "{links}");
        assert_eq!(node.allocations(), vec![first_ip(&res)]);
        assert_eq!(node.records(), vec![format!("{id}@eth0.json")]);
        assert!(!node.nft_mentioning(&id).is_empty());
        let call = node.call("DEL", &pod, &node.conf("1.0.0"));
        if netns_first {
            drop(pod);
        }
        node.run(&call).expect_ok();
        let links = node.ip_json(&["link", "show"]).to_string();
        assert!(!links.contains(&host), "{host} left: {links}");
        node.assert_clean(&[&id]);
        assert_eq!(node.nft_mentioning(&id), Vec::<String>::new());
        assert_eq!(
            node.snapshot(),
            baseline,
            "netns deleted first: {netns_first}"
        );
    }
}

#[test]
fn switching_between_bridge_and_native_mode_keeps_allocations_unique() {
    require_root();
    let node = NativeNode::new("nswitch");
    // Same subnet.env, dataDir and ipam dataDir; only `mode` and CNI_PATH
    // (reference plugins vs nothing) differ.
    let bridge_conf = node.pn.conf("1.0.0");
    let native_conf = node.conf("1.0.0");
    let bridge_add = |p: &Netns| node.pn.add(p, &bridge_conf);
    let native_add = |p: &Netns| node.add(p, &native_conf);
    let mut pods: Vec<(Netns, Value, &str)> = Vec::new();
    for i in 0..3 {
        let p = node.pod(&format!("b{i}"));
        let r = bridge_add(&p);
        pods.push((p, r, "bridge"));
    }
    for i in 0..3 {
        let p = node.pod(&format!("n{i}"));
        let r = native_add(&p);
        pods.push((p, r, "native"));
    }
    // DEL one of each. The bridge pod's DEL goes through the native
    // config: the record says the reference `bridge` made it.
    let (b1, _, _) = pods.remove(1);
    node.run(&PluginCall {
        path: netboot_tests::REFERENCE_CNI_PATH.into(),
        ..node.call("DEL", &b1, &native_conf)
    })
    .expect_ok();
    let (n1, _, _) = pods.remove(3);
    node.pn.del(&n1, &bridge_conf);
    for id in [cid(&b1), cid(&n1)] {
        assert!(!node.records().iter().any(|r| r.contains(&id)), "{id}");
    }
    // More pods in each mode; the freed IPs may be reused, never doubled.
    for i in 3..5 {
        let p = node.pod(&format!("n{i}"));
        let r = native_add(&p);
        pods.push((p, r, "native"));
        let p = node.pod(&format!("b{i}"));
        let r = bridge_add(&p);
        pods.push((p, r, "bridge"));
    }
    let ips: Vec<String> = pods.iter().map(|(_, r, _)| first_ip(r)).collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), pods.len(), "duplicate IPs: {ips:?}");
    let mut held = node.allocations();
    held.sort();
    assert_eq!(held, unique, "store and results disagree");
    for (p, _, mode) in &pods {
        for (ip, (_, _, other)) in ips.iter().zip(&pods) {
            assert!(
                netboot_tests::ping(p, ip),
                "{mode} pod {} cannot reach {other} pod {ip}",
                p.name()
            );
        }
        assert_ping(p, &node.gateway());
    }
    // Each pod is DELeted by the other mode's config; the record decides.
    for (p, _, mode) in &pods {
        if *mode == "bridge" {
            node.run(&PluginCall {
                path: netboot_tests::REFERENCE_CNI_PATH.into(),
                ..node.call("DEL", p, &native_conf)
            })
            .expect_ok();
        } else {
            node.pn.del(p, &bridge_conf);
        }
    }
    let ids: Vec<String> = pods.iter().map(|(p, _, _)| cid(p)).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    node.assert_clean(&ids);
    node.pn.assert_clean(&ids);
}

#[test]
fn bridge_pod_del_with_native_config_and_no_plugins_is_reported() {
    require_root();
    // A bridge-mode attachment needs the reference `bridge` to be undone;
    // with no binary left on CNI_PATH DEL says so (code 50) and keeps the
    // record, so the DEL can be retried once the binary is back.
    let node = NativeNode::new("nswdel");
    let pod = node.pod("b");
    node.pn.add(&pod, &node.pn.conf("1.0.0"));
    let out = node.run(&node.call("DEL", &pod, &node.conf("1.0.0")));
    assert_eq!(err_code(&out), 50, "{}", out.output);
    assert!(err_text(&out).contains("bridge"), "{}", out.output);
    assert_eq!(node.records().len(), 1, "record must survive a failed DEL");
    node.pn.del(&pod, &node.conf("1.0.0"));
    node.pn.assert_clean(&[&cid(&pod)]);
}

#[test]
fn cni0_address_is_reconciled_when_the_subnet_changes() {
    require_root();
    let node = NativeNode::new("nrecon");
    let conf = node.conf("1.0.0");
    let env_a = node.env.clone();
    let env_b = env_with_subnet(&env_a, "10.2.5.1/24");
    let write = |env: &SubnetEnv| node.write_subnet_env(env);

    // A pod on subnet A comes and goes; the node gets lease B.
    let a = node.pod("a");
    node.add(&a, &conf);
    node.del(&a, &conf);
    assert_eq!(node.ns.ipv4_addrs("cni0"), vec!["10.2.1.1/24"]);
    write(&env_b);
    let b = node.pod("b");
    let res = node.add(&b, &conf);
    assert_eq!(node.ns.ipv4_addrs("cni0"), vec!["10.2.5.1/24"]);
    assert!(first_ip(&res).starts_with("10.2.5."), "{res}");
    assert_eq!(first_gateway(&res), "10.2.5.1");
    assert_ping(&b, "10.2.5.1");
    node.del(&b, &conf);

    // A live pod of subnet A still recorded: ADD on B refuses, naming it.
    write(&env_a);
    let live = node.pod("live");
    let live_res = node.add(&live, &conf);
    assert_eq!(node.ns.ipv4_addrs("cni0"), vec!["10.2.1.1/24"]);
    write(&env_b);
    let c = node.pod("c");
    let before = node.snapshot();
    let out = node.run(&node.call("ADD", &c, &conf));
    assert_eq!(err_code(&out), 11, "{}", out.output);
    let text = err_text(&out);
    assert!(text.contains(&format!("{}@eth0", cid(&live))), "{text}");
    assert!(
        text.contains("already has an IP address different"),
        "{text}"
    );
    assert_eq!(node.snapshot(), before, "a refused ADD changed the node");
    assert_eq!(node.ns.ipv4_addrs("cni0"), vec!["10.2.1.1/24"]);

    // delegate.forceAddress: the operator accepts breaking the old pod.
    let forced = {
        let mut f = conf.clone();
        f["delegate"]["forceAddress"] = json!(true);
        f
    };
    let res = node.add(&c, &forced);
    assert_eq!(node.ns.ipv4_addrs("cni0"), vec!["10.2.5.1/24"]);
    assert_ping(&c, &first_gateway(&res));
    node.del(&c, &forced);
    node.del(&live, &with_prev(&conf, &live_res));
    node.assert_clean(&[&cid(&a), &cid(&b), &cid(&c), &cid(&live)]);
}

#[test]
fn fifty_concurrent_adds_then_fifty_concurrent_dels() {
    require_root();
    let node = NativeNode::new("nconc");
    let conf = with_ports(&node.conf("1.1.0"), HOST_PORT, POD_PORT);
    let pods: Vec<Netns> = (0..50).map(|i| node.pod(&format!("c{i}"))).collect();
    let start = Instant::now();
    let results: Vec<Value> = thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let c = with_ports(&node.conf("1.1.0"), HOST_PORT + i as u16, POD_PORT);
                let node = &node;
                s.spawn(move || node.add(p, &c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("50 concurrent native ADDs: {:?}", start.elapsed());
    let ips: Vec<String> = results.iter().map(first_ip).collect();
    let mut unique = ips.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 50, "duplicate IPs: {ips:?}");
    assert_eq!(node.allocations().len(), 50);
    assert_eq!(node.host_veths().len(), 50);
    assert_eq!(node.records().len(), 50);
    assert_eq!(node.hostport_elements("hostports_ip_tcp").len(), 50);
    // hairpin and localhost pairs of each pod
    assert_eq!(node.hostport_elements("hostports_masq_ip").len(), 100);
    assert_ping(&pods[0], &ips[49]);
    assert_ping(&pods[49], &ips[0]);
    let start = Instant::now();
    thread::scope(|s| {
        for p in &pods {
            let (node, conf) = (&node, &conf);
            s.spawn(move || node.del(p, conf));
        }
    });
    eprintln!("50 concurrent native DELs: {:?}", start.elapsed());
    let ids: Vec<String> = pods.iter().map(cid).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    node.assert_clean(&ids);
    assert_eq!(
        node.hostport_elements("hostports_ip_tcp"),
        Vec::<String>::new()
    );
    assert_eq!(
        node.hostport_elements("hostports_masq_ip"),
        Vec::<String>::new()
    );
}

#[test]
fn gc_releases_all_but_valid_attachments_and_orphan_veths() {
    require_root();
    let node = NativeNode::new("ngc");
    let conf = node.conf("1.1.0");
    let (pods, keep_res) = gc_candidates(&node, &conf);
    // Orphans made by hand on cni0: an nbv veth (a crashed ADD's) and a
    // veth that is not ours.
    for (host, peer) in [("nbv000000000001", "x1"), ("keepme0", "x2")] {
        node.exec(&[
            "ip", "link", "add", host, "type", "veth", "peer", "name", peer,
        ])
        .expect_ok();
        node.exec(&["ip", "link", "set", host, "master", "cni0"])
            .expect_ok();
    }
    assert_eq!(node.host_veths().len(), 4);

    let keep = cid(&pods[0]);
    node.gc(&conf, &[&keep]);
    let keep_host = keep_res["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(node.host_veths(), vec![keep_host.to_owned()]);
    let links = node.ns.link_names();
    assert!(links.iter().any(|l| l == "keepme0"), "{links:?}");
    assert!(!links.iter().any(|l| l == "nbv000000000001"), "{links:?}");
    assert_eq!(node.allocations(), vec![first_ip(&keep_res)]);
    assert_eq!(node.records(), vec![format!("{keep}@eth0.json")]);
    for p in &pods[1..] {
        let rules = node.nft_rules_mentioning(&cid(p));
        assert!(rules.is_empty(), "{rules:#?}");
        assert!(p.link_names().iter().all(|l| l != "eth0"), "{}", p.name());
    }
    assert_ping(&pods[0], &node.gateway());
    node.check(&pods[0], &conf, &keep_res).expect_ok();

    // Without the list nothing is provably stale: nothing happens.
    node.run(&node.bare_call("GC", &conf)).expect_ok();
    assert_eq!(node.allocations(), vec![first_ip(&keep_res)]);
    node.del(&pods[0], &conf);
    node.exec(&["ip", "link", "del", "keepme0"]).expect_ok();
    node.assert_clean(&[&keep]);
}

#[test]
fn check_detects_what_was_broken() {
    require_root();
    let env = SubnetEnv {
        ipmasq: false,
        ..SubnetEnv::default()
    };
    let node = NativeNode::with_env("nchk", env);
    let pod = node.pod("p");
    let conf = with_ports(&node.conf("1.0.0"), HOST_PORT, POD_PORT);
    let res = node.add(&pod, &conf);
    let gw = node.gateway();
    let host = res["interfaces"][1]["name"].as_str().unwrap().to_owned();
    let ip = first_ip(&res);
    let ip_file = node.ipam_dir.join(NET).join(&ip);
    node.check(&pod, &conf, &res).expect_ok();

    #[track_caller]
    fn broken(node: &NativeNode, pod: &Netns, conf: &Value, res: &Value, what: &str) {
        let out = node.check(pod, conf, res);
        assert_eq!(err_code(&out), 100, "CHECK missed {what}: {}", out.output);
    }
    // The pod's cluster route.
    pod.exec(&["ip", "route", "del", "10.2.0.0/16"]).expect_ok();
    broken(&node, &pod, &conf, &res, "a deleted pod route");
    pod.exec(&[
        "ip",
        "route",
        "add",
        "10.2.0.0/16",
        "via",
        &gw,
        "dev",
        "eth0",
    ])
    .expect_ok();
    node.check(&pod, &conf, &res).expect_ok();
    // The host veth out of the bridge.
    node.exec(&["ip", "link", "set", &host, "nomaster"])
        .expect_ok();
    broken(&node, &pod, &conf, &res, "the host veth off the bridge");
    node.exec(&["ip", "link", "set", &host, "master", "cni0"])
        .expect_ok();
    node.check(&pod, &conf, &res).expect_ok();
    // The IP file in the store.
    let owner = fs::read(&ip_file).unwrap();
    fs::remove_file(&ip_file).unwrap();
    broken(&node, &pod, &conf, &res, "a deleted IP file");
    fs::write(&ip_file, owner).unwrap();
    node.check(&pod, &conf, &res).expect_ok();
    // The port mapping: its map element, then the DNAT rules.
    node.exec(&["nft", "flush", "map", "inet", "netboot", "hostports_ip_tcp"])
        .expect_ok();
    broken(&node, &pod, &conf, &res, "a deleted port map element");
    node.del(&pod, &conf);
    let res = node.add(&pod, &conf);
    node.check(&pod, &conf, &res).expect_ok();
    node.exec(&["nft", "flush", "chain", "inet", "netboot", "hostports"])
        .expect_ok();
    broken(&node, &pod, &conf, &res, "flushed port rules");
    // Re-attach to get the rules back, then lose the node masquerade.
    node.del(&pod, &conf);
    let res = node.add(&pod, &conf);
    node.check(&pod, &conf, &res).expect_ok();
    node.exec(&["nft", "flush", "chain", "inet", "netboot", "postrouting"])
        .expect_ok();
    broken(&node, &pod, &conf, &res, "a removed masquerade rule");
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

/// docs/security.md F5: netboot's record directory and the native node lock are
/// readable by root only, even when the lock is the first thing created.
#[test]
fn record_directory_and_node_lock_are_root_only() {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    let node = NativeNode::new("nperm");
    let conf = node.conf("1.0.0");
    let pod = node.pod("p");
    node.add(&pod, &conf);
    let dir = node.data_dir.join(".netboot");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    assert_eq!(mode(&dir.join("node.lock")), 0o600);
    node.del(&pod, &conf);
}

/// The hostPort elements `id`'s attachment owns, as JSON text, sorted.
fn elements_of(node: &NativeNode, id: &str) -> Vec<String> {
    let owner = format!("\"{NET}/{id}/eth0\"");
    let mut v: Vec<String> = node
        .nft_elements()
        .into_iter()
        .filter(|(_, e)| e.contains(&owner))
        .map(|(s, e)| format!("{s}: {e}"))
        .collect();
    v.sort();
    v
}

#[test]
fn del_removes_exactly_its_own_map_elements_and_never_anothers() {
    require_root();
    let node = NativeNode::new("nown");
    let conf = |port| with_ports(&node.conf("1.0.0"), port, POD_PORT);
    let (a, b) = (node.pod("a"), node.pod("b"));
    node.add(&a, &conf(HOST_PORT + 1));
    node.add(&b, &conf(HOST_PORT + 2));
    let (id_a, id_b) = (cid(&a), cid(&b));
    assert_eq!(node.record(&a)["native"]["portLayout"], "maps");
    let b_elems = elements_of(&node, &id_b);
    for id in [&id_a, &id_b] {
        let e = elements_of(&node, id);
        assert_eq!(e.len(), 3, "DNAT + hairpin + localhost: {e:#?}");
    }
    // a's record claims b's port (a record from elsewhere, a human): DEL
    // of a looks that key up too, finds b's owner on it and leaves it;
    // the runtime passes a's own mappings, whose elements go.
    let mut rec = node.record(&a);
    rec["native"]["portMappings"] = node.record(&b)["native"]["portMappings"].clone();
    fs::write(node.record_path(&id_a), serde_json::to_vec(&rec).unwrap()).unwrap();
    node.del(&a, &conf(HOST_PORT + 1));
    assert_eq!(elements_of(&node, &id_a), Vec::<String>::new());
    assert_eq!(elements_of(&node, &id_b), b_elems);
    node.del(&b, &conf(HOST_PORT + 2));
    node.assert_clean(&[&id_a, &id_b]);
}

/// What containerd's CRI sends: go-cni's `PortMapping` has no JSON tags, so
/// the keys are Go field names (`HostPort`, ...). Go plugins accept them
/// (encoding/json matches case-insensitively), and so must netboot-cni:
/// the port is published, a bad value in that spelling is refused with
/// code 7 naming the canonical field, and DEL (sent with the same
/// mappings, as containerd does) removes everything.
#[test]
fn containerd_go_spelled_port_mappings_are_published_and_cleaned() {
    require_root();
    let node = NativeNode::new("ngo");
    let peer = Wired::peer(&node, "peer");
    let pod = node.pod("p");
    let go_conf = |host_port: Value| {
        with_mappings(
            &node.conf("1.0.0"),
            json!([
                {"HostPort": host_port, "ContainerPort": POD_PORT, "Protocol": "tcp", "HostIP": ""},
            ]),
        )
    };
    let bad = node.run(&node.call("ADD", &pod, &go_conf(json!("x"))));
    assert_eq!(err_code(&bad), 7);
    let text = err_text(&bad);
    assert!(
        text.contains(r#"runtimeConfig.portMappings[0].hostPort: "x" is not a port number"#),
        "{text}"
    );
    node.assert_clean(&[&cid(&pod)]);

    let conf = go_conf(json!(HOST_PORT));
    let res = node.add(&pod, &conf);
    serve(&pod, POD_PORT, "hello-go-spelling");
    let hello = Some("hello-go-spelling");
    assert_eq!(fetch(&peer, &peer.node_ip, HOST_PORT).as_deref(), hello);
    assert_eq!(
        fetch(&node.ns, &node.gateway(), HOST_PORT).as_deref(),
        hello
    );
    // Recorded in canonical spelling, so a later DEL finds it whatever
    // the runtime sends then.
    let rec = node.record(&pod).to_string();
    assert!(rec.contains(r#""hostPort":8080"#), "{rec}");
    assert!(!rec.contains("HostPort"), "{rec}");
    node.check(&pod, &conf, &res).expect_ok();
    let id = cid(&pod);
    node.del(&pod, &conf);
    node.assert_clean(&[&id]);
    assert_eq!(node.nft_rules_mentioning(&id), Vec::<String>::new());
    assert!(fetch_once(&peer, &peer.node_ip, HOST_PORT).is_none());
}

/// A container with two attachments shares flannel's scratch file: it
/// outlives whichever DEL comes first, and goes with the last. DEL knows
/// from the sibling mark the second ADD left, without listing the record
/// directory; records of older versions (no `siblingMark`, no mark) make
/// it list the directory instead.
#[test]
fn the_scratch_file_goes_with_the_containers_last_attachment() {
    require_root();
    let node = NativeNode::new("nsib");
    let conf = node.conf("1.0.0");
    let records_dir = node.pn.data_dir.join(".netboot");
    for (first, second, older_records) in [
        ("eth0", "net1", false),
        ("net1", "eth0", false),
        ("eth0", "net1", true),
    ] {
        let pod = node.pod("p");
        let id = cid(&pod);
        let call = |command: &str, ifname: &str| PluginCall {
            ifname: ifname.into(),
            ..node.call(command, &pod, &conf)
        };
        for ifname in ["eth0", "net1"] {
            let res = node.run(&call("ADD", ifname)).expect_ok();
            assert_eq!(pod.ipv4_addrs(ifname), netboot_tests::result_ips(&res));
        }
        assert_eq!(node.scratch_files(), vec![id.clone()]);
        let mark = records_dir.join(format!("{id}@.siblings"));
        assert!(mark.exists(), "the second ADD left no sibling mark");
        if older_records {
            fs::remove_file(&mark).unwrap();
            for ifname in ["eth0", "net1"] {
                let path = records_dir.join(format!("{id}@{ifname}.json"));
                let mut rec: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
                assert_eq!(rec["siblingMark"], json!(true), "{rec}");
                rec.as_object_mut().unwrap().remove("siblingMark");
                fs::write(&path, rec.to_string()).unwrap();
            }
        }
        node.run(&call("DEL", first)).expect_ok();
        assert_eq!(
            node.scratch_files(),
            vec![id.clone()],
            "DEL of {first} took the scratch file {second} still shares (older records: {older_records})"
        );
        assert_eq!(
            node.records(),
            vec![format!("{id}@{second}.json")],
            "the mark goes once one attachment is left"
        );
        node.run(&call("DEL", second)).expect_ok();
        node.assert_clean(&[&id]);
    }
}
