//! A three-namespace lab for hostPort traffic: a "node" with veths to a
//! "pod" (10.99.0.0/24, a socat server on :80 answering `pod-hello`) and to
//! a "peer" (10.98.0.0/24). The node forwards and has `route_localnet` on
//! its pod-facing link, so `127.0.0.1:hostPort` can reach the pod once the
//! port mapping is in place. Shared by the CLI and the netlink firewall
//! tests, which must see the same traffic.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{sh, Bg, TestNs};

/// `socat` client in `ns`: the first line the server sent, or None.
pub fn fetch(ns: &TestNs, addr: &str) -> Option<String> {
    let target = format!("TCP:{addr},connect-timeout=2");
    let (ok, out) = ns.exec(&["socat", "-T2", "-u", &target, "-"]);
    (ok && !out.is_empty()).then(|| out.trim().to_string())
}

fn veth(a: &TestNs, an: &str, aip: &str, b: &TestNs, bn: &str, bip: &str) {
    super::veth(a, an, b, bn);
    sh(a, &["ip", "addr", "add", aip, "dev", an]);
    sh(b, &["ip", "addr", "add", bip, "dev", bn]);
}

/// The pod's address, for the port mapping under test.
pub const POD_IP: &str = "10.99.0.2";

pub struct HostportLab {
    pub node: TestNs,
    pub pod: TestNs,
    pub peer: TestNs,
    _server: Bg,
}

impl HostportLab {
    pub fn new() -> HostportLab {
        let (node, pod, peer) = (TestNs::new(), TestNs::new(), TestNs::new());
        for ns in [&node, &pod, &peer] {
            sh(ns, &["ip", "link", "set", "lo", "up"]);
        }
        veth(&node, "n-pod", "10.99.0.1/24", &pod, "eth0", "10.99.0.2/24");
        veth(
            &node,
            "n-peer",
            "10.98.0.1/24",
            &peer,
            "eth0",
            "10.98.0.2/24",
        );
        sh(&pod, &["ip", "route", "add", "default", "via", "10.99.0.1"]);
        sh(
            &peer,
            &["ip", "route", "add", "default", "via", "10.98.0.1"],
        );
        netkit::sysctl::set_in(&node.ns, "net.ipv4.ip_forward", "1").unwrap();
        netkit::sysctl::set_in(&node.ns, "net/ipv4/conf/n-pod/route_localnet", "1").unwrap();
        let server = Bg(Command::new("ip")
            .args(["netns", "exec", &pod.name, "socat"])
            .args(["TCP-LISTEN:80,fork,reuseaddr", "SYSTEM:echo pod-hello"])
            .stdout(Stdio::null())
            .spawn()
            .expect("socat"));
        let deadline = Instant::now() + Duration::from_secs(5);
        while fetch(&pod, "127.0.0.1:80").is_none() {
            assert!(Instant::now() < deadline, "pod server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        HostportLab {
            node,
            pod,
            peer,
            _server: server,
        }
    }

    /// hostPort 8080 answers from the node's pod-facing address, the
    /// node's localhost, the peer and (hairpin) the pod itself.
    pub fn assert_mapped(&self) {
        for (ns, addr, what) in [
            (
                &self.node,
                "10.99.0.1:8080",
                "node → own pod-facing address",
            ),
            (
                &self.node,
                "127.0.0.1:8080",
                "node localhost (snat + route_localnet)",
            ),
            (&self.peer, "10.98.0.1:8080", "peer → node address"),
            (
                &self.pod,
                "10.98.0.1:8080",
                "hairpin: pod → its own hostPort",
            ),
        ] {
            assert_eq!(fetch(ns, addr).as_deref(), Some("pod-hello"), "{what}");
        }
    }

    /// hostPort 8080 answers nobody.
    pub fn assert_unmapped(&self) {
        assert_eq!(
            fetch(&self.node, "10.99.0.1:8080"),
            None,
            "node: still mapped"
        );
        assert_eq!(
            fetch(&self.peer, "10.98.0.1:8080"),
            None,
            "peer: still mapped"
        );
    }
}
