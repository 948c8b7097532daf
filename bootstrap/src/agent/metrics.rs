//! The agent's Prometheus metrics, kept with `prometheus-client` (the
//! registry, the metric types and the text encoder are the crate's; nothing
//! here formats exposition text by hand). One process-wide set: the etcd
//! store, the event loop and the health server all reach it through
//! [`get`].

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

type Labels = Vec<(String, String)>;

/// Every metric the agent exports, under the `netboot_agent_` prefix.
pub struct Metrics {
    registry: Registry,
    /// 1 for the lease state the node is in (held, reserved, none), else 0.
    pub lease_state: Family<Labels, Gauge>,
    /// Seconds until this node's etcd lease expires (0 without one).
    pub lease_ttl_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Other nodes' subnets programmed, per family.
    pub remote_leases: Family<Labels, Gauge>,
    /// Kernel entries kept for other nodes, per family and kind (route,
    /// fdb, neighbour).
    pub entries: Family<Labels, Gauge>,
    /// Lists of every lease from etcd (at start, and when a watch cannot be
    /// resumed).
    pub resync_seconds: Histogram,
    /// Lists after the first, because etcd could not resume the watch.
    pub relists: Counter,
    /// The etcd revision up to which every lease change has been applied.
    pub watch_revision: Gauge,
    /// Full compares of the kernel tables with the leases held
    /// (--resync-interval): wall time, and CPU time of the agent's thread.
    pub compare_seconds: Histogram,
    pub compare_cpu: Counter<f64, std::sync::atomic::AtomicU64>,
    /// Datagrams and requests sent on the netlink sockets that program
    /// other nodes' routes, neighbour and FDB entries (their ratio shows
    /// whether bursts are batched).
    pub netlink_datagrams: Counter,
    pub netlink_requests: Counter,
    /// Things put back that someone removed (entries, devices).
    pub repairs: Counter,
    /// Lease watches opened again after the first.
    pub watch_restarts: Counter,
    /// etcd requests that failed, by operation.
    pub etcd_errors: Family<Labels, Counter>,
    /// etcd request latency, by operation.
    pub etcd_seconds: Family<Labels, Histogram, fn() -> Histogram>,
}

fn latency() -> Histogram {
    // 1 ms to ~16 s: a local etcd answers in milliseconds, a dead member
    // takes the request timeout.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    fn new() -> Metrics {
        let mut r = Registry::with_prefix("netboot_agent");
        Metrics {
            lease_state: add(
                &mut r,
                "lease_state",
                "This node's subnet lease: 1 for the state it is in (held, reserved, none)",
                Family::default(),
            ),
            lease_ttl_seconds: add(
                &mut r,
                "lease_ttl_seconds",
                "Seconds until this node's etcd lease expires (0 for a reservation or none)",
                Gauge::default(),
            ),
            remote_leases: add(
                &mut r,
                "remote_leases",
                "Other nodes' subnets programmed, per address family",
                Family::default(),
            ),
            entries: add(
                &mut r,
                "programmed_entries",
                "Kernel entries kept for other nodes, per family and kind (route, fdb, neighbour)",
                Family::default(),
            ),
            resync_seconds: add(
                &mut r,
                "resync_duration_seconds",
                "Duration of lists of every lease from etcd (at start, and when etcd cannot resume \
                 the lease watch)",
                Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            ),
            relists: add(
                &mut r,
                "relists",
                "Lists of every lease after the first, because etcd could not resume the lease \
                 watch (history compacted past its revision)",
                Counter::default(),
            ),
            watch_revision: add(
                &mut r,
                "watch_revision",
                "The etcd revision up to which every lease change has been applied",
                Gauge::default(),
            ),
            compare_seconds: add(
                &mut r,
                "kernel_compare_duration_seconds",
                "Duration of full compares of the kernel tables with the leases held \
                 (--resync-interval)",
                Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            ),
            compare_cpu: add(
                &mut r,
                "kernel_compare_cpu_seconds",
                "CPU time spent in full compares of the kernel tables (--resync-interval)",
                Counter::default(),
            ),
            netlink_datagrams: add(
                &mut r,
                "netlink_datagrams",
                "Datagrams sent on the netlink sockets that program other nodes' routes, \
                 neighbour and FDB entries",
                Counter::default(),
            ),
            netlink_requests: add(
                &mut r,
                "netlink_requests",
                "Netlink requests (changes and dumps) sent in netlink_datagrams_total",
                Counter::default(),
            ),
            repairs: add(
                &mut r,
                "repairs",
                "Devices and entries put back, and stale entries removed, on kernel notifications, \
                 device checks and resyncs",
                Counter::default(),
            ),
            watch_restarts: add(
                &mut r,
                "watch_restarts",
                "Lease watches opened again after the first",
                Counter::default(),
            ),
            etcd_errors: add(
                &mut r,
                "etcd_request_errors",
                "etcd requests that failed, by operation",
                Family::default(),
            ),
            etcd_seconds: add(
                &mut r,
                "etcd_request_duration_seconds",
                "etcd request latency, by operation",
                Family::new_with_constructor(latency as fn() -> Histogram),
            ),
            registry: r,
        }
    }

    /// The registry in the Prometheus text format (0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// One etcd request of operation `op` took `took`; `ok` or not.
    pub fn etcd_request(&self, op: &str, took: Duration, ok: bool) {
        let l = label("op", op);
        self.etcd_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
        if !ok {
            self.etcd_errors.get_or_create(&l).inc();
        }
    }
}

/// Registers `metric` under `name` in `r` and hands it back for the struct.
fn add<M: Metric + Clone>(r: &mut Registry, name: &str, help: &str, metric: M) -> M {
    r.register(name, help, metric.clone());
    metric
}

pub fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_string(), v.to_string())]
}

pub fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::{get, label};
    use std::time::Duration;

    #[test]
    fn renders_prometheus_text_with_labels() {
        let m = get();
        m.etcd_request("read", Duration::from_millis(3), false);
        m.lease_state.get_or_create(&label("state", "held")).set(1);
        let text = m.render();
        assert!(
            text.contains("netboot_agent_etcd_request_errors_total{op=\"read\"} 1"),
            "{text}"
        );
        assert!(text.contains("netboot_agent_lease_state{state=\"held\"} 1"));
        assert!(text.contains("# TYPE netboot_agent_etcd_request_duration_seconds histogram"));
    }
}
