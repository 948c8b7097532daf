//! The scaffold netboot-cni's mode suites share (`plugin_protocol.rs` and
//! `plugin_bridge.rs` in bridge mode, `plugin_native.rs` in native mode):
//! one ADD/CHECK/DEL round trip at every spec version, one table runner
//! for bad inputs (with the cases every mode refuses alike), two pods on
//! one bridge, and the DEL and GC set-ups both modes test. What differs
//! per mode comes in as a [`CniNode`] and a few closures.

use serde_json::Value;

use crate::cni_node::CniNode;
use crate::netns::Netns;
use crate::plugin::PluginCall;
use crate::plugin_support::{
    assert_result_shape, cid, err_code, err_text, merged, routes, with_ports, with_prev, HOST_PORT,
    POD_PORT,
};
use crate::{assert_ping, first_gateway, first_ip};

/// The versions the round trip walks: every version with a result that
/// has interfaces (0.3.0 on).
pub const ROUND_TRIP_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// ADD, CHECK, STATUS, GC and DEL of one pod at every version of
/// [`ROUND_TRIP_VERSIONS`]: the result's shape, one allocation, CHECK
/// refused before 0.4.0 and passing after, STATUS and GC only at 1.1.0,
/// DEL leaving the node clean and the pod without eth0.
///
/// `inspect(v, pod, result)` adds the mode's own checks of a fresh
/// attachment; `break_it(v, pod, conf, result)` (0.4.0 on, after a passing
/// CHECK) damages the pod and asserts that CHECK notices.
#[track_caller]
pub fn round_trip_at_every_version<N: CniNode>(
    node: &N,
    inspect: impl Fn(&str, &Netns, &Value),
    break_it: impl Fn(&str, &Netns, &Value, &Value),
) {
    for v in ROUND_TRIP_VERSIONS {
        let pod = node.plugin_node().pod("rt");
        let conf = node.conf(v);
        let res = node.add(&pod, &conf);
        assert_result_shape(v, &res, &pod, node.plugin_node());
        assert_eq!(node.plugin_node().allocations().len(), 1, "{v}");
        inspect(v, &pod, &res);

        let check = node.check(&pod, &conf, &res);
        if v.starts_with("0.3") {
            assert_eq!(err_code(&check), 1, "{v}: CHECK needs 0.4.0");
            assert!(err_text(&check).contains("CHECK"), "{}", check.output);
        } else {
            check.expect_ok();
            break_it(v, &pod, &conf, &res);
        }
        for cmd in ["STATUS", "GC"] {
            let out = node.run(&node.call(cmd, &pod, &conf));
            if v == "1.1.0" {
                out.expect_ok();
            } else {
                assert_eq!(err_code(&out), 1, "{v} {cmd}: {}", out.output);
                assert!(err_text(&out).contains(cmd), "{}", out.output);
            }
        }
        node.run(&node.call("DEL", &pod, &with_prev(&conf, &res)))
            .expect_ok();
        node.assert_clean(&[&cid(&pod)]);
        assert!(pod.link_names().iter().all(|l| l != "eth0"), "{v}");
    }
}

/// How a bad-input case changes the call the runner would make.
pub type Tweak<N> = Box<dyn Fn(&mut PluginCall, &N)>;

/// One bad input: what it is, the command, the tweak, the CNI error code
/// expected, and the words the error must name.
pub type BadInput<N> = (&'static str, &'static str, Tweak<N>, u64, Vec<&'static str>);

/// A tweak that replaces the call's config with `f(node)`.
pub fn set_conf<N: 'static>(f: impl Fn(&N) -> Value + 'static) -> Tweak<N> {
    Box::new(move |c, n| c.stdin = f(n).to_string())
}

/// The bad inputs every mode refuses alike, before it touches the node.
pub fn shared_bad_inputs<N: CniNode + 'static>() -> Vec<BadInput<N>> {
    let no_subnet_env = |version: &'static str| {
        set_conf(move |n: &N| {
            let missing = n.plugin_node().dir().join("nope.env");
            merged(
                &n.conf(version),
                serde_json::json!({ "subnetFile": missing }),
            )
        })
    };
    vec![
        (
            "no CNI_NETNS",
            "ADD",
            Box::new(|c, _| c.netns = None),
            4,
            vec!["CNI_NETNS"],
        ),
        (
            "escaping container id",
            "ADD",
            Box::new(|c, _| c.container_id = "../../etc".into()),
            4,
            vec!["../../etc"],
        ),
        (
            "16-byte ifname",
            "ADD",
            Box::new(|c, _| c.ifname = "abcdefghijklmnop".into()),
            4,
            vec!["abcdefghijklmnop"],
        ),
        (
            "bad JSON",
            "ADD",
            Box::new(|c, _| c.stdin = "{\"cniVersion\":".into()),
            6,
            vec![],
        ),
        (
            "future version",
            "ADD",
            set_conf(|n: &N| merged(&n.conf("1.0.0"), serde_json::json!({"cniVersion": "9.9.9"}))),
            1,
            vec!["9.9.9"],
        ),
        (
            "missing subnet.env",
            "ADD",
            no_subnet_env("1.0.0"),
            11,
            vec!["subnet.env", "nope.env"],
        ),
        (
            "missing subnet.env STATUS",
            "STATUS",
            no_subnet_env("1.1.0"),
            50,
            vec!["nope.env"],
        ),
    ]
}

