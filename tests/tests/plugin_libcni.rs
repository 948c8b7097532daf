//! netboot-cni driven by a real third-party runtime: libcni (Debian's
//! 1.1.2, through tests/libcni-client), with port mappings passed as
//! capability args, inside node and pod namespaces.

use netboot_tests::plugin_support::{fetch, serve, CniPathDir, PluginNode, NET};
use netboot_tests::{
    assert_ping, first_gateway, first_ip, require_root, LibcniCall, Netns, REFERENCE_CNI_PATH,
};
use serde_json::{json, Value};
use std::path::Path;

const HOST_PORT: u16 = 8080;
const POD_PORT: u16 = 80;

/// CNI_PATH with netboot-cni next to the reference plugins it delegates to.
fn cni_path() -> CniPathDir {
    let dir = CniPathDir::new();
    dir.link("netboot-cni", &netboot_tests::plugin_support::plugin_bin());
    dir.reference(&["bridge", "host-local", "portmap", "loopback"]);
    dir
}

fn conflist(node: &PluginNode, version: &str) -> Value {
    let mut plugin = node.conf(version);
    let m = plugin.as_object_mut().unwrap();
    m.remove("cniVersion");
    m.remove("name");
    m.insert("capabilities".into(), json!({"portMappings": true}));
    json!({"cniVersion": version, "name": NET, "plugins": [plugin]})
}

fn add(node: &PluginNode, call: &LibcniCall) -> Value {
    let out = node.libcni(call).expect_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("bad result {e}: {out}"))
}

fn cache_entry(node: &PluginNode, id: &str) -> std::path::PathBuf {
    node.data_dir("cni-cache")
        .join("results")
        .join(format!("{NET}-{id}-eth0"))
}

#[test]
fn libcni_add_check_del_with_port_mappings() {
    require_root();
    let node = PluginNode::new("lc");
    let path = cni_path();
    let path_str = path.cni_path();
    node.write_conf("10-netboot.conflist", &conflist(&node, "1.0.0"));
    let (a, b) = (node.pod("a"), node.pod("b"));
    let caps = json!({"portMappings": [
        {"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}
    ]});

    let add_a = LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lc-pod-a"),
        cap_args: Some(&caps),
        cni_args: Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=a"),
        ..LibcniCall::new("add", NET, a.path())
    };
    let res_a = add(&node, &add_a);
    assert_eq!(res_a["cniVersion"], "1.0.0");
    let add_b = LibcniCall {
        cni_path: Some(&path_str),
        ..LibcniCall::new("add", NET, b.path())
    };
    let res_b = add(&node, &add_b);
    let (ip_a, ip_b, gw) = (first_ip(&res_a), first_ip(&res_b), first_gateway(&res_a));
    assert_ne!(ip_a, ip_b);
    assert_ping(&a, &ip_b);
    assert_ping(&b, &gw);
    assert!(
        cache_entry(&node, "lc-pod-a").is_file(),
        "no libcni cache entry"
    );
    assert_eq!(node.allocations().len(), 2);

    serve(&a, POD_PORT, "hello-via-libcni");
    assert_eq!(
        fetch(&node.ns, &gw, HOST_PORT).as_deref(),
        Some("hello-via-libcni")
    );
    assert!(node.iptables_save().contains("lc-pod-a"));

    // libcni CHECK (with its cached prevResult), mappings included.
    node.libcni(&LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lc-pod-a"),
        cap_args: Some(&caps),
        ..LibcniCall::new("check", NET, a.path())
    })
    .expect_ok();
    node.libcni(&LibcniCall {
        cni_path: Some(&path_str),
        ..LibcniCall::new("check", NET, b.path())
    })
    .expect_ok();

    // DEL without CAP_ARGS: netboot's record knows the mappings.
    node.libcni(&LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lc-pod-a"),
        ..LibcniCall::new("del", NET, a.path())
    })
    .expect_ok();
    assert!(!cache_entry(&node, "lc-pod-a").exists(), "cache entry left");
    assert!(a.link_names().iter().all(|l| l != "eth0"));
    node.libcni(&LibcniCall {
        cni_path: Some(&path_str),
        ..LibcniCall::new("del", NET, b.path())
    })
    .expect_ok();
    node.assert_clean(&["lc-pod-a"]);
    let left =
        netboot_tests::plugin_support::list_names(&node.data_dir("cni-cache").join("results"));
    assert!(left.is_empty(), "libcni cache entries left: {left:?}");
}

#[test]
fn libcni_refuses_check_below_0_4_0_and_still_adds() {
    require_root();
    let node = PluginNode::new("lc031");
    let path = cni_path();
    let path_str = path.cni_path();
    node.write_conf("10-netboot.conflist", &conflist(&node, "0.3.1"));
    let pod: Netns = node.pod("p");
    let base = LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lc-old"),
        ..LibcniCall::new("add", NET, pod.path())
    };
    let res = add(&node, &base);
    assert_eq!(res["cniVersion"], "0.3.1");
    assert_eq!(res["ips"][0]["version"], "4", "{res}");
    assert_ping(&pod, &first_gateway(&res));
    let check = node.libcni(&LibcniCall {
        command: "check",
        ..base
    });
    assert!(
        !check.success(),
        "libcni must refuse CHECK for 0.3.1: {check}"
    );
    node.libcni(&LibcniCall {
        command: "del",
        ..base
    })
    .expect_ok();
    node.assert_clean(&["lc-old"]);
}

