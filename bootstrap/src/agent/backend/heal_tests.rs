//! How notifications are read (no kernel: the verdicts only). What the
//! agent's own writes cause must cost nothing; what someone else did must
//! name the peer to check or the entry to sweep.

use std::net::IpAddr;

use ipnet::IpNet;
use netkit::{LinkEvent, Neigh, RouteEntry, Scope};

use super::heal::Drift;
use super::vxlan::{DeviceSpec, Remote, Vtep};

const DEV: u32 = 7;
const MAC: [u8; 6] = [0x0a, 0x58, 0, 0, 0, 1];

fn vtep() -> Vtep {
    let spec = DeviceSpec {
        v6: false,
        vni: 1,
        port: 8472,
        gbp: false,
        learning: false,
        out_mtu: 1500,
        local: "192.168.100.11".parse().unwrap(),
        ext_index: 2,
        ext_name: "eth0".into(),
        tx_csum_off: false,
    };
    let mut v = Vtep::new(spec, [0x0e, 0, 0, 0, 0, 9]).expect("a netlink socket");
    v.index = DEV;
    v.book(net("10.2.3.0/24"), remote("172.30.0.3", MAC));
    v
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn remote(public: &str, mac: [u8; 6]) -> Remote {
    Remote {
        public_ip: ip(public),
        mac,
    }
}

fn route(gone: bool, dst: &str, gw: &str) -> LinkEvent {
    LinkEvent::Route {
        gone,
        route: RouteEntry {
            dst: net(dst),
            gw: Some(ip(gw)),
            oif: Some(DEV),
            onlink: true,
            scope: Scope::Universe,
            table: 254,
            metric: None,
        },
    }
}

fn neigh(gone: bool, fdb: bool, addr: &str, mac: [u8; 6]) -> LinkEvent {
    LinkEvent::Neigh {
        gone,
        fdb,
        entry: Neigh {
            index: DEV,
            ip: Some(ip(addr)),
            mac: Some(mac),
            permanent: true,
        },
    }
}

fn drift(v: &Vtep, evs: &[LinkEvent]) -> Drift {
    let mut d = Drift::default();
    for e in evs {
        v.note(e, &mut d);
    }
    d
}

#[test]
fn the_agents_own_writes_cost_nothing() {
    let v = vtep();
    let d = drift(
        &v,
        &[
            route(false, "10.2.3.0/24", "10.2.3.0"),
            neigh(false, false, "10.2.3.0", MAC),
            neigh(false, true, "172.30.0.3", MAC),
            // A lease removed by the agent: its entries are gone from the
            // books before the notifications come.
            route(true, "10.2.4.0/24", "10.2.4.0"),
            neigh(true, false, "10.2.4.0", [0x0a, 0x58, 0, 0, 0, 2]),
            neigh(true, true, "172.30.0.4", [0x0a, 0x58, 0, 0, 0, 2]),
        ],
    );
    assert!(d.suspects.is_empty() && d.routes.is_empty(), "{d:?}");
    assert!(d.neighs.is_empty() && d.fdb.is_empty(), "{d:?}");
}

#[test]
fn removals_and_changes_name_the_peer_to_check() {
    let v = vtep();
    for e in [
        route(true, "10.2.3.0/24", "10.2.3.0"),
        route(false, "10.2.3.0/24", "10.2.3.9"),
        neigh(true, false, "10.2.3.0", MAC),
        neigh(false, false, "10.2.3.0", [0x0a, 0x58, 0xff, 0, 0, 1]),
        neigh(true, true, "172.30.0.3", MAC),
    ] {
        let d = drift(&v, std::slice::from_ref(&e));
        assert_eq!(
            d.suspects.iter().collect::<Vec<_>>(),
            [&net("10.2.3.0/24")],
            "{e:?}: {d:?}"
        );
    }
    // The FDB entry of a peer pointed elsewhere: that destination is swept,
    // and the peer checked.
    let d = drift(&v, &[neigh(false, true, "172.31.9.9", MAC)]);
    assert_eq!(d.fdb, [(MAC, ip("172.31.9.9"))]);
    assert!(d.suspects.contains(&net("10.2.3.0/24")));
}

#[test]
fn entries_no_lease_explains_are_to_sweep() {
    let v = vtep();
    let other = [0x0a, 0x58, 0xff, 0xff, 0, 2];
    let d = drift(
        &v,
        &[
            route(false, "10.2.251.0/24", "10.2.251.0"),
            neigh(false, false, "10.2.251.0", other),
            neigh(false, true, "172.31.9.8", other),
        ],
    );
    assert_eq!(d.routes, [(net("10.2.251.0/24"), ip("10.2.251.0"))]);
    assert_eq!(d.neighs, [ip("10.2.251.0")]);
    assert_eq!(d.fdb, [(other, ip("172.31.9.8"))]);
    assert!(d.suspects.is_empty());
    // Another device's entries are not ours to judge.
    let mut e = neigh(false, false, "10.2.251.0", other);
    if let LinkEvent::Neigh { entry, .. } = &mut e {
        entry.index = DEV + 1;
    }
    assert!(drift(&v, &[e]).neighs.is_empty());
}

#[test]
fn the_mac_index_follows_the_books() {
    let mut v = vtep();
    // A node moving to a new subnet with its VtepMAC: both share it until
    // the old key goes.
    v.book(net("10.2.5.0/24"), remote("172.30.0.3", MAC));
    assert_eq!(v.by_mac[&MAC].len(), 2);
    v.unbook(net("10.2.3.0/24"));
    assert_eq!(v.by_mac[&MAC].len(), 1);
    // The same subnet on a new MAC.
    v.book(net("10.2.5.0/24"), remote("172.30.0.3", [1; 6]));
    assert!(!v.by_mac.contains_key(&MAC));
    assert_eq!(v.by_mac.len(), 1);
}
