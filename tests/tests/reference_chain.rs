//! Validates the harness itself against Debian's reference plugins
//! (bridge + host-local + portmap), both called directly and through the
//! libcni client. If these fail, the harness (or the machine) is broken,
//! not netboot.

use std::path::Path;
use std::time::Duration;

use netboot_tests::{
    assert_ping, bin_path, first_gateway, first_ip, leftover_namespaces, require_root, result_ips,
    retry, run_plugin, LibcniCall, Netns, Node, PluginCall, REFERENCE_CNI_PATH,
};
use serde_json::{json, Value};

const NET: &str = "refnet";
const HOST_PORT: u16 = 8080;
const POD_PORT: u16 = 80;

fn bridge_conf(node: &Node) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NET,
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": true,
        "isDefaultGateway": true,
        "ipMasq": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "subnet": "10.2.1.0/24",
            "dataDir": node.data_dir("ipam"),
        },
    })
}

fn port_mappings() -> Value {
    json!([{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}])
}

fn plugin(name: &str) -> std::path::PathBuf {
    Path::new(REFERENCE_CNI_PATH).join(name)
}

/// Serve a fixed line on POD_PORT inside `pod` (killed with the pod guard).
fn serve(pod: &Netns) {
    let listen = format!("TCP-LISTEN:{POD_PORT},fork,reuseaddr");
    pod.spawn(&["socat", &listen, "SYSTEM:echo hello-from-pod"]);
}

