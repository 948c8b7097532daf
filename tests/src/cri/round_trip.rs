//! The round trips every `cri_<mode>` test runs, the same for each mode:
//! RunPodSandbox, PodSandboxStatus, traffic, StopPodSandbox (CNI DEL),
//! RemovePodSandbox, nothing left. Each runs twice on one node: the
//! node's state after the second pod is gone must equal its state after
//! the first (whatever a first pod creates for good, a bridge or shared
//! chains, is there in both; anything per pod would show).

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use k8s_cri::v1::{PodSandboxConfig, PodSandboxState, PortMapping, Protocol};

use super::checks::{assert_bandwidth, assert_detached, conntrack_to_port, pod_addrs};
use super::daemon::{mounts_under, CNI_RESULTS};
use super::node::{busybox_container, port, CriNode};
use super::traffic::{eventually, http_get, udp_ask, Servers};
use crate::containerd::add_lan;
use crate::crash_support::Mode;
use crate::plugin_support::Snapshot;
use crate::{assert_ping, require_root};

/// The node's two LAN addresses and its peer's (all inside namespaces the
/// test owns): a port published on `HOST_IP` answers there only.
pub const HOST_IP: &str = "192.168.77.1";
pub const OTHER_IP: &str = "192.168.77.2";
pub const PEER_IP: &str = "192.168.77.10";

/// hostPorts: TCP on every address, UDP on every address, TCP on
/// `HOST_IP` only.
pub const TCP_PORT: u16 = 18080;
pub const UDP_PORT: u16 = 18053;
pub const HOST_IP_PORT: u16 = 18081;
/// What the pod serves them from.
const POD_TCP: u16 = 8080;
const POD_UDP: u16 = 5353;

/// A running sandbox.
pub struct Pod {
    pub id: String,
    pub ip: String,
    pub netns: PathBuf,
    /// IDs of the CRI containers started in it.
    pub containers: Vec<String>,
}

/// RunPodSandbox `config`; checks its status (ready, an IP of the node's
/// subnet, that IP on eth0 of the pod netns CRI made).
#[track_caller]
pub fn run_pod(node: &CriNode, config: &PodSandboxConfig) -> Pod {
    let id = node
        .cri
        .run_sandbox(config)
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", node.ctd.log()));
    let (status, _) = node.cri.sandbox_status(&id).expect("PodSandboxStatus");
    assert_eq!(
        status.state,
        PodSandboxState::SandboxReady as i32,
        "{status:?}"
    );
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    let subnet: Ipv4Net = node.env.subnet.parse().expect("subnet");
    let addr: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|e| panic!("pod IP {ip:?}: {e}"));
    assert!(
        subnet.trunc().contains(&addr),
        "pod IP {ip} not in {subnet}"
    );
    let netns = node
        .cri
        .netns_of(&id)
        .expect("PodSandboxStatus")
        .expect("no network namespace in the sandbox's runtime spec");
    // CRI's own pod netns (netns_mounts_under_state_dir is off), which the
    // harness removes should a test leave it.
    assert!(
        netns.starts_with("/var/run/netns") && netns.to_string_lossy().contains("/cni-"),
        "{}",
        netns.display()
    );
    let want = format!("{ip}/{}", subnet.prefix_len());
    assert_eq!(pod_addrs(&netns), vec![want], "eth0 in {}", netns.display());
    Pod {
        id,
        ip,
        netns,
        containers: Vec::new(),
    }
}

/// StopPodSandbox (CNI DEL) and RemovePodSandbox, checking that the
/// network of `pod` is gone after the stop and the sandbox after the
/// removal (no shm or rootfs mount of it left).
#[track_caller]
pub fn stop_and_remove(node: &CriNode, pod: &Pod, host_ports: &[u16]) {
    node.cri
        .stop_sandbox(&pod.id)
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}\n{}", node.ctd.log()));
    let (status, _) = node.cri.sandbox_status(&pod.id).expect("status");
    assert_eq!(status.state, PodSandboxState::SandboxNotready as i32);
    assert_detached(node, &pod.id, &pod.ip, host_ports, &pod.netns);
    node.cri
        .remove_sandbox(&pod.id)
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}\n{}", node.ctd.log()));
    let ids = node.cri.sandbox_ids().expect("ListPodSandbox");
    assert!(!ids.contains(&pod.id), "sandbox still listed: {ids:?}");
    let ids: Vec<&String> = std::iter::once(&pod.id).chain(&pod.containers).collect();
    let mounts: Vec<_> = mounts_under(Path::new("/"))
        .into_iter()
        .filter(|m| {
            ids.iter()
                .any(|id| m.to_string_lossy().contains(id.as_str()))
        })
        .collect();
    assert!(mounts.is_empty(), "mounts of the pod left: {mounts:?}");
    let cached: Vec<String> = crate::plugin_support::list_names(Path::new(CNI_RESULTS))
        .into_iter()
        .filter(|n| n.contains(&pod.id))
        .collect();
    assert!(cached.is_empty(), "CNI cache entries left: {cached:?}");
    let tasks = node.ctd.ctr(&["tasks", "ls", "-q"]).expect_ok().stdout;
    assert!(tasks.trim().is_empty(), "tasks left: {tasks}");
}

