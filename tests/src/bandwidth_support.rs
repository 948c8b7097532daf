//! Helpers for the bandwidth tests (`tests/tests/plugin_bandwidth.rs`):
//! `runtimeConfig.bandwidth` entries as containerd (Go field names) and
//! podman (lower case) send them, what shaping leaves in a node (tbf and
//! ingress qdiscs, ifb devices, read back with `tc -j` / `ip -j`), and a
//! throughput measurement between two namespaces.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::netns::{json_strings, Netns};
use crate::plugin_support::merged;
use crate::retry;

/// containerd's burst for a pod annotation (`toCNIBandWidth`: MaxUint32).
pub const CONTAINERD_BURST: u64 = 4_294_967_295;

/// An entry spelled as containerd's go-cni sends it.
pub fn go_entry(ingress: (u64, u64), egress: (u64, u64)) -> Value {
    json!({"IngressRate": ingress.0, "IngressBurst": ingress.1,
           "EgressRate": egress.0, "EgressBurst": egress.1})
}

/// An entry spelled as podman / libcni send it.
pub fn lower_entry(ingress: (u64, u64), egress: (u64, u64)) -> Value {
    json!({"ingressRate": ingress.0, "ingressBurst": ingress.1,
           "egressRate": egress.0, "egressBurst": egress.1})
}

/// `conf` with `runtimeConfig.bandwidth` set to `entry`.
pub fn with_bandwidth(conf: &Value, entry: Value) -> Value {
    let mut rc = conf.get("runtimeConfig").cloned().unwrap_or(json!({}));
    rc["bandwidth"] = entry;
    merged(conf, json!({ "runtimeConfig": rc }))
}

/// `tc -j qdisc show [dev DEV]` in `ns`.
pub fn qdiscs(ns: &Netns, dev: Option<&str>) -> Vec<Value> {
    let mut argv = vec!["tc", "-j", "qdisc", "show"];
    argv.extend(dev.map(|d| ["dev", d]).into_iter().flatten());
    let out = ns.exec(&argv).expect_ok();
    let v: Value = serde_json::from_str(&out.stdout).expect("tc -j output");
    v.as_array().cloned().unwrap_or_default()
}

/// The rate (bytes/s) of the root tbf on `dev`, if it has one.
pub fn tbf_rate(ns: &Netns, dev: &str) -> Option<u64> {
    qdiscs(ns, Some(dev))
        .iter()
        .find(|q| q["kind"] == "tbf" && q["root"] == true)
        .and_then(|q| q["options"]["rate"].as_u64())
}

/// Whether `dev` has an ingress qdisc.
pub fn has_ingress_qdisc(ns: &Netns, dev: &str) -> bool {
    qdiscs(ns, Some(dev)).iter().any(|q| q["kind"] == "ingress")
}

/// Every tbf and ingress qdisc in `ns`, as `kind@handle` (should be none
/// once every attachment is deleted).
pub fn shaping_qdiscs(ns: &Netns) -> Vec<String> {
    qdiscs(ns, None)
        .iter()
        .filter(|q| q["kind"] == "tbf" || q["kind"] == "ingress")
        .map(|q| format!("{}@{}", q["kind"], q["handle"]))
        .collect()
}

/// The ifb devices in `ns`.
pub fn ifbs(ns: &Netns) -> Vec<String> {
    json_strings(&ns.ip_json(&["link", "show", "type", "ifb"]), "ifname")
}

/// The host-side veth a result names (no sandbox, not the bridge, not an
/// ifb): where ingress shaping sits.
pub fn host_veth(result: &Value) -> String {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["sandbox"].as_str().is_none_or(str::is_empty))
        .filter_map(|i| i["name"].as_str())
        .find(|n| *n != "cni0" && !n.starts_with("bwp"))
        .unwrap_or_else(|| panic!("no host veth in {result}"))
        .to_owned()
}

/// Sends `bytes` over TCP from `from` to `to_ip` (an address of `to`) and
/// returns the rate the receiver saw, in bits/s: from just before the
/// client starts until the receiver has read the last byte (a sender's
/// clock would stop while megabytes still sit in its socket buffer).
pub fn measure_bits_per_sec(from: &Netns, to: &Netns, to_ip: &str, port: u16, bytes: u64) -> f64 {
    let listen = format!("socat -u TCP-LISTEN:{port},reuseaddr STDOUT | wc -c");
    let send = format!("head -c {bytes} /dev/zero | socat -u STDIN TCP:{to_ip}:{port}");
    thread::scope(|s| {
        let receiver = s.spawn(|| to.exec(&["sh", "-c", &listen]));
        let filter = format!("sport = :{port}");
        retry(50, Duration::from_millis(100), || {
            let out = to.exec(&["ss", "-Hltn", &filter]);
            (!out.stdout.trim().is_empty()).then_some(())
        })
        .expect("receiver never listened");
        let start = Instant::now();
        from.exec(&["sh", "-c", &send]).expect_ok();
        let got = receiver.join().expect("receiver thread").expect_ok();
        let elapsed = start.elapsed().as_secs_f64();
        let received: u64 = got.stdout.trim().parse().expect("byte count");
        assert_eq!(received, bytes, "the transfer was cut short");
        received as f64 * 8.0 / elapsed
    })
}
