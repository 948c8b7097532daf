//! netboot-cni in native mode, end to end on a real kernel with NO binary
//! on CNI_PATH (an empty temp dir): the plugin suite's round trips, bad
//! inputs and DEL variants, pod traffic, masquerade towards an "outside"
//! namespace, hostPort reachability, switching a node between bridge and
//! native mode, cni0 address reconciliation, concurrency, SIGKILL during
//! ADD, GC and CHECK.
//!
//! Every node and pod is a namespace the test creates; the "outside" world
//! is one more namespace behind a veth, addressed from TEST-NET-1
//! (192.0.2.0/24) and TEST-NET-2 (198.51.100.0/24).

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use netboot_tests::native_support::{env_with_subnet, NativeNode, Rng, Wired};
use netboot_tests::plugin_support::{
    assert_result_shape, cid, err_code, err_text, fetch, merged, plugin_bin, routes, serve,
    with_ports, with_prev, PluginNode, NET,
};
use netboot_tests::{
    assert_ping, first_gateway, first_ip, plugin_command, require_root, Netns, PluginCall,
    SubnetEnv,
};
use serde_json::{json, Value};

const HOST_PORT: u16 = 8080;
const POD_PORT: u16 = 80;

/// The record of `pod`'s attachment.
fn record(node: &NativeNode, pod: &Netns) -> Value {
    serde_json::from_slice(&fs::read(node.record_path(&cid(pod))).unwrap()).unwrap()
}

#[test]
fn add_check_del_round_trip_at_every_version() {
    require_root();
    let node = NativeNode::new("nrt");
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = node.pod("rt");
        let conf = node.conf(v);
        let res = node.add(&pod, &conf);
        assert_result_shape(v, &res, &pod, &node);
        let ifaces = res["interfaces"].as_array().unwrap();
        assert_eq!(ifaces.len(), 3, "bridge, host veth, pod iface: {res}");
        assert_eq!(ifaces[0]["name"], "cni0", "{res}");
        let host = ifaces[1]["name"].as_str().unwrap();
        assert!(host.starts_with("nbv") && host.len() == 15, "{res}");
        assert_eq!(res["ips"][0]["interface"], 2, "{res}");
        assert_eq!(node.host_veths(), vec![host.to_owned()]);
        assert_eq!(node.allocations().len(), 1, "{v}");
        let rec = record(&node, &pod);
        assert_eq!(rec["native"]["hostVeth"], host, "{rec}");

        let check = node.check(&pod, &conf, &res);
        if v.starts_with("0.3") {
            assert_eq!(err_code(&check), 1, "{v}: CHECK needs 0.4.0");
        } else {
            check.expect_ok();
            pod.exec(&["ip", "link", "set", "eth0", "down"]).expect_ok();
            let broken = node.check(&pod, &conf, &res);
            assert_eq!(err_code(&broken), 100, "{v}: {}", broken.output);
        }
        for cmd in ["STATUS", "GC"] {
            let out = node.run(&node.call(cmd, &pod, &conf));
            if v == "1.1.0" {
                out.expect_ok();
            } else {
                assert_eq!(err_code(&out), 1, "{v} {cmd}: {}", out.output);
            }
        }
        node.run(&node.call("DEL", &pod, &with_prev(&conf, &res)))
            .expect_ok();
        node.assert_clean(&[&cid(&pod)]);
        assert!(pod.link_names().iter().all(|l| l != "eth0"), "{v}");
    }
}

#[test]
fn auto_mode_without_plugins_attaches_natively() {
    require_root();
    let node = NativeNode::new("auto");
    let pod = node.pod("a");
    let conf = merged(&node.conf("1.1.0"), json!({"mode": "auto"}));
    node.run(&node.bare_call("STATUS", &conf)).expect_ok();
    let res = node.add(&pod, &conf);
    assert_eq!(record(&node, &pod)["mode"], "native");
    assert_ping(&pod, &first_gateway(&res));
    node.check(&pod, &conf, &res).expect_ok();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
}

