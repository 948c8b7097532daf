//! podrun on a two-node cluster: `netboot agent` on each node netns (etcd
//! and the underlay from the cluster harness), one containerd of our own
//! shared by both nodes' podrun instances (podrun hands containerd the
//! pod netns path, so a containerd in the root netns serves both), and
//! netboot-cni (native mode) on each node reading the agent's subnet.env.
//! A pod on node 1 fetches over HTTP from a pod on node 2 by its IP, and
//! back. Needs root; nothing touches the root netns.

use std::time::Duration;

use netboot_tests::cluster::{AgentNode, EtcdCluster, Underlay, CONFIG, PREFIX};
use netboot_tests::containerd::{Containerd, Podrun, BUSYBOX};
use netboot_tests::{require_root, retry};
use serde_json::{json, Value};

const FAST: &[&str] = &["--resync-interval=5s", "--device-check-interval=1s"];
const CONVERGE: Duration = Duration::from_secs(30);

/// A podrun instance for `node`: its conflist wraps the node's
/// netboot-cni native conf (subnetFile = the agent's subnet.env).
fn podrun_on(node: &AgentNode, ctd: &Containerd) -> Podrun {
    let mut plugin = node.cni_conf();
    let obj = plugin.as_object_mut().expect("conf object");
    obj.remove("name");
    obj.remove("cniVersion");
    let conflist = json!({"cniVersion": "1.0.0", "name": "cbr0", "plugins": [plugin]});
    Podrun::new(
        node.ns.path(),
        &node.dir.path().join("podrun"),
        &ctd.socket(),
        &conflist,
    )
}

/// httpd on :80 plus a client container to fetch from.
fn web_pod(name: &str) -> Value {
    json!({
        "name": name,
        "containers": [
            {"name": "httpd", "image": BUSYBOX, "command": ["httpd", "-f", "-p", "80", "-h", "/www"]},
            {"name": "client", "image": BUSYBOX, "command": ["sleep", "1000"]},
        ],
    })
}

/// `wget http://ip/` from the client container of `pod`, retried while
/// the overlay converges.
fn fetch(pr: &Podrun, pod: &str, ip: &str) -> Option<String> {
    let url = format!("http://{ip}:80/");
    let tries = (CONVERGE.as_millis() / 500) as u32;
    retry(tries, Duration::from_millis(500), || {
        // busybox-static 1.35's `wget -T` segfaults: bound it with timeout.
        let o = pr.podrun(&[
            "exec", pod, "client", "--", "busybox", "timeout", "5", "wget", "-qO-", &url,
        ]);
        if !o.success() {
            eprintln!("[podrun_cluster] {o}");
        }
        o.success().then_some(o.stdout)
    })
}

/// Each node's routes and whether it reaches `ip`, for a failure message.
fn diag(nodes: &[&AgentNode], ip: &str) -> String {
    let mut out = String::new();
    for n in nodes {
        let route = n.exec(&["ip", "route"]);
        let ping = n.exec(&["ping", "-c1", "-W1", ip]);
        out += &format!(
            "--- node {} (ping {ip}: {}) ---\n{}",
            n.ip,
            ping.success(),
            route.stdout
        );
    }
    out
}

fn in_subnet(ip: &str, subnet_env: &str) -> bool {
    // FLANNEL_SUBNET=10.2.7.1/24 -> pods are 10.2.7.x
    let prefix = subnet_env.rsplit_once('.').map(|(p, _)| p).unwrap_or("");
    ip.rsplit_once('.').map(|(p, _)| p) == Some(prefix)
}

#[test]
fn pods_on_two_agent_nodes_talk_http_by_pod_ip() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    let ctd = Containerd::start();
    let mut n1 = AgentNode::new(&ul, "pc1", 21);
    let mut n2 = AgentNode::new(&ul, "pc2", 22);
    n1.start_agent(&ep, FAST);
    n2.start_agent(&ep, FAST);
    let s1 = n1.wait_subnet(CONVERGE);
    let s2 = n2.wait_subnet(CONVERGE);
    assert_ne!(s1, s2);
    // Declared after containerd and the nodes: dropped (pods removed)
    // before them.
    let pr1 = podrun_on(&n1, &ctd);
    let pr2 = podrun_on(&n2, &ctd);

    let ip2 = pr2.run_pod_ip(&web_pod("srv"));
    let ip1 = pr1.run_pod_ip(&web_pod("cli"));
    assert!(in_subnet(&ip1, &s1), "pod {ip1} not in node 1's {s1}");
    assert!(in_subnet(&ip2, &s2), "pod {ip2} not in node 2's {s2}");

    let got = fetch(&pr1, "cli", &ip2);
    assert_eq!(
        got.as_deref(),
        Some("hello from busybox\n"),
        "node 1 pod -> node 2 pod {ip2} over HTTP\n--- agent 1 ---\n{}\n--- agent 2 ---\n{}\n{}",
        n1.log(),
        n2.log(),
        diag(&[&n1, &n2], &ip2)
    );
    let back = fetch(&pr2, "srv", &ip1);
    assert_eq!(
        back.as_deref(),
        Some("hello from busybox\n"),
        "node 2 pod -> node 1 pod {ip1}"
    );
    pr1.podrun(&["rm", "cli", "--grace", "1"]).expect_ok();
    pr2.podrun(&["rm", "srv", "--grace", "1"]).expect_ok();
    pr1.assert_clean(&ctd);
    pr2.assert_clean(&ctd);
}
