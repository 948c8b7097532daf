//! Pool behaviour: order, bounds, errors, release, torn files, threads.

use super::*;
use std::fs;
use std::sync::{Arc, Barrier};

pub(super) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(super) fn spec(subnet: &str, start: Option<&str>, end: Option<&str>) -> RangeSpec {
    RangeSpec {
        subnet: subnet.parse().unwrap(),
        range_start: start.map(ip),
        range_end: end.map(ip),
        gateway: None,
    }
}

pub(super) fn pool(dir: &Path, specs: Vec<RangeSpec>) -> Pool {
    Pool::new(dir.join("net"), specs).unwrap()
}

fn one(p: &Pool, id: &str) -> String {
    let got = p.allocate(id, "eth0").unwrap();
    assert_eq!(got.len(), 1);
    got[0].ip.to_string()
}

#[test]
fn allocates_in_order_and_wraps_round_robin() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(
        tmp.path(),
        vec![spec("10.1.0.0/24", Some("10.1.0.10"), Some("10.1.0.13"))],
    );
    let got: Vec<String> = ["a", "b", "c"].iter().map(|id| one(&p, id)).collect();
    assert_eq!(got, ["10.1.0.10", "10.1.0.11", "10.1.0.12"]);
    // A freed address is not reused before the walk wraps around.
    assert_eq!(p.release("a", "eth0").unwrap(), [ip("10.1.0.10")]);
    assert_eq!(one(&p, "d"), "10.1.0.13");
    assert_eq!(one(&p, "e"), "10.1.0.10");
    let last = fs::read_to_string(p.store_dir().join("last_reserved_ip.0")).unwrap();
    assert_eq!(last, "10.1.0.10");
}

#[test]
fn result_carries_prefix_and_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v4 = spec("10.244.3.1/24", None, None);
    v4.gateway = Some(ip("10.244.3.254"));
    let p = pool(tmp.path(), vec![v4, spec("fd00:3::/64", None, None)]);
    let got = p.allocate("c1", "eth0").unwrap();
    let want = [
        Allocated {
            ip: ip("10.244.3.1"),
            prefix: 24,
            gateway: ip("10.244.3.254"),
        },
        Allocated {
            ip: ip("fd00:3::2"),
            prefix: 64,
            gateway: ip("fd00:3::1"),
        },
    ];
    assert_eq!(got, want);
    assert_eq!(
        fs::read(p.store_dir().join("fd00:3::2")).unwrap(),
        b"c1\r\neth0"
    );
    assert_eq!(
        fs::read(p.store_dir().join("last_reserved_ip.1")).unwrap(),
        b"fd00:3::2"
    );
    assert_eq!(
        p.holds("c1", "eth0").unwrap(),
        [ip("10.244.3.1"), ip("fd00:3::2")]
    );
}

#[test]
fn never_hands_out_network_gateway_or_broadcast() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(
        tmp.path(),
        vec![spec("10.0.0.0/29", Some("10.0.0.0"), Some("10.0.0.7"))],
    );
    assert_eq!(p.capacity(), 5);
    let mut got: Vec<String> = (0..5).map(|i| one(&p, &format!("c{i}"))).collect();
    got.sort();
    assert_eq!(
        got,
        ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    );
    assert_eq!(p.in_use().unwrap(), 5);
}

#[test]
fn exhaustion_reads_like_host_local() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(tmp.path(), vec![spec("10.0.0.0/30", None, None)]);
    assert_eq!(one(&p, "a"), "10.0.0.2");
    let e = p.allocate("b", "eth0").unwrap_err();
    assert!(matches!(e, IpamError::Exhausted { range: 0, .. }));
    assert_eq!(
        e.to_string(),
        "failed to allocate for range 0: no IP addresses available in range set: 10.0.0.1-10.0.0.2"
    );
    assert_eq!(e.cni_code(), 11);
}

#[test]
fn duplicate_add_fails_like_host_local() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(tmp.path(), vec![spec("10.0.0.0/24", None, None)]);
    assert_eq!(one(&p, "abc"), "10.0.0.2");
    let e = p.allocate("abc", "eth0").unwrap_err();
    assert_eq!(
        e.to_string(),
        "failed to allocate for range 0: 10.0.0.2 has been allocated to abc, duplicate allocation is not allowed"
    );
    assert_eq!(e.cni_code(), 4);
    // Another interface of the same container is another attachment.
    assert_eq!(p.allocate("abc", "net1").unwrap()[0].ip, ip("10.0.0.3"));
    assert_eq!(p.in_use().unwrap(), 2, "the failed ADD wrote nothing");
}

#[test]
fn release_is_idempotent_and_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(tmp.path(), vec![spec("10.0.0.0/24", None, None)]);
    assert!(p.release("abc", "eth0").unwrap().is_empty(), "no store yet");
    assert!(!p.store_dir().exists(), "DEL does not create the store");
    one(&p, "abc");
    p.allocate("abc", "net1").unwrap();
    assert_eq!(p.release("abc", "eth0").unwrap(), [ip("10.0.0.2")]);
    assert!(p.release("abc", "eth0").unwrap().is_empty());
    assert_eq!(p.holds("abc", "net1").unwrap(), [ip("10.0.0.3")]);
    assert!(p.holds("abc", "eth0").unwrap().is_empty());
}

