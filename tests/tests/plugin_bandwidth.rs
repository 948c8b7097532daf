//! The `bandwidth` capability in every mode, on a real kernel: native mode
//! shapes in-process, bridge mode chains Debian's reference `bandwidth`
//! plugin, flannel mode runs the real upstream flannel plugin and then the
//! reference `bandwidth`. Each test reads the kernel back (`tc -j`,
//! `ip -j`), DELs with and without CNI_NETNS, and two tests measure the
//! shaped rate in both directions.
//!
//! Entries are sent as containerd does (Go field names, burst 2^32-1 bits
//! for an annotation) and as podman does (lower case).

use netboot_tests::bandwidth_support::{
    go_entry, has_ingress_qdisc, host_veth, ifbs, lower_entry, measure_bits_per_sec,
    shaping_qdiscs, tbf_rate, with_bandwidth, CONTAINERD_BURST,
};
use netboot_tests::cni_node::CniNode;
use netboot_tests::native_support::NativeNode;
use netboot_tests::plugin_support::{err_code, err_text, with_prev, CniPathDir, PluginNode};
use netboot_tests::{first_ip, require_root, upstream, Netns, PluginCall, PluginOutput};
use serde_json::Value;

const MBIT8: u64 = 8_000_000;
/// A sane burst for the measured tests: 80 kbit (10 kB), negligible
/// against the megabytes sent.
const SANE_BURST: u64 = 80_000;

/// What every mode must leave for an entry of 8 Mbit/s ingress (rate in
/// B/s on the host veth) and 4 Mbit/s egress (on the one ifb).
#[track_caller]
fn assert_shaped(node: &PluginNode, result: &Value) -> String {
    let veth = host_veth(result);
    assert_eq!(
        tbf_rate(&node.ns, &veth),
        Some(1_000_000),
        "ingress tbf on {veth}"
    );
    assert!(
        has_ingress_qdisc(&node.ns, &veth),
        "no ingress qdisc on {veth}"
    );
    let ifb = ifbs(&node.ns);
    assert_eq!(ifb.len(), 1, "one ifb: {ifb:?}");
    assert!(ifb[0].starts_with("bwp") && ifb[0].len() == 15, "{ifb:?}");
    assert_eq!(
        tbf_rate(&node.ns, &ifb[0]),
        Some(500_000),
        "egress tbf on {}",
        ifb[0]
    );
    ifb[0].clone()
}

#[track_caller]
fn assert_unshaped(node: &PluginNode) {
    assert_eq!(shaping_qdiscs(&node.ns), Vec::<String>::new());
    assert_eq!(ifbs(&node.ns), Vec::<String>::new());
}

/// [`assert_unshaped`] once the kernel has finished destroying a deleted
/// pod netns: its host veth (and the veth's qdiscs) goes away only when
/// the namespace's cleanup work has run, which is asynchronous.
fn assert_unshaped_after_netns_gone(node: &PluginNode) {
    netboot_tests::retry(50, std::time::Duration::from_millis(100), || {
        shaping_qdiscs(&node.ns).is_empty().then_some(())
    });
    assert_unshaped(node);
}

/// ADD with shaping, CHECK, DEL; then ADD again and DEL with an empty
/// CNI_NETNS (containerd's second DEL), and once with the netns gone.
fn round_trips(node: &PluginNode, conf: &Value, run: &dyn Fn(PluginCall) -> PluginOutput) {
    let pod = node.pod("bw");
    let call = |cmd: &str, pod: &Netns, c: &Value| node.call(cmd, pod, c);
    let ok = |c: PluginCall| run(c).expect_ok();
    let res = ok(call("ADD", &pod, conf));
    let ifb = assert_shaped(node, &res);
    ok(call("CHECK", &pod, &with_prev(conf, &res)));
    // CHECK notices the ifb gone; DEL still succeeds.
    node.exec(&["ip", "link", "del", &ifb]).expect_ok();
    let broken = run(call("CHECK", &pod, &with_prev(conf, &res)));
    assert_eq!(
        err_code(&broken),
        100,
        "CHECK without the ifb: {}",
        broken.output
    );
    ok(call("DEL", &pod, &with_prev(conf, &res)));
    assert_unshaped(node);

    let res = ok(call("ADD", &pod, conf));
    assert_shaped(node, &res);
    ok(PluginCall {
        netns: None,
        ..call("DEL", &pod, conf)
    });
    drop(pod);
    assert_unshaped_after_netns_gone(node);

    let pod = node.pod("gone");
    let res = ok(call("ADD", &pod, conf));
    assert_shaped(node, &res);
    let del = call("DEL", &pod, conf);
    drop(pod);
    ok(del);
    assert_unshaped_after_netns_gone(node);
    assert_eq!(node.records(), Vec::<String>::new());
}