type Tweak = Box<dyn Fn(&mut PluginCall, &NativeNode)>;

fn set_conf(f: impl Fn(&NativeNode) -> Value + 'static) -> Tweak {
    Box::new(move |c, n| c.stdin = f(n).to_string())
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
    let cases: Vec<(&str, &str, Tweak, u64, Vec<&str>)> = vec![
        (
            "no CNI_NETNS",
            "ADD",
            Box::new(|c, _| c.netns = None),
            4,
            vec!["CNI_NETNS"],
        ),
        (
            "netns is not a namespace",
            "ADD",
            Box::new(|c, n| c.netns = Some(n.subnet_file.clone())),
            4,
            vec!["CNI_NETNS"],
        ),
        (
            "escaping container id",
            "ADD",
            Box::new(|c, _| c.container_id = "../../etc".into()),
            4,
            vec!["../../etc"],
        ),
        (
            "16-byte ifname",
            "ADD",
            Box::new(|c, _| c.ifname = "abcdefghijklmnop".into()),
            4,
            vec!["abcdefghijklmnop"],
        ),
        (
            "bad JSON",
            "ADD",
            Box::new(|c, _| c.stdin = "{\"cniVersion\":".into()),
            6,
            vec![],
        ),
        (
            "future version",
            "ADD",
            set_conf(|n| merged(&n.conf("1.0.0"), json!({"cniVersion": "9.9.9"}))),
            1,
            vec!["9.9.9"],
        ),
        (
            "missing subnet.env",
            "ADD",
            set_conf(|n| {
                merged(
                    &n.conf("1.0.0"),
                    json!({"subnetFile": n.dir().join("nope.env")}),
                )
            }),
            11,
            vec!["subnet.env", "nope.env"],
        ),
        (
            "missing subnet.env STATUS",
            "STATUS",
            set_conf(|n| {
                merged(
                    &n.conf("1.1.0"),
                    json!({"subnetFile": n.dir().join("nope.env")}),
                )
            }),
            50,
            vec!["nope.env"],
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
            set_conf(|n| with_ports(&n.conf("1.0.0"), 0, POD_PORT)),
            7,
            vec!["hostPort"],
        ),
        (
            "pod already has eth0",
            "ADD",
            Box::new(|_, _| {}),
            4,
            vec!["eth0"],
        ),
    ];
    for (what, cmd, tweak, code, words) in cases {
        let taken = what == "pod already has eth0";
        if taken {
            pod.exec(&[
                "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "x0",
            ])
            .expect_ok();
        }
        let pod_links = pod.link_names();
        let before = node.snapshot();
        let mut call = node.call(cmd, &pod, &conf);
        tweak(&mut call, &node);
        let out = node.run(&call);
        assert_eq!(err_code(&out), code, "{what}: {}", out.output);
        let text = err_text(&out);
        for w in words {
            assert!(
                text.contains(w),
                "{what}: error does not name {w:?}: {}",
                out.output
            );
        }
        assert_eq!(node.snapshot(), before, "{what} changed the node");
        assert_eq!(pod.link_names(), pod_links, "{what} changed the pod");
        node.assert_clean(&[&cid(&pod)]);
    }
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
    assert!(!node.nft_rules_mentioning(&cid(&pod)).is_empty());
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
    let call = node.call("DEL", &pod, &conf);
    let id = cid(&pod);
    drop(pod);
    node.run(&call).expect_ok();
    node.run(&call).expect_ok();
    node.assert_clean(&[&id]);

    // No record (lost with a wiped dataDir): the deterministic veth name,
    // the IPAM owner and a sweep of rules tagged with the id undo it all.
    let pod = node.pod("norec");
    node.add(&pod, &mapped);
    fs::remove_file(node.record_path(&cid(&pod))).unwrap();
    node.del(&pod, &conf);
    node.assert_clean(&[&cid(&pod)]);
    assert!(pod.link_names().iter().all(|l| l != "eth0"));
}
