//! `netkit::conntrack` against the real kernel: entries created with
//! `conntrack -I` in a throwaway namespace, then deleted by match. A delete
//! must take exactly the matching entries: other ports, other protocols,
//! other destination addresses and the other family stay.

mod common;

use std::net::IpAddr;

use common::{ct_insert, need_root, root_ns, TestNs};
use netkit::conntrack::{self, FlowMatch, Tuple4, TCP, UDP};

fn t(src: &str, dst: &str, sport: u16, dport: u16) -> Tuple4 {
    Tuple4 {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        sport,
        dport,
    }
}

/// A DNATed flow in `ns`: client `sport` -> `node:dport`, answered by
/// `pod:53`.
fn flow(ns: &TestNs, proto: u8, client: &str, sport: u16, node: &str, dport: u16, pod: &str) {
    let (orig, reply) = (t(client, node, sport, dport), t(pod, client, 53, sport));
    ct_insert(ns, proto, orig, reply, 120);
}

fn udp(dport: u16, dst: Option<&str>) -> FlowMatch {
    FlowMatch {
        proto: UDP,
        dport,
        dst: dst.map(|d| d.parse::<IpAddr>().unwrap()),
        nat_to: None,
    }
}

/// (proto, original source port) of every flow of a family, sorted.
fn listed(v6: bool) -> Vec<(u8, u16)> {
    let mut v: Vec<(u8, u16)> = conntrack::flows(v6)
        .unwrap()
        .iter()
        .map(|f| (f.proto, f.orig.sport))
        .collect();
    v.sort();
    v
}

#[test]
fn delete_removes_exactly_the_matching_entries() {
    let Some(ns) = root_ns() else {
        return;
    };
    let c = "192.0.2.9";
    flow(&ns, UDP, c, 4000, "10.0.0.1", 5353, "10.244.1.5");
    flow(&ns, UDP, c, 4001, "10.0.0.2", 5353, "10.244.1.6");
    flow(&ns, UDP, c, 4002, "10.0.0.1", 5354, "10.244.1.5");
    flow(&ns, TCP, c, 4003, "10.0.0.1", 5353, "10.244.1.5");
    flow(
        &ns,
        UDP,
        "2001:db8::9",
        4004,
        "2001:db8::1",
        5353,
        "fd00::5",
    );
    ns.ns
        .run(|| {
            let all_v4 = vec![(TCP, 4003), (UDP, 4000), (UDP, 4001), (UDP, 4002)];
            assert_eq!(listed(false), all_v4);
            assert_eq!(listed(true), vec![(UDP, 4004)]);
            let got = conntrack::flows(false).unwrap();
            let a = got.iter().find(|f| f.orig.sport == 4000).unwrap();
            assert_eq!(a.reply.src, "10.244.1.5".parse::<IpAddr>().unwrap());

            // hostIP given: only flows to that address.
            let n = conntrack::delete_flows(false, &[udp(5353, Some("10.0.0.2"))]).unwrap();
            assert_eq!(n, 1);
            assert_eq!(listed(false), vec![(TCP, 4003), (UDP, 4000), (UDP, 4002)]);

            // No hostIP: every UDP flow to the port, in this family only.
            let n = conntrack::delete_flows(false, &[udp(5353, None)]).unwrap();
            assert_eq!(n, 1);
            assert_eq!(listed(false), vec![(TCP, 4003), (UDP, 4002)]);
            assert_eq!(listed(true), vec![(UDP, 4004)], "v6 untouched");

            // Nothing left to match: a no-op, not an error.
            assert_eq!(
                conntrack::delete_flows(false, &[udp(5353, None)]).unwrap(),
                0
            );
            let opened = conntrack::sockets_opened_on_this_thread();
            assert_eq!(conntrack::delete_flows(true, &[]).unwrap(), 0);
            assert_eq!(
                conntrack::sockets_opened_on_this_thread(),
                opened,
                "nothing to match: no socket"
            );

            assert_eq!(
                conntrack::delete_flows(true, &[udp(5353, None)]).unwrap(),
                1
            );
            assert_eq!(listed(true), vec![]);
            assert_eq!(listed(false), vec![(TCP, 4003), (UDP, 4002)]);
        })
        .unwrap();
}

#[test]
fn tables_are_per_namespace() {
    if !need_root() {
        return;
    }
    let (a, b) = (TestNs::new(), TestNs::new());
    flow(&a, UDP, "192.0.2.9", 4100, "10.0.0.1", 6000, "10.244.1.5");
    let seen_in_b = b.ns.run(|| listed(false)).unwrap();
    assert_eq!(
        seen_in_b,
        vec![],
        "an entry of one netns is invisible in another"
    );
    let n =
        b.ns.run(|| conntrack::delete_flows(false, &[udp(6000, None)]).unwrap())
            .unwrap();
    assert_eq!(n, 0);
    assert_eq!(a.ns.run(|| listed(false)).unwrap(), vec![(UDP, 4100)]);
}
