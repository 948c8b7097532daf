//! Traffic control against the real kernel: tbf, ingress qdisc, the
//! redirect filter and ifb devices, each read back through netkit AND
//! `tc -j` / `ip -j`, in throwaway namespaces.

mod common;

use std::process::Command;

use common::{need_root, root_ns, TestNs};
use netkit::tc::{tick_in_usec, TbfParams};
use serde_json::Value;

fn tc_json(ns: &TestNs, args: &[&str]) -> Value {
    let out = Command::new("tc")
        .args(["-j", "-n", &ns.name])
        .args(args)
        .output()
        .expect("run tc");
    assert!(
        out.status.success(),
        "tc {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("tc -j output")
}

#[test]
fn tbf_ingress_redirect_and_ifb() {
    if !need_root() {
        return;
    }
    let (host, pod) = (TestNs::new(), TestNs::new());
    let mut nl = host.nl();
    nl.link()
        .add_veth("hv0", "eth0", &pod.ns, Some(1400), None)
        .unwrap();
    let veth = nl.link().by_name("hv0").unwrap().expect("host veth");

    // ifb: created up, with the MTU asked for, kind ifb.
    nl.link().add_ifb("bwptest", Some(1400)).unwrap();
    let ifb = nl.link().by_name("bwptest").unwrap().expect("ifb");
    assert_eq!(
        (ifb.kind.as_deref(), ifb.up, ifb.mtu),
        (Some("ifb"), true, 1400)
    );
    assert!(nl.link().add_ifb("bwptest", None).unwrap_err().is_exists());

    let p = TbfParams::from_bits(8_000_000, 80_000, veth.mtu, tick_in_usec());
    nl.tc().add_tbf(veth.index, &p).unwrap();
    nl.tc().add_tbf(ifb.index, &p).unwrap();
    nl.tc().add_ingress(veth.index).unwrap();
    nl.tc().add_redirect(veth.index, ifb.index).unwrap();

    // netkit's view.
    let qs = nl.tc().qdiscs(veth.index).unwrap();
    let root = qs.iter().find(|q| q.is_root()).expect("root qdisc");
    assert_eq!((root.kind.as_str(), root.tbf), ("tbf", Some(p)));
    assert!(qs.iter().any(|q| q.kind == "ingress"), "{qs:?}");
    assert!(qs.iter().all(|q| q.index == veth.index));
    let on_ifb = nl.tc().qdiscs(ifb.index).unwrap();
    assert_eq!(
        on_ifb.iter().find(|q| q.is_root()).and_then(|q| q.tbf),
        Some(p)
    );

    // The kernel's view through iproute2: rate in B/s, burst in bytes.
    let j = tc_json(&host, &["qdisc", "show", "dev", "hv0"]);
    let tbf_j = j
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["kind"] == "tbf")
        .expect("tbf");
    assert_eq!(tbf_j["options"]["rate"], 1_000_000);
    assert_eq!(tbf_j["options"]["burst"], 10_000);
    let f = tc_json(&host, &["filter", "show", "dev", "hv0", "parent", "ffff:"]);
    let acts: Vec<&Value> = f
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["options"]["actions"].as_array())
        .flatten()
        .collect();
    assert_eq!(acts.len(), 1, "{f}");
    assert_eq!(acts[0]["kind"], "mirred");
    assert_eq!(acts[0]["mirred_action"], "redirect");
    assert_eq!(acts[0]["direction"], "egress");
    assert_eq!(acts[0]["to_dev"], "bwptest");

    // A second tbf at the root is refused, not silently replaced.
    assert!(nl.tc().add_tbf(veth.index, &p).unwrap_err().is_exists());

    // Deleting the ifb takes its qdisc; deleting the veth takes its own.
    nl.link().del_by_name("bwptest").unwrap();
    nl.link().del_by_name("hv0").unwrap();
    assert!(nl.link().by_name("bwptest").unwrap().is_none());
    assert!(tc_json(&host, &["qdisc", "show"])
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["kind"] != "tbf" && q["kind"] != "ingress"));
}

#[test]
fn shaping_a_rate_above_4_gib_per_second_uses_rate64() {
    let Some(host) = root_ns() else {
        return;
    };
    let mut nl = host.nl();
    nl.link().add_ifb("bwpfast", None).unwrap();
    let ifb = nl.link().by_name("bwpfast").unwrap().expect("ifb");
    // 40 Gbit/s = 5e9 B/s, beyond the 32-bit rate field.
    let p = TbfParams::from_bits(40_000_000_000, 8_000_000, ifb.mtu, tick_in_usec());
    nl.tc().add_tbf(ifb.index, &p).unwrap();
    let q = nl.tc().qdiscs(ifb.index).unwrap();
    assert_eq!(
        q.iter().find_map(|q| q.tbf).map(|t| t.rate),
        Some(5_000_000_000)
    );
    let j = tc_json(&host, &["qdisc", "show", "dev", "bwpfast"]);
    assert_eq!(j[0]["options"]["rate"], 5_000_000_000u64);
}