#[test]
fn reference_cni_path_has_the_delegates() {
    for p in ["bridge", "host-local", "portmap", "loopback"] {
        assert!(Path::new(REFERENCE_CNI_PATH).join(p).is_file(), "{p}");
    }
}

#[test]
fn libcni_status_and_gc_at_1_1_0() {
    require_root();
    let node = PluginNode::new("lc11");
    let path = cni_path();
    let path_str = path.cni_path();
    // Debian's libcni 1.1.2 cannot parse 1.1.0 results, so ADD at 1.0.0;
    // STATUS and GC (invoked per plugin by the client) need 1.1.0.
    node.write_conf("10-netboot.conflist", &conflist(&node, "1.0.0"));
    let pod = node.pod("p");
    let base = LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lc-gc"),
        ..LibcniCall::new("add", NET, pod.path())
    };
    add(&node, &base);
    assert_eq!(node.allocations().len(), 1);
    let below = node.libcni(&LibcniCall {
        command: "status",
        ..base
    });
    assert!(!below.success(), "STATUS must be refused at 1.0.0: {below}");
    node.write_conf("10-netboot.conflist", &conflist(&node, "1.1.0"));
    node.libcni(&LibcniCall {
        command: "status",
        ..base
    })
    .expect_ok();
    // GC with an empty valid-attachments list: the pod is stale.
    node.libcni(&LibcniCall {
        command: "gc",
        ..base
    })
    .expect_ok();
    assert_eq!(node.allocations(), Vec::<String>::new());
    assert_eq!(node.records(), Vec::<String>::new());
    assert_eq!(node.scratch_files(), Vec::<String>::new());
    std::fs::remove_file(&node.subnet_file).unwrap();
    let status = node.libcni(&LibcniCall {
        command: "status",
        ..base
    });
    assert!(!status.success(), "STATUS without subnet.env: {status}");
    assert!(status.stderr.contains("subnet.env"), "{status}");
}

/// The `bandwidth` capability as containerd passes it through libcni
/// (go-cni's Go field names, burst 2^32-1 bits for an annotation), in
/// bridge mode (chained reference plugin) and native mode.
#[test]
fn libcni_bandwidth_capability_in_bridge_and_native_mode() {
    use netboot_tests::bandwidth_support::{
        go_entry, ifbs, shaping_qdiscs, tbf_rate, CONTAINERD_BURST,
    };
    require_root();
    for mode in ["bridge", "native"] {
        let node = PluginNode::new("lcbw");
        let path = cni_path();
        path.reference(&["bandwidth"]);
        let path_str = path.cni_path();
        let mut list = conflist(&node, "1.0.0");
        list["plugins"][0]["mode"] = json!(mode);
        list["plugins"][0]["capabilities"] = json!({"portMappings": true, "bandwidth": true});
        node.write_conf("10-netboot.conflist", &list);
        let pod = node.pod("bw");
        let caps = json!({"bandwidth": go_entry((8_000_000, CONTAINERD_BURST), (4_000_000, CONTAINERD_BURST))});
        let call = |cmd| LibcniCall {
            cni_path: Some(&path_str),
            container_id: Some("lc-bw"),
            cap_args: Some(&caps),
            ..LibcniCall::new(cmd, NET, pod.path())
        };
        let res = add(&node, &call("add"));
        let veth = res["interfaces"][1]["name"].as_str().unwrap().to_owned();
        assert_eq!(tbf_rate(&node.ns, &veth), Some(1_000_000), "{mode}: {res}");
        let ifb = ifbs(&node.ns);
        assert_eq!(ifb.len(), 1, "{mode}");
        assert_eq!(tbf_rate(&node.ns, &ifb[0]), Some(500_000), "{mode}");
        node.libcni(&call("check")).expect_ok();
        node.libcni(&call("del")).expect_ok();
        assert_eq!(ifbs(&node.ns), Vec::<String>::new(), "{mode}");
        assert_eq!(shaping_qdiscs(&node.ns), Vec::<String>::new(), "{mode}");
    }
}

/// containerd's CRI hands libcni go-cni's untagged `PortMapping` structs,
/// so the capability args carry Go field names. Through real libcni and
/// the real bridge + portmap delegates, the port is published and DEL
/// (which containerd sends with the same args) leaves nothing behind.
#[test]
fn libcni_with_containerd_go_spelled_port_mappings() {
    require_root();
    let node = PluginNode::new("lcgo");
    let path = cni_path();
    let path_str = path.cni_path();
    node.write_conf("10-netboot.conflist", &conflist(&node, "1.0.0"));
    let pod = node.pod("a");
    let caps = json!({"portMappings": [
        {"HostPort": HOST_PORT, "ContainerPort": POD_PORT, "Protocol": "tcp", "HostIP": ""}
    ]});
    let call = |cmd| LibcniCall {
        cni_path: Some(&path_str),
        container_id: Some("lcgo-pod"),
        cap_args: Some(&caps),
        ..LibcniCall::new(cmd, NET, pod.path())
    };
    let res = add(&node, &call("add"));
    let gw = first_gateway(&res);
    serve(&pod, POD_PORT, "hello-go-caps");
    assert_eq!(
        fetch(&node.ns, &gw, HOST_PORT).as_deref(),
        Some("hello-go-caps")
    );
    assert!(node.iptables_save().contains("lcgo-pod"));
    node.libcni(&call("del")).expect_ok();
    node.assert_clean(&["lcgo-pod"]);
    assert!(!node.iptables_save().contains("lcgo-pod"));
}