#[test]
fn legacy_id_only_files_are_held_and_released() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(tmp.path(), vec![spec("10.0.0.0/24", None, None)]);
    fs::create_dir_all(p.store_dir()).unwrap();
    fs::write(p.store_dir().join("10.0.0.7"), "old").unwrap();
    assert_eq!(p.holds("old", "eth0").unwrap(), [ip("10.0.0.7")]);
    // host-local's GetByID matches the bare ID, so ADD refuses it too.
    assert!(matches!(
        p.allocate("old", "eth0"),
        Err(IpamError::AlreadyAllocated { .. })
    ));
    assert_eq!(p.release("old", "eth0").unwrap(), [ip("10.0.0.7")]);
    assert!(p.release("old", "eth0").unwrap().is_empty());
}

#[test]
fn torn_files_are_never_reused_and_gc_reclaims_them() {
    let tmp = tempfile::tempdir().unwrap();
    let p = pool(tmp.path(), vec![spec("10.0.0.0/29", None, None)]);
    fs::create_dir_all(p.store_dir()).unwrap();
    fs::write(p.store_dir().join("10.0.0.2"), "").unwrap();
    fs::write(p.store_dir().join("10.0.0.3"), "\r\n").unwrap();
    assert_eq!(one(&p, "a"), "10.0.0.4");
    for id in ["", " ", "a"] {
        assert!(p.release(id, "eth1").unwrap().is_empty());
    }
    assert!(p.holds("", "").unwrap().is_empty());
    let valid = [("a".to_string(), "eth0".to_string())];
    let mut freed = p.release_invalid(&valid, &Claims::default()).unwrap();
    freed.sort();
    assert_eq!(freed, [ip("10.0.0.2"), ip("10.0.0.3")]);
    assert_eq!(p.holds("a", "eth0").unwrap(), [ip("10.0.0.4")]);
}

#[test]
fn dual_stack_is_all_or_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let v6 = spec("fd00::/120", Some("fd00::10"), Some("fd00::10"));
    let p = pool(tmp.path(), vec![spec("10.0.0.0/24", None, None), v6]);
    assert_eq!(p.allocate("a", "eth0").unwrap().len(), 2);
    let e = p.allocate("b", "eth0").unwrap_err();
    assert!(matches!(e, IpamError::Exhausted { range: 1, .. }), "{e}");
    assert!(
        e.to_string().ends_with("range set: fd00::10-fd00::10"),
        "{e}"
    );
    assert!(
        !p.store_dir().join("10.0.0.3").exists(),
        "v4 part rolled back"
    );
    assert_eq!(p.in_use().unwrap(), 2);
}

#[test]
fn rejects_bad_pools_and_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_path_buf();
    let e = Pool::new(d.clone(), vec![]).unwrap_err();
    assert_eq!(e.cni_code(), 7);
    let two = vec![
        spec("10.0.0.0/16", None, None),
        spec("10.0.1.0/24", None, None),
    ];
    assert!(Pool::new(d.clone(), two)
        .unwrap_err()
        .to_string()
        .contains("overlaps"));
    let e = Pool::new(d.clone(), vec![spec("10.0.0.0/31", None, None)]).unwrap_err();
    assert!(e.to_string().contains("range set 0"), "{e}");
    let p = pool(&d, vec![spec("10.0.0.0/24", None, None)]);
    for (id, ifname) in [
        ("", "eth0"),
        ("  ", "eth0"),
        ("a", ""),
        ("a\r\nb", "eth0"),
        ("a", "eth0 "),
    ] {
        assert!(
            matches!(p.allocate(id, ifname), Err(IpamError::Invalid(_))),
            "{id:?}"
        );
    }
}

#[test]
fn store_errors_are_io() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "").unwrap();
    let p = Pool::new(file.join("net"), vec![spec("10.0.0.0/24", None, None)]).unwrap();
    let e = p.allocate("a", "eth0").unwrap_err();
    assert_eq!(e.cni_code(), 5, "{e}");
    assert!(e.to_string().contains("not-a-dir"), "{e}");
}

#[test]
fn fifty_threads_get_fifty_addresses() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Arc::new(pool(tmp.path(), vec![spec("10.5.0.0/24", None, None)]));
    let start = Arc::new(Barrier::new(50));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (p, start) = (p.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                p.allocate(&format!("t{i}"), "eth0").unwrap()[0].ip
            })
        })
        .collect();
    let ips: HashSet<IpAddr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(ips.len(), 50);
    assert_eq!(p.in_use().unwrap(), 50);
    let freed = p.release_invalid(&[], &Claims::default()).unwrap();
    assert_eq!(freed.len(), 50);
    assert_eq!(p.in_use().unwrap(), 0);
}
