//! `runtimeConfig.ipRanges` (the `ipRanges` capability): a narrower range
//! inside the node's subnet gives pods addresses from that range, in native
//! mode (netboot's own IPAM) and in bridge mode (Debian's host-local), and
//! DEL frees them. containerd's go-cni spells the keys Go-style
//! (`Subnet`, `RangeStart`, ...), podman lower-camel: both are sent.

use std::net::Ipv4Addr;

use netboot_tests::cni_node::CniNode;
use netboot_tests::native_support::NativeNode;
use netboot_tests::plugin_support::{err_code, err_text, merged, PluginNode};
use netboot_tests::{first_ip, require_root};
use serde_json::{json, Value};

/// The node subnet is 10.2.1.0/24; the runtime asks for .100-.110.
fn ranged(conf: &Value, go_keys: bool) -> Value {
    let range = if go_keys {
        json!({"Subnet": "10.2.1.0/24", "RangeStart": "10.2.1.100", "RangeEnd": "10.2.1.110"})
    } else {
        json!({"subnet": "10.2.1.0/24", "rangeStart": "10.2.1.100", "rangeEnd": "10.2.1.110"})
    };
    merged(conf, json!({"runtimeConfig": {"ipRanges": [[range]]}}))
}

fn in_range(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().unwrap();
    (Ipv4Addr::new(10, 2, 1, 100)..=Ipv4Addr::new(10, 2, 1, 110)).contains(&ip)
}

/// Two pods get distinct addresses from the range; DEL frees both. Once
/// with Go-style keys, once with lower-camel ones.
fn pods_get_addresses_from_the_range<N: CniNode>(node: &N) {
    let pn = node.plugin_node();
    for go_keys in [true, false] {
        let conf = &ranged(&node.conf("1.0.0"), go_keys);
        let (a, b) = (pn.pod("a"), pn.pod("b"));
        let (ip_a, ip_b) = (first_ip(&node.add(&a, conf)), first_ip(&node.add(&b, conf)));
        assert!(in_range(&ip_a) && in_range(&ip_b), "{ip_a} {ip_b}");
        assert_ne!(ip_a, ip_b);
        let mut held = pn.allocations();
        held.sort();
        let mut want = vec![ip_a.clone(), ip_b.clone()];
        want.sort();
        assert_eq!(held, want, "the store holds exactly the two addresses");
        assert_eq!(a.ipv4_addrs("eth0"), vec![format!("{ip_a}/24")]);
        node.del(&a, conf);
        node.del(&b, conf);
        assert_eq!(pn.allocations(), Vec::<String>::new(), "DEL frees them");
    }
}

#[test]
fn native_mode_allocates_from_the_runtime_range() {
    require_root();
    let node = NativeNode::new("nrng");
    pods_get_addresses_from_the_range(&node);
    node.assert_clean(&[]);
}

#[test]
fn bridge_mode_allocates_from_the_runtime_range() {
    require_root();
    pods_get_addresses_from_the_range(&PluginNode::new("brng"));
}

#[test]
fn bad_ranges_are_refused_before_anything_changes() {
    require_root();
    let node = NativeNode::new("badrng");
    let pod = node.pod("p");
    let with = |ranges: Value| {
        merged(
            &node.conf("1.0.0"),
            json!({"runtimeConfig": {"ipRanges": ranges}}),
        )
    };
    for (ranges, code, field) in [
        (
            json!([[{"RangeStart": "10.2.1.5"}]]),
            7,
            "runtimeConfig.ipRanges[0][0].subnet",
        ),
        (
            json!([[{"subnet": "10.2.1.0/24", "rangeEnd": "10.2.2.9"}]]),
            7,
            "runtimeConfig.ipRanges[0][0].rangeEnd",
        ),
        (
            json!([[{"subnet": "10.2.1.0/25"}, {"subnet": "10.2.1.128/25"}]]),
            2,
            "runtimeConfig.ipRanges[0]",
        ),
    ] {
        let out = node.run(&node.call("ADD", &pod, &with(ranges.clone())));
        assert_eq!(err_code(&out), code, "{ranges}: {}", out.output);
        assert!(
            err_text(&out).contains(field),
            "{ranges}: {}",
            err_text(&out)
        );
        assert_eq!(node.allocations(), Vec::<String>::new(), "{ranges}");
        assert!(pod.link_names().iter().all(|l| l != "eth0"), "{ranges}");
    }
    node.assert_clean(&[]);
}