/// Compares the node with the state after the first round (see the
/// module doc); the first round sets it.
#[track_caller]
fn steady(node: &CriNode, baseline: &mut Option<Snapshot>) {
    match baseline {
        None => *baseline = Some(node.stable_snapshot()),
        Some(b) => {
            let diff = node.settled_diff(b);
            assert!(diff.is_empty(), "the second pod left state behind:\n{diff}");
        }
    }
}

/// A sandbox without hostPorts or bandwidth: ADD (IP, eth0, ping both
/// ways), DEL, nothing left, twice.
pub fn plain_round_trip(tag: &str, mode: Mode) {
    require_root();
    let node = CriNode::new(tag, mode);
    let images = node.cri.image_tags().expect("ListImages");
    assert!(
        images.iter().any(|i| i == super::daemon::PAUSE_IMAGE),
        "{images:?}"
    );
    let mut baseline = None;
    for round in 0..2 {
        let config = node.sandbox_config(&format!("plain{round}"), &[], &[]);
        let pod = run_pod(&node, &config);
        assert_ping(node.path(), &pod.ip);
        assert_ping(&pod.netns, &node.gateway());
        stop_and_remove(&node, &pod, &[]);
        steady(&node, &mut baseline);
    }
}

/// The pod's hostPorts (see the constants).
pub fn web_ports() -> Vec<PortMapping> {
    vec![
        port(Protocol::Tcp, POD_TCP, TCP_PORT, ""),
        port(Protocol::Udp, POD_UDP, UDP_PORT, ""),
        port(Protocol::Tcp, POD_TCP, HOST_IP_PORT, HOST_IP),
    ]
}

/// kubelet's bandwidth annotations, 8 Mbit/s each way.
pub const BANDWIDTH: [(&str, &str); 2] = [
    ("kubernetes.io/ingress-bandwidth", "8M"),
    ("kubernetes.io/egress-bandwidth", "8M"),
];

/// A sandbox with TCP and UDP hostPorts (one on a hostIP) and bandwidth
/// annotations: each port answers from a peer on the node's LAN (and the
/// hostIP one from the node itself, and not on the node's other
/// address), the shaping is on the pod's veth and an ifb, then DEL
/// leaves nothing (rules, qdiscs, ifb, conntrack entries); twice.
pub fn ports_and_bandwidth_round_trip(tag: &str, mode: Mode) {
    require_root();
    let node = CriNode::new(tag, mode);
    ports_and_bandwidth_checks(&node);
}

/// The body of [`ports_and_bandwidth_round_trip`] on `node`. The TCP
/// ports are served by a CRI container (busybox httpd, CreateContainer +
/// StartContainer in the sandbox, as kubelet runs a pod's containers), the
/// UDP port by socat in the pod's netns.
pub fn ports_and_bandwidth_checks(node: &CriNode) {
    node.ctd.import(&crate::containerd::test_image());
    let peer = add_lan(
        &node.pn.node,
        &[&format!("{HOST_IP}/24"), &format!("{OTHER_IP}/24")],
        &format!("{PEER_IP}/24"),
    );
    let host_ports = [TCP_PORT, UDP_PORT, HOST_IP_PORT];
    let mut baseline = None;
    for round in 0..2 {
        let config = node.sandbox_config(&format!("web{round}"), &web_ports(), &BANDWIDTH);
        let mut pod = run_pod(node, &config);
        let httpd = ["httpd", "-f", "-p", &POD_TCP.to_string(), "-h", "/www"].map(String::from);
        let httpd: Vec<&str> = httpd.iter().map(String::as_str).collect();
        let cid = node
            .cri
            .start_container(&pod.id, &config, busybox_container("httpd", &httpd))
            .unwrap_or_else(|e| panic!("CreateContainer/StartContainer: {e}\n{}", node.ctd.log()));
        pod.containers.push(cid);
        let mut servers = Servers::default();
        servers.udp(&pod.netns, POD_UDP, "udp-hello");
        let p = peer.path();
        let tcp = Some("hello from busybox".to_string());
        assert_eq!(
            eventually(|| http_get(p, HOST_IP, TCP_PORT)),
            tcp,
            "peer -> TCP hostPort"
        );
        assert_eq!(
            eventually(|| http_get(p, OTHER_IP, TCP_PORT)),
            tcp,
            "peer -> TCP hostPort (2nd address)"
        );
        assert_eq!(
            eventually(|| udp_ask(p, HOST_IP, UDP_PORT)),
            Some("udp-hello".to_string()),
            "peer -> UDP hostPort"
        );
        assert_eq!(
            eventually(|| http_get(p, HOST_IP, HOST_IP_PORT)),
            tcp,
            "peer -> hostIP port"
        );
        assert_eq!(
            eventually(|| http_get(node.path(), HOST_IP, HOST_IP_PORT)),
            tcp,
            "node -> hostIP port"
        );
        assert_eq!(
            http_get(p, OTHER_IP, HOST_IP_PORT),
            None,
            "published on {HOST_IP} only, answered on {OTHER_IP}"
        );
        assert!(
            !conntrack_to_port(node, UDP_PORT).is_empty(),
            "the UDP exchange left no conntrack entry to check"
        );
        assert_bandwidth(node, "8Mbit");
        servers.stop();
        stop_and_remove(node, &pod, &host_ports);
        steady(node, &mut baseline);
    }
}
