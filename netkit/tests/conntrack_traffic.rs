//! The reason for `netkit::conntrack::delete_flows`, shown with real UDP
//! traffic in IPv4 and IPv6: a client keeps sending from one source port
//! to a node's hostPort; the mapping moves from pod address A to B; the
//! running flow keeps going to A (conntrack kept its DNAT) until the
//! flows toward the hostPort are deleted, then it reaches B.
//!
//! Namespaces: node, client (veth to the node) and pod (veth to the node,
//! addresses A and B, one UDP receiver bound to each). Nothing touches the
//! root netns.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::portmap::{ip, map, spec};
use common::{need_root, sh, veth, Bg, TestNs};
use netkit::conntrack::{self, FlowMatch, UDP};
use netkit::firewall::{self, PortmapSpec, Proto};

const HOST_PORT: u16 = 5353;
const POD_PORT: u16 = 5000;
const CLIENT_PORT: u16 = 40000;

fn addr(ns: &TestNs, dev: &str, cidr: &str) {
    sh(ns, &["ip", "addr", "add", cidr, "dev", dev, "nodad"]);
}

/// One family's addresses in the lab.
struct Family {
    v6: bool,
    node_client_side: &'static str,
    pod_a: &'static str,
    pod_b: &'static str,
}

const V4: Family = Family {
    v6: false,
    node_client_side: "10.98.0.1",
    pod_a: "10.99.0.2",
    pod_b: "10.99.0.3",
};
const V6: Family = Family {
    v6: true,
    node_client_side: "fd98::1",
    pod_a: "fd99::2",
    pod_b: "fd99::3",
};

struct Lab {
    node: TestNs,
    client: TestNs,
    /// Kept for its lifetime: the receivers live in it.
    _pod: TestNs,
    dir: PathBuf,
    _receivers: Vec<Bg>,
}

impl Lab {
    fn new() -> Lab {
        let (node, client, pod) = (TestNs::new(), TestNs::new(), TestNs::new());
        for ns in [&node, &client, &pod] {
            sh(ns, &["ip", "link", "set", "lo", "up"]);
        }
        veth(&node, "n-pod", &pod, "eth0");
        veth(&node, "n-cli", &client, "eth0");
        addr(&node, "n-pod", "10.99.0.1/24");
        addr(&node, "n-pod", "fd99::1/64");
        addr(&node, "n-cli", "10.98.0.1/24");
        addr(&node, "n-cli", "fd98::1/64");
        for a in ["10.99.0.2/24", "10.99.0.3/24", "fd99::2/64", "fd99::3/64"] {
            addr(&pod, "eth0", a);
        }
        addr(&client, "eth0", "10.98.0.2/24");
        addr(&client, "eth0", "fd98::2/64");
        for (ns, gw4, gw6) in [
            (&pod, "10.99.0.1", "fd99::1"),
            (&client, "10.98.0.1", "fd98::1"),
        ] {
            sh(ns, &["ip", "route", "add", "default", "via", gw4]);
            sh(ns, &["ip", "-6", "route", "add", "default", "via", gw6]);
        }
        netkit::sysctl::set_in(&node.ns, "net.ipv4.ip_forward", "1").unwrap();
        netkit::sysctl::set_in(&node.ns, "net.ipv6.conf.all.forwarding", "1").unwrap();
        let dir = std::env::temp_dir().join(format!("nk-ct-{}-{}", std::process::id(), node.name));
        std::fs::create_dir_all(&dir).unwrap();
        let mut receivers = Vec::new();
        for ip in [V4.pod_a, V4.pod_b, V6.pod_a, V6.pod_b] {
            let bind = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            let recv = if ip.contains(':') {
                "UDP6-RECV"
            } else {
                "UDP4-RECV"
            };
            // No ":" in a socat file name (it separates parameters).
            let out = format!(
                "OPEN:{},creat,append",
                dir.join(ip.replace(':', "_")).display()
            );
            receivers.push(Bg(Command::new("ip")
                .args(["netns", "exec", &pod.name, "socat", "-u"])
                .arg(format!("{recv}:{POD_PORT},bind={bind}"))
                .arg(out)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("socat")));
        }
        Lab {
            node,
            client,
            _pod: pod,
            dir,
            _receivers: receivers,
        }
    }

    fn received(&self, ip: &str) -> String {
        std::fs::read_to_string(self.dir.join(ip.replace(':', "_"))).unwrap_or_default()
    }

    /// Map HOST_PORT/udp to `pod_ip` as container `id` (both families'
    /// rules are written for the pod address given).
    fn map(&self, id: &str, pod_ips: &[IpAddr]) {
        let maps = [map(HOST_PORT, POD_PORT, Proto::Udp, None)];
        let spec = PortmapSpec {
            snat: false,
            ..spec(id, pod_ips, &maps)
        };
        self.node
            .ns
            .run(|| firewall::add_port_mappings(&spec))
            .unwrap()
            .unwrap();
    }

    fn unmap(&self, id: &str) {
        self.node
            .ns
            .run(|| firewall::del_port_mappings("cbr0", id))
            .unwrap()
            .unwrap();
    }

    /// One datagram from the client's fixed port to the node's hostPort.
    fn send(&self, f: &Family, text: &str) {
        let to = if f.v6 {
            format!("UDP6-SENDTO:[{}]:{HOST_PORT}", f.node_client_side)
        } else {
            format!("UDP4-SENDTO:{}:{HOST_PORT}", f.node_client_side)
        };
        let cmd = format!("echo {text} | socat -u STDIN {to},sourceport={CLIENT_PORT},reuseaddr");
        sh(&self.client, &["sh", "-c", &cmd]);
    }

    /// Keep sending until `ip`'s receiver has `text` (up to ~6 s).
    fn send_until(&self, f: &Family, ip: &str, text: &str) -> bool {
        for _ in 0..30 {
            self.send(f, text);
            std::thread::sleep(Duration::from_millis(200));
            if self.received(ip).contains(text) {
                return true;
            }
        }
        false
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn running_udp_flow_follows_the_mapping_only_after_the_delete() {
    if !need_root() {
        return;
    }
    let lab = Lab::new();
    lab.map("pod-a", &[ip(V4.pod_a), ip(V6.pod_a)]);
    for f in [&V4, &V6] {
        assert!(
            lab.send_until(f, f.pod_a, "to-a"),
            "{}: mapping to A broken",
            f.pod_a
        );
    }

    lab.unmap("pod-a");
    lab.map("pod-b", &[ip(V4.pod_b), ip(V6.pod_b)]);
    for f in [&V4, &V6] {
        // Sent synchronously: by the time the next lines run, the kernel has
        // forwarded (or dropped) each one.
        for _ in 0..3 {
            lab.send(f, "stale");
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    for f in [&V4, &V6] {
        assert!(
            lab.received(f.pod_a).contains("stale"),
            "{}: the running flow should still be DNATed to A",
            f.pod_a
        );
        assert_eq!(
            lab.received(f.pod_b),
            "",
            "{}: B got it without a flush",
            f.pod_b
        );
    }

    for f in [&V4, &V6] {
        let m = FlowMatch {
            proto: UDP,
            dport: HOST_PORT,
            dst: None,
            nat_to: None,
        };
        let n = lab
            .node
            .ns
            .run(|| conntrack::delete_flows(f.v6, &[m]))
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "{}: exactly the client's flow", f.pod_b);
        assert!(
            lab.send_until(f, f.pod_b, "to-b"),
            "{}: B never got the flow",
            f.pod_b
        );
    }
}
