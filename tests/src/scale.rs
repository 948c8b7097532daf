//! Support for the agent scale measurement (`tests/tests/agent_scale.rs`,
//! `scripts/scale.sh`): many simulated flanneld leases written to etcd at
//! once, the routes a real agent has programmed counted cheaply, and
//! etcd's own Prometheus metrics read from inside its namespace.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use crate::agent_load::EtcdV3;
use crate::cluster::PREFIX;
use crate::exec::{nsenter, run};

/// The network the scale runs use: room for 65 000 /24 subnets. Agents
/// lease from its start (10.0.1.0 on), simulated nodes from 10.100.0.0.
pub const CONFIG: &str = r#"{"Network":"10.0.0.0/8","SubnetLen":24,"SubnetMin":"10.0.1.0","SubnetMax":"10.255.254.0","Backend":{"Type":"vxlan"}}"#;

/// The subnet's network address of simulated node number `i`.
pub fn sim_net(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 100, 0, 0)) + (i << 8))
}

/// Simulated node number `i`: its key and flanneld's value (vxlan, a
/// public address no namespace has: the FDB entries only name it).
pub fn sim_lease(i: u32) -> (String, String) {
    let net = sim_net(i);
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 30, 0, 1)) + i);
    let b = i.to_be_bytes();
    let mac = [0x0a, 0x58, 0x5f, b[1], b[2], b[3]];
    let key = format!("{PREFIX}/subnets/{net}-24");
    let value = format!(
        r#"{{"PublicIP":"{ip}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{}"}}}}"#,
        netkit::fmt_mac(&mac)
    );
    (key, value)
}

/// Write simulated nodes `from..to` as flanneld does (a Grant of a 24 h
/// lease, then a Put with it), 64 at a time. Returns the time taken.
pub fn write_sims(etcd: &EtcdV3, from: u32, to: u32) -> Duration {
    let start = std::time::Instant::now();
    etcd.must("write simulated leases", |c| async move {
        let mut next = from;
        while next < to {
            let mut set = tokio::task::JoinSet::new();
            for i in next..(next + 64).min(to) {
                let mut c = c.clone();
                set.spawn(async move {
                    let (k, v) = sim_lease(i);
                    let id = c.lease_grant(86400, None).await?.id();
                    let o = etcd_client::PutOptions::new().with_lease(id);
                    c.put(k, v, Some(o)).await.map(|_| ())
                });
            }
            while let Some(r) = set.join_next().await {
                r.expect("writer task")?;
            }
            next = (next + 64).min(to);
        }
        Ok(())
    });
    start.elapsed()
}

/// Counts the routes through `flannel.1` in one node, over a netlink
/// socket opened once in its namespace.
pub struct RouteCounter {
    nl: netkit::Netlink,
}

impl RouteCounter {
    pub fn new(node_netns: &Path) -> RouteCounter {
        let nl = netkit::Netns::open(node_netns)
            .and_then(|ns| ns.netlink())
            .unwrap_or_else(|e| panic!("netlink in {}: {e}", node_netns.display()));
        RouteCounter { nl }
    }

    /// Is there a route through `flannel.1` to the subnet of `addr`? One
    /// lookup (`ip route get fibmatch`): cheap enough to poll 20 nodes.
    pub fn has(&mut self, addr: std::net::IpAddr) -> bool {
        let Ok(Some(dev)) = self.nl.link().by_name("flannel.1") else {
            return false;
        };
        matches!(self.nl.route().fib_match(addr), Ok(Some(m)) if m.oif == Some(dev.index) && m.gw.is_some())
    }

    /// Routes via `flannel.1` (0 without the device).
    pub fn count(&mut self) -> usize {
        let Ok(Some(dev)) = self.nl.link().by_name("flannel.1") else {
            return 0;
        };
        self.nl
            .route()
            .list(netkit::Family::V4)
            .map(|r| {
                r.iter()
                    .filter(|r| r.oif == Some(dev.index) && r.gw.is_some())
                    .count()
            })
            .unwrap_or(0)
    }
}

/// One scrape of etcd's `/metrics`: every sample, by its full name with
/// labels as etcd prints them.
#[derive(Debug, Clone, Default)]
pub struct Scrape(pub BTreeMap<String, f64>);

impl Scrape {
    /// `curl` inside the member's namespace; `None` while etcd is down.
    pub fn take(member_netns: &Path, url: &str) -> Option<Scrape> {
        let out = run(
            nsenter(
                member_netns,
                &["curl", "-sf", "-m", "5", &format!("{url}/metrics")],
            ),
            None,
            Duration::from_secs(10),
        );
        if !out.success() {
            return None;
        }
        let mut m = BTreeMap::new();
        for l in out.stdout.lines().filter(|l| !l.starts_with('#')) {
            if let Some((name, v)) = l.rsplit_once(' ') {
                if let Ok(v) = v.parse::<f64>() {
                    m.insert(name.to_string(), v);
                }
            }
        }
        Some(Scrape(m))
    }

    /// The sum of the samples of metric `name` whose labels contain every
    /// one of `labels` (`grpc_method="Range"`).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| {
                let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
                n == name && labels.iter().all(|l| rest.contains(l))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// Requests served: unary calls, plus messages received on streams
    /// (watch creations and progress requests, lease keep-alives).
    pub fn requests(&self) -> f64 {
        self.sum("grpc_server_started_total", &["grpc_type=\"unary\""])
            + self.sum(
                "grpc_server_msg_received_total",
                &["grpc_type=\"bidi_stream\""],
            )
    }

    pub fn ranges(&self) -> f64 {
        self.sum("grpc_server_started_total", &["grpc_method=\"Range\""])
    }

    pub fn sent_bytes(&self) -> f64 {
        self.sum("etcd_network_client_grpc_sent_bytes_total", &[])
    }

    pub fn received_bytes(&self) -> f64 {
        self.sum("etcd_network_client_grpc_received_bytes_total", &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sims_are_distinct_and_in_flanneld_format() {
        let (k0, v0) = sim_lease(0);
        let (k1, _) = sim_lease(4999);
        assert_eq!(k0, format!("{PREFIX}/subnets/10.100.0.0-24"));
        assert_eq!(k1, format!("{PREFIX}/subnets/10.119.135.0-24"));
        assert!(v0.contains(r#""PublicIP":"172.30.0.1""#), "{v0}");
        assert!(v0.contains(r#""VtepMAC":"0a:58:5f:00:00:00""#), "{v0}");
    }

    #[test]
    fn scrape_sums_by_labels() {
        let mut m = BTreeMap::new();
        m.insert(
            r#"grpc_server_started_total{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#.to_string(),
            3.0,
        );
        m.insert(
            r#"grpc_server_started_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#.to_string(),
            2.0,
        );
        m.insert(
            r#"grpc_server_msg_received_total{grpc_method="Watch",grpc_service="etcdserverpb.Watch",grpc_type="bidi_stream"}"#.to_string(),
            5.0,
        );
        let s = Scrape(m);
        assert_eq!(s.ranges(), 3.0);
        assert_eq!(s.requests(), 8.0);
    }
}