/// Connect from the node to `ip:port` and return what the service said.
fn fetch(node: &Node, ip: &str, port: u16) -> Option<String> {
    let target = format!("TCP:{ip}:{port},connect-timeout=2");
    retry(25, Duration::from_millis(200), || {
        let out = node.exec(&["socat", "-u", &target, "STDOUT"]);
        (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
    })
}

/// IP files left in host-local's store for NET.
fn allocations(node: &Node) -> Vec<String> {
    let dir = node.data_dir("ipam").join(NET);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

#[track_caller]
fn assert_node_clean(node: &Node, container_ids: &[&str]) {
    assert_eq!(node.veths(), Vec::<String>::new(), "veths left on the node");
    assert_eq!(
        allocations(node),
        Vec::<String>::new(),
        "IPs left in host-local store"
    );
    let rules = node.iptables_save();
    for id in container_ids {
        assert!(
            !rules.contains(id),
            "iptables rules for {id} left:\n{rules}"
        );
    }
    assert!(
        !rules.contains("CNI-DN-"),
        "portmap DNAT chain left:\n{rules}"
    );
}

#[test]
fn reference_plugins_called_directly() {
    require_root();
    let node = Node::new("direct");
    let (pod_a, pod_b) = (node.pod("a"), node.pod("b"));
    let conf = bridge_conf(&node);

    let res_a = run_plugin(&plugin("bridge"), &node.plugin_call("ADD", &pod_a, &conf)).expect_ok();
    let res_b = run_plugin(&plugin("bridge"), &node.plugin_call("ADD", &pod_b, &conf)).expect_ok();
    let (ip_a, ip_b, gw) = (first_ip(&res_a), first_ip(&res_b), first_gateway(&res_a));
    assert_ne!(ip_a, ip_b, "pods got the same IP");
    assert_eq!(pod_a.ipv4_addrs("eth0"), result_ips(&res_a));

    assert_ping(&pod_a, &ip_b);
    assert_ping(&pod_b, &ip_a);
    assert_ping(&pod_a, &gw);
    assert_ping(&node, &ip_a);

    let mut check = node.plugin_call("CHECK", &pod_a, &conf);
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = res_a.clone();
    check.stdin = with_prev.to_string();
    run_plugin(&plugin("bridge"), &check).expect_ok();

    // portmap as the second link of a chain: prevResult + runtimeConfig.
    let mut pm = json!({"cniVersion": "1.0.0", "name": NET, "type": "portmap",
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": port_mappings()}});
    pm["prevResult"] = res_a.clone();
    let pm_out = run_plugin(&plugin("portmap"), &node.plugin_call("ADD", &pod_a, &pm)).expect_ok();
    assert_eq!(
        result_ips(&pm_out),
        result_ips(&res_a),
        "portmap must pass prevResult on"
    );
    serve(&pod_a);
    assert_eq!(
        fetch(&node, &ip_a, POD_PORT).as_deref(),
        Some("hello-from-pod")
    );
    assert_eq!(
        fetch(&node, &gw, HOST_PORT).as_deref(),
        Some("hello-from-pod")
    );

    let id_a = node.plugin_call("DEL", &pod_a, &conf).container_id;
    let id_b = node.plugin_call("DEL", &pod_b, &conf).container_id;
    run_plugin(&plugin("portmap"), &node.plugin_call("DEL", &pod_a, &pm)).expect_ok();
    for (pod, res) in [(&pod_a, &res_a), (&pod_b, &res_b)] {
        let mut del = with_prev.clone();
        del["prevResult"] = res.clone();
        run_plugin(&plugin("bridge"), &node.plugin_call("DEL", pod, &del)).expect_ok();
    }
    assert!(
        !pod_a.link_names().contains(&"eth0".to_owned()),
        "eth0 left in pod"
    );
    assert_node_clean(&node, &[&id_a, &id_b]);

    // containerd's second DEL: same container, no netns at all.
    let again = PluginCall {
        netns: None,
        ..node.plugin_call("DEL", &pod_b, &conf)
    };
    run_plugin(&plugin("bridge"), &again).expect_ok();
}

#[test]
fn reference_conflist_through_libcni() {
    require_root();
    let node = Node::new("libcni");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": NET,
        "plugins": [bridge_conf(&node), {"type": "portmap", "capabilities": {"portMappings": true}}],
    });
    node.write_conf("10-refnet.conflist", &conflist);
    let (pod_a, pod_b) = (node.pod("a"), node.pod("b"));
    let caps = json!({ "portMappings": port_mappings() });

    let add_a = LibcniCall {
        cap_args: Some(&caps),
        container_id: Some("pod-a-0001"),
        ..LibcniCall::new("add", NET, pod_a.path())
    };
    let res_a: Value = serde_json::from_str(&node.libcni(&add_a).expect_ok().stdout).unwrap();
    // No container id: the client derives one from the netns path (cnitool).
    let add_b = LibcniCall::new("add", NET, pod_b.path());
    let res_b: Value = serde_json::from_str(&node.libcni(&add_b).expect_ok().stdout).unwrap();
    let (ip_a, ip_b, gw) = (first_ip(&res_a), first_ip(&res_b), first_gateway(&res_a));
    assert_ne!(ip_a, ip_b);
    assert_ping(&pod_a, &ip_b);
    assert_ping(&pod_b, &gw);

    let cached = node.data_dir("cni-cache").join("results");
    assert!(
        cached.join(format!("{NET}-pod-a-0001-eth0")).is_file(),
        "no libcni cache entry"
    );

    serve(&pod_a);
    assert_eq!(
        fetch(&node, &gw, HOST_PORT).as_deref(),
        Some("hello-from-pod")
    );

    // CHECK only pod B: portmap 1.1.1 CHECK is broken for IPv4 mappings
    // (containernetworking/plugins#819).
    node.libcni(&LibcniCall::new("check", NET, pod_b.path()))
        .expect_ok();

    let del_a = LibcniCall {
        container_id: Some("pod-a-0001"),
        // portmap 1.1.1 DEL does nothing without the mappings: a runtime must
        // pass the same CAP_ARGS on DEL (containerd's CRI does).
        cap_args: Some(&caps),
        ..LibcniCall::new("del", NET, pod_a.path())
    };
    node.libcni(&del_a).expect_ok();
    node.libcni(&LibcniCall::new("del", NET, pod_b.path()))
        .expect_ok();
    assert_node_clean(&node, &["pod-a-0001"]);
    let left: Vec<_> = std::fs::read_dir(&cached).unwrap().collect();
    assert!(left.is_empty(), "libcni cache entries left: {left:?}");
}

#[test]
fn netns_guard_cleans_up() {
    require_root();
    let ns = Netns::new("guard");
    let name = ns.name().to_owned();
    let pid = ns.spawn(&["sleep", "300"]);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    assert!(leftover_namespaces().contains(&name));
    drop(ns);
    assert!(!leftover_namespaces().contains(&name), "{name} not deleted");
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.contains(") Z"),
        "pid {pid} still running"
    );
}

#[test]
fn libcni_client_is_built() {
    let bin = bin_path("libcni-client");
    let out = netboot_tests::run_argv(&[&bin.to_string_lossy(), "-h"]);
    assert!(out.stderr.contains("add|check|del|gc|status"), "{out}");
}