#[test]
fn native_mode_shapes_in_process_and_del_removes_it() {
    require_root();
    let node = NativeNode::new("bwn");
    // containerd: Go names, 2^32-1 bits of burst for an annotation.
    let entry = go_entry((MBIT8, CONTAINERD_BURST), (MBIT8 / 2, CONTAINERD_BURST));
    let conf = with_bandwidth(&node.conf("1.0.0"), entry.clone());
    round_trips(&node, &conf, &|c| {
        node.run(&PluginCall {
            path: node.cni_path(),
            ..c
        })
    });

    // The record names the ifb before ADD makes it (crash safety).
    let pod = node.pod("rec");
    node.add(&pod, &conf);
    let rec = node.record(&pod);
    assert_eq!(
        rec["native"]["ifb"],
        Value::from(ifbs(&node.ns)[0].clone()),
        "{rec}"
    );
    assert_eq!(
        rec["native"]["bandwidth"]["ingress"]["rate"], MBIT8,
        "{rec}"
    );
    // GC of the stale attachment removes the ifb too.
    node.gc(&with_bandwidth(&node.conf("1.1.0"), entry), &[]);
    assert_unshaped(&node);
}

#[test]
fn native_mode_without_shaping_touches_no_qdisc() {
    require_root();
    let node = NativeNode::new("bwz");
    // containerd 1.6 sends an all-zero entry for every pod.
    let conf = with_bandwidth(&node.conf("1.0.0"), go_entry((0, 0), (0, 0)));
    let pod = node.pod("z");
    node.add(&pod, &conf);
    assert_unshaped(&node);
    assert!(node.record(&pod)["native"].get("ifb").is_none());
    node.del(&pod, &conf);
}

#[test]
fn bad_entries_are_refused_naming_the_field() {
    require_root();
    let node = NativeNode::new("bwbad");
    let pod = node.pod("bad");
    for (entry, field) in [
        (go_entry((MBIT8, 0), (0, 0)), "ingressBurst"),
        (lower_entry((0, 0), (0, 1000)), "egressRate"),
    ] {
        let conf = with_bandwidth(&node.conf("1.0.0"), entry);
        let out = node.run(&node.call("ADD", &pod, &conf));
        assert_eq!(err_code(&out), 7, "{}", out.output);
        let msg = err_text(&out);
        assert!(
            msg.contains(&format!("runtimeConfig.bandwidth.{field}")),
            "{msg}"
        );
    }
    assert_eq!(node.allocations(), Vec::<String>::new());
    assert_eq!(node.host_veths(), Vec::<String>::new());
}

#[test]
fn bridge_mode_chains_the_reference_plugin_and_del_removes_it() {
    require_root();
    let node = PluginNode::new("bwb");
    // podman's spelling; the reference plugin reads the same.
    let entry = lower_entry((MBIT8, SANE_BURST), (MBIT8 / 2, SANE_BURST));
    let conf = with_bandwidth(&node.conf("1.0.0"), entry);
    round_trips(&node, &conf, &|c| node.run(&c));

    let pod = node.pod("rec");
    let res = node.add(&pod, &conf);
    let rec = node.record(&pod);
    assert_eq!(rec["bandwidth"]["type"], "bandwidth", "{rec}");
    let ifb = assert_shaped(&node, &res);
    let names: Vec<&str> = res["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(
        names.contains(&ifb.as_str()),
        "the chain's result lists the ifb: {res}"
    );
    // GC of the stale attachment (its sandbox gone, as GC may assume)
    // replays the recorded bandwidth DEL, which removes the ifb.
    drop(pod);
    let gc = netboot_tests::plugin_support::merged(
        &node.conf("1.1.0"),
        serde_json::json!({"cni.dev/valid-attachments": []}),
    );
    node.run(&node.bare_call("GC", &gc)).expect_ok();
    assert_unshaped(&node);
    assert_eq!(node.records(), Vec::<String>::new());
}

#[test]
fn bridge_mode_refuses_shaping_without_the_bandwidth_binary() {
    require_root();
    let node = PluginNode::new("bwmiss");
    let path = CniPathDir::new();
    path.reference(&["bridge", "host-local", "portmap"]);
    let conf = with_bandwidth(&node.conf("1.0.0"), go_entry((MBIT8, SANE_BURST), (0, 0)));
    let pod = node.pod("m");
    let out = node.run(&PluginCall {
        path: path.cni_path(),
        ..node.call("ADD", &pod, &conf)
    });
    assert!(!out.success(), "{}", out.output);
    assert!(err_text(&out).contains("bandwidth"), "{}", out.output);
    assert_eq!(node.allocations(), Vec::<String>::new());
    assert_eq!(node.records(), Vec::<String>::new());
    assert!(
        node.ns.link_names().iter().all(|l| l != "cni0"),
        "touched the node"
    );
}

