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
use prometheus_client::registry::Registry;

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
        let m = Metrics {
            registry: Registry::with_prefix("netboot_agent"),
            lease_state: Family::default(),
            lease_ttl_seconds: Gauge::default(),
            remote_leases: Family::default(),
            entries: Family::default(),
            resync_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            relists: Counter::default(),
            watch_revision: Gauge::default(),
            compare_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 15)),
            compare_cpu: Counter::default(),
            netlink_datagrams: Counter::default(),
            netlink_requests: Counter::default(),
            repairs: Counter::default(),
            watch_restarts: Counter::default(),
            etcd_errors: Family::default(),
            etcd_seconds: Family::new_with_constructor(latency as fn() -> Histogram),
        };
        let mut m = m;
        let r = &mut m.registry;
        r.register(
            "lease_state",
            "This node's subnet lease: 1 for the state it is in (held, reserved, none)",
            m.lease_state.clone(),
        );
        r.register(
            "lease_ttl_seconds",
            "Seconds until this node's etcd lease expires (0 for a reservation or none)",
            m.lease_ttl_seconds.clone(),
        );
        r.register(
            "remote_leases",
            "Other nodes' subnets programmed, per address family",
            m.remote_leases.clone(),
        );
        r.register(
            "programmed_entries",
            "Kernel entries kept for other nodes, per family and kind (route, fdb, neighbour)",
            m.entries.clone(),
        );
        r.register(
            "resync_duration_seconds",
            "Duration of lists of every lease from etcd (at start, and when etcd cannot resume \
             the lease watch)",
            m.resync_seconds.clone(),
        );
        r.register(
            "relists",
            "Lists of every lease after the first, because etcd could not resume the lease \
             watch (history compacted past its revision)",
            m.relists.clone(),
        );
        r.register(
            "watch_revision",
            "The etcd revision up to which every lease change has been applied",
            m.watch_revision.clone(),
        );
        r.register(
            "kernel_compare_duration_seconds",
            "Duration of full compares of the kernel tables with the leases held \
             (--resync-interval)",
            m.compare_seconds.clone(),
        );
        r.register(
            "kernel_compare_cpu_seconds",
            "CPU time spent in full compares of the kernel tables (--resync-interval)",
            m.compare_cpu.clone(),
        );
        r.register(
            "netlink_datagrams",
            "Datagrams sent on the netlink sockets that program other nodes' routes, \
             neighbour and FDB entries",
            m.netlink_datagrams.clone(),
        );
        r.register(
            "netlink_requests",
            "Netlink requests (changes and dumps) sent in netlink_datagrams_total",
            m.netlink_requests.clone(),
        );
        r.register(
            "repairs",
            "Devices and entries put back, and stale entries removed, on kernel notifications, \
             device checks and resyncs",
            m.repairs.clone(),
        );
        r.register(
            "watch_restarts",
            "Lease watches opened again after the first",
            m.watch_restarts.clone(),
        );
        r.register(
            "etcd_request_errors",
            "etcd requests that failed, by operation",
            m.etcd_errors.clone(),
        );
        r.register(
            "etcd_request_duration_seconds",
            "etcd request latency, by operation",
            m.etcd_seconds.clone(),
        );
        m
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
