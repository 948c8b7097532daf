//! A UDP hostPort whose pod is replaced: the client keeps sending from the
//! same source port, so conntrack keeps its flow, and with it the DNAT to
//! the first pod's address. After the second pod's ADD the datagrams must
//! reach the second pod (netboot-cni deletes the stale UDP entries toward
//! its new hostPorts, as portmap and kubelet do). Native and bridge mode,
//! on a real kernel; every node, pod and client is a namespace.
//!
//! Without the flush the test fails: the node's conntrack entry (checked
//! through `netkit::conntrack` before the second ADD) still points at the
//! first pod, and every datagram refreshes it.

use std::path::Path;
use std::thread;
use std::time::Duration;

use netboot_tests::native_support::{NativeNode, Wired};
use netboot_tests::plugin_support::{merged, PluginNode};
use netboot_tests::{first_ip, require_root, Netns};
use serde_json::{json, Value};

const HOST_PORT: u16 = 5353;
const POD_PORT: u16 = 5000;
const CLIENT_PORT: u16 = 40000;

/// `conf` mapping HOST_PORT/udp to POD_PORT.
fn udp_mapped(conf: &Value) -> Value {
    merged(
        conf,
        json!({"runtimeConfig": {"portMappings": [
            {"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "udp"}
        ]}}),
    )
}

/// Records every datagram `pod` receives on POD_PORT into `file`.
fn receive_into(pod: &Netns, file: &Path) {
    let out = format!("OPEN:{},creat,append", file.display());
    pod.spawn(&["socat", "-u", &format!("UDP-RECV:{POD_PORT}"), &out]);
}

/// One datagram from the client's fixed source port to the node's hostPort.
fn send(client: &Wired, text: &str) {
    let to = format!(
        "UDP-SENDTO:{}:{HOST_PORT},sourceport={CLIENT_PORT},reuseaddr",
        client.node_ip
    );
    let cmd = format!("echo {text} | socat -u STDIN {to}");
    client.exec(&["sh", "-c", &cmd]).expect_ok();
}

/// Keep sending (as a real client would) until `file` has data, for up to
/// ~6 s; true when it arrived.
fn keep_sending_until_received(client: &Wired, file: &Path, text: &str) -> bool {
    for _ in 0..30 {
        send(client, text);
        thread::sleep(Duration::from_millis(200));
        let got = std::fs::read_to_string(file).unwrap_or_default();
        if got.contains(text) {
            return true;
        }
    }
    false
}

/// Where the node's conntrack sends the client's flow (the reply source of
/// the UDP entry toward HOST_PORT), if there is such an entry.
fn flow_target(node: &PluginNode) -> Vec<String> {
    let ns = netkit::Netns::open(node.path()).unwrap();
    ns.run(|| netkit::conntrack::flows(false))
        .unwrap()
        .unwrap()
        .into_iter()
        .filter(|f| f.proto == netkit::conntrack::UDP && f.orig.dport == HOST_PORT)
        .filter(|f| f.orig.sport == CLIENT_PORT)
        .map(|f| f.reply.src.to_string())
        .collect()
}

/// The scenario, whatever the mode: `add`/`del` attach and detach a pod.
fn replaced_pod_gets_the_running_flow(
    node: &PluginNode,
    conf: &Value,
    add: impl Fn(&Netns, &Value) -> Value,
    del: impl Fn(&Netns, &Value),
) {
    let client = Wired::new(node, "cli", "vcli", "198.51.100.1/24", "198.51.100.2/24");
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a"), dir.path().join("b"));

    let a = node.pod("a");
    let ip_a = first_ip(&add(&a, conf));
    receive_into(&a, &file_a);
    assert!(
        keep_sending_until_received(&client, &file_a, "to-a"),
        "the first pod never got the datagrams: the mapping itself is broken"
    );
    assert_eq!(flow_target(node), vec![ip_a.clone()]);

    del(&a, conf);
    // The client goes on; its entry keeps pointing at the gone pod.
    send(&client, "lost");
    assert_eq!(flow_target(node), vec![ip_a.clone()], "stale flow expected");

    let b = node.pod("b");
    let ip_b = first_ip(&add(&b, conf));
    assert_ne!(ip_a, ip_b, "the test needs the new pod on another IP");
    receive_into(&b, &file_b);
    assert!(
        keep_sending_until_received(&client, &file_b, "to-b"),
        "the new pod never got the running flow's datagrams; conntrack still sends them to {:?}",
        flow_target(node)
    );
    assert_eq!(flow_target(node), vec![ip_b]);
    del(&b, conf);
}

#[test]
fn native_mode_replaced_pod_gets_the_running_udp_flow() {
    require_root();
    let node = NativeNode::new("nudp");
    let conf = udp_mapped(&node.conf("1.0.0"));
    replaced_pod_gets_the_running_flow(&node, &conf, |p, c| node.add(p, c), |p, c| node.del(p, c));
    node.assert_clean(&[]);
}

#[test]
fn bridge_mode_replaced_pod_gets_the_running_udp_flow() {
    require_root();
    let node = PluginNode::new("budp");
    let conf = udp_mapped(&node.conf("1.0.0"));
    replaced_pod_gets_the_running_flow(&node, &conf, |p, c| node.add(p, c), |p, c| node.del(p, c));
}