#[test]
fn flannel_mode_with_the_real_flannel_plugin_chains_bandwidth() {
    require_root();
    let node = PluginNode::new("bwf");
    let path = CniPathDir::new();
    path.link("flannel", &upstream::flannel_plugin());
    path.reference(&["bridge", "host-local", "portmap", "bandwidth"]);
    let conf = netboot_tests::plugin_support::merged(
        &with_bandwidth(
            &node.conf("1.0.0"),
            go_entry((MBIT8, SANE_BURST), (MBIT8 / 2, SANE_BURST)),
        ),
        serde_json::json!({"mode": "flannel"}),
    );
    let run = |c: PluginCall| {
        node.run(&PluginCall {
            path: path.cni_path(),
            ..c
        })
    };
    round_trips(&node, &conf, &run);
}

/// The shaped rate, both ways, between the pod and its node (the bridge's
/// gateway address): within 15% of 8 Mbit/s. 4 MB each way (about 4 s).
fn measure_both_ways(node: &PluginNode, pod: &Netns, result: &Value) {
    let (pod_ip, gw) = (first_ip(result), node.gateway());
    const BYTES: u64 = 4_000_000;
    let to_pod = measure_bits_per_sec(&node.ns, pod, &pod_ip, 5201, BYTES);
    let from_pod = measure_bits_per_sec(pod, &node.ns, &gw, 5202, BYTES);
    for (what, rate) in [("to the pod", to_pod), ("from the pod", from_pod)] {
        eprintln!("{what}: {:.3} Mbit/s", rate / 1e6);
        let off = (rate - MBIT8 as f64).abs() / MBIT8 as f64;
        assert!(
            off <= 0.15,
            "{what}: {:.2} Mbit/s, {:.0}% off 8 Mbit/s",
            rate / 1e6,
            off * 100.0
        );
    }
}

/// A pod attached in `node`'s mode with the bandwidth `entry`, its rate
/// measured both ways ([`measure_both_ways`]), then detached.
fn attach_and_measure<N: CniNode>(node: &N, entry: Value) {
    let conf = with_bandwidth(&node.conf("1.0.0"), entry);
    let pod = node.plugin_node().pod("m");
    let res = node.add(&pod, &conf);
    measure_both_ways(node.plugin_node(), &pod, &res);
    node.del(&pod, &conf);
}

#[test]
fn native_mode_measured_rate_is_8_mbit_both_ways() {
    require_root();
    let node = NativeNode::new("bwmn");
    attach_and_measure(&node, go_entry((MBIT8, SANE_BURST), (MBIT8, SANE_BURST)));
}

#[test]
fn bridge_mode_measured_rate_is_8_mbit_both_ways() {
    require_root();
    let node = PluginNode::new("bwmb");
    attach_and_measure(&node, lower_entry((MBIT8, SANE_BURST), (MBIT8, SANE_BURST)));
}

#[test]
fn auto_mode_needs_the_bandwidth_binary_for_bridge_mode() {
    require_root();
    let node = PluginNode::new("bwauto");
    let path = CniPathDir::new();
    path.reference(&["bridge", "host-local"]);
    let auto = netboot_tests::plugin_support::merged(
        &node.conf("1.0.0"),
        serde_json::json!({"mode": "auto"}),
    );
    let shaped = with_bandwidth(&auto, go_entry((MBIT8, SANE_BURST), (0, 0)));
    let run = |cmd: &str, pod: &Netns, conf: &Value| {
        node.run(&PluginCall {
            path: path.cni_path(),
            ..node.call(cmd, pod, conf)
        })
        .expect_ok()
    };
    // No bandwidth binary: shaping is done natively rather than refused.
    let pod = node.pod("a");
    let res = run("ADD", &pod, &shaped);
    assert_eq!(node.record(&pod)["mode"], "native");
    assert_eq!(tbf_rate(&node.ns, &host_veth(&res)), Some(1_000_000));
    run("DEL", &pod, &shaped);
    assert_unshaped(&node);
    // With it, bridge mode as without shaping.
    path.reference(&["bandwidth"]);
    let res = run("ADD", &pod, &shaped);
    assert_eq!(node.record(&pod)["mode"], "bridge");
    assert_eq!(tbf_rate(&node.ns, &host_veth(&res)), Some(1_000_000));
    run("DEL", &pod, &shaped);
    assert_unshaped(&node);
}