/// Run every case against `pod` with `conf`: each is refused with its
/// code, its error names its words, and the node's snapshot is unchanged.
/// `before(what)` runs ahead of the snapshot (a set-up, or a look at the
/// pod); `after(what, seen)` gets what it returned for the mode's own
/// checks once the case was refused.
#[track_caller]
pub fn assert_refused<N: CniNode, S>(
    node: &N,
    pod: &Netns,
    conf: &Value,
    cases: Vec<BadInput<N>>,
    mut before: impl FnMut(&str) -> S,
    mut after: impl FnMut(&str, S),
) {
    for (what, cmd, tweak, code, words) in cases {
        let seen = before(what);
        let snapshot = node.snapshot();
        let mut call = node.call(cmd, pod, conf);
        tweak(&mut call, node);
        let out = node.run(&call);
        assert_eq!(err_code(&out), code, "{what}: {}", out.output);
        let text = err_text(&out);
        for w in words {
            assert!(
                text.contains(w),
                "{what}: error does not name {w:?}: {}",
                out.output
            );
        }
        assert_eq!(node.snapshot(), snapshot, "{what} changed the node");
        after(what, seen);
    }
}

/// Two pods attached with `conf` and what they got.
#[derive(Debug)]
pub struct TwoPods {
    pub a: Netns,
    pub b: Netns,
    pub res_a: Value,
    pub res_b: Value,
    pub ip_a: String,
    pub ip_b: String,
    /// The node's pod gateway, `cni0`'s address.
    pub gw: String,
}

/// ADD two pods with `conf` and check they talk: distinct IPs from
/// FLANNEL_SUBNET, the gateway in the result and on `cni0`, pings between
/// them and to the gateway, the cluster and default routes, FLANNEL_MTU.
#[track_caller]
pub fn two_pods_talk<N: CniNode>(node: &N, conf: &Value) -> TwoPods {
    let pn = node.plugin_node();
    let (a, b) = (pn.pod("a"), pn.pod("b"));
    let res_a = node.add(&a, conf);
    let res_b = node.add(&b, conf);
    let (ip_a, ip_b) = (first_ip(&res_a), first_ip(&res_b));
    assert_ne!(ip_a, ip_b, "pods got the same IP");
    for ip in [&ip_a, &ip_b] {
        assert!(ip.starts_with("10.2.1."), "{ip} not from FLANNEL_SUBNET");
        assert_ne!(ip, "10.2.1.1");
    }
    let gw = pn.gateway();
    assert_eq!(first_gateway(&res_a), gw);
    assert_ping(&a, &gw);
    assert_ping(&a, &ip_b);
    assert_ping(&b, &ip_a);
    for pod in [&a, &b] {
        let r = routes(pod);
        assert!(r.contains(&format!("10.2.0.0/16 via {gw}")), "{r:?}");
        assert!(r.contains(&format!("default via {gw}")), "{r:?}");
        let mtu = pod.ip_json(&["link", "show", "eth0"])[0]["mtu"].clone();
        assert_eq!(mtu, 1450, "FLANNEL_MTU not applied");
    }
    assert_eq!(pn.ns.ipv4_addrs("cni0"), vec![format!("{gw}/24")]);
    TwoPods {
        a,
        b,
        res_a,
        res_b,
        ip_a,
        ip_b,
        gw,
    }
}

/// A second ADD of `pod`'s live attachment is refused (code 4), not
/// doubled: the node still holds `allocations` IPs.
#[track_caller]
pub fn assert_second_add_refused<N: CniNode>(
    node: &N,
    pod: &Netns,
    conf: &Value,
    allocations: usize,
) {
    let again = node.run(&node.call("ADD", pod, conf));
    assert_eq!(err_code(&again), 4, "{}", again.output);
    assert_eq!(node.plugin_node().allocations().len(), allocations);
}

/// DEL of an attached `pod` whose netns was deleted first, twice: both
/// succeed and the node is clean.
#[track_caller]
pub fn del_after_netns_is_gone<N: CniNode>(node: &N, pod: Netns, conf: &Value) {
    let call = node.call("DEL", &pod, conf);
    let id = cid(&pod);
    drop(pod);
    node.run(&call).expect_ok();
    node.run(&call).expect_ok();
    node.assert_clean(&[&id]);
}

/// The GC set-up: pods `keep`, `s1` (with a hostPort) and `s2` attached
/// with `conf`; returns them and `keep`'s result.
pub fn gc_candidates<N: CniNode>(node: &N, conf: &Value) -> (Vec<Netns>, Value) {
    let pods: Vec<Netns> = ["keep", "s1", "s2"]
        .iter()
        .map(|t| node.plugin_node().pod(t))
        .collect();
    let keep_res = node.add(&pods[0], conf);
    node.add(&pods[1], &with_ports(conf, HOST_PORT, POD_PORT));
    node.add(&pods[2], conf);
    (pods, keep_res)
}
