//! Unit tests of the host-local store (`store.rs`), torn files included.
use super::*;
use std::os::unix::fs::PermissionsExt;

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn gc_keeps_valid_and_releases_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.2.1.2"), "live\r\neth0").unwrap();
    fs::write(d.join("10.2.1.3"), "dead\r\neth0").unwrap();
    fs::write(d.join("10.2.1.4"), "live\r\nnet1").unwrap();
    fs::write(d.join("10.2.1.5"), "live").unwrap();
    fs::write(d.join("10.2.1.6"), "").unwrap();
    fs::write(d.join("10.2.1.7"), "live\r\ne").unwrap();
    fs::write(d.join("last_reserved_ip.0"), "10.2.1.6").unwrap();
    let store = Locked::open(d).unwrap();
    let released = store
        .release_invalid(
            &[("live".to_string(), "eth0".to_string())],
            &Claims::default(),
        )
        .unwrap();
    let released: Vec<String> = released.iter().map(|i| i.to_string()).collect();
    assert_eq!(
        released,
        vec!["10.2.1.3", "10.2.1.4", "10.2.1.6", "10.2.1.7"]
    );
    assert!(d.join("10.2.1.2").exists());
    assert!(
        d.join("10.2.1.5").exists(),
        "legacy file of a live container is kept"
    );
    assert!(d.join("last_reserved_ip.0").exists());
    assert!(d.join("lock").exists());
}

#[test]
fn files_are_written_as_host_local_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("net");
    let store = Locked::open(&d).unwrap();
    let ip: IpAddr = "10.0.0.2".parse().unwrap();
    assert!(store.reserve(ip, &owner_key(" abc \n", "eth0")).unwrap());
    assert!(!store.reserve(ip, &owner_key("other", "eth0")).unwrap());
    store.set_last_reserved(0, ip).unwrap();
    assert_eq!(fs::read(d.join("10.0.0.2")).unwrap(), b"abc\r\neth0");
    assert_eq!(fs::read(d.join("last_reserved_ip.0")).unwrap(), b"10.0.0.2");
    assert_eq!(mode(&d.join("10.0.0.2")), 0o600);
    assert_eq!(mode(&d.join("last_reserved_ip.0")), 0o600);
    assert_eq!(fs::metadata(d.join("lock")).unwrap().len(), 0);
    assert_eq!(store.last_reserved(0), Some(ip));
    assert_eq!(store.last_reserved(1), None);
    fs::write(d.join("last_reserved_ip.1"), "10.0.").unwrap();
    assert_eq!(store.last_reserved(1), None, "a torn hint is no hint");
}

#[test]
fn owners_compare_like_host_local() {
    let ip: IpAddr = "10.0.0.2".parse().unwrap();
    let a = Allocation::parse(ip, b"abc\r\neth0\n");
    assert!(a.is_exactly(" abc", "eth0") && !a.is_exactly("abc", "eth1"));
    let old = Allocation::parse(ip, b"abc\n");
    assert!(old.is_legacy_of("abc") && old.is_held_by("abc", "net9"));
    let torn = Allocation::parse(ip, b"");
    assert!(!torn.is_held_by("", "eth0") && !torn.is_held_by(" ", ""));
    assert_eq!(torn.container_id, "");
}

#[test]
fn release_owner_prefers_exact_files_then_legacy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.0.0.2"), "abc\r\neth0").unwrap();
    fs::write(d.join("10.0.0.3"), "abc").unwrap();
    fs::write(d.join("10.0.0.4"), "abc\r\neth1").unwrap();
    let store = Locked::open(d).unwrap();
    let ips = |v: Vec<IpAddr>| v.iter().map(|i| i.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ips(store.release_owner("abc", "eth0").unwrap()),
        ["10.0.0.2"]
    );
    assert_eq!(
        ips(store.release_owner("abc", "eth0").unwrap()),
        ["10.0.0.3"]
    );
    assert!(store.release_owner("abc", "eth0").unwrap().is_empty());
    assert!(d.join("10.0.0.4").exists());
}

fn claims(entries: &[(&str, &str, &str)]) -> Claims {
    let mut c = Claims::default();
    for (ip, cid, ifname) in entries {
        c.ips
            .insert(ip.parse().unwrap(), (cid.to_string(), ifname.to_string()));
        c.known.insert((cid.to_string(), ifname.to_string()));
    }
    c
}

fn valid(list: &[&str]) -> Vec<(String, String)> {
    list.iter()
        .map(|c| (c.to_string(), "eth0".to_string()))
        .collect()
}

#[test]
fn damaged_files_are_recognised() {
    let ip: IpAddr = "10.0.0.2".parse().unwrap();
    for torn in [&b""[..], b"  \n", b"\0\0\0\0", b"\xff\xfe", b"a/b", b".x"] {
        assert!(Allocation::parse(ip, torn).is_torn(), "{torn:?}");
    }
    // `abc\r\n` trims to an ID-only file, as host-local reads it.
    for intact in [&b"abc\r\neth0"[..], b"abc", b"abc\r\ne", b"abc\r\n"] {
        assert!(!Allocation::parse(ip, intact).is_torn(), "{intact:?}");
    }
    let key = owner_key("abc", "eth0");
    assert!(Allocation::parse(ip, b"abc\r\ne").may_be_cut_from(&key));
    assert!(Allocation::parse(ip, b"ab").may_be_cut_from(&key));
    assert!(Allocation::parse(ip, b"").may_be_cut_from(&key));
    assert!(!Allocation::parse(ip, b"abc\r\neth0").may_be_cut_from(&key));
    assert!(!Allocation::parse(ip, b"abd").may_be_cut_from(&key));
}

/// The file name is the reservation: GC keeps (and repairs) what a
/// valid attachment's record claims, whatever the file now says.
#[test]
fn gc_repairs_damaged_files_a_valid_record_claims() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.2.1.2"), "").unwrap();
    fs::write(d.join("10.2.1.3"), "b\r\ne").unwrap();
    fs::write(d.join("10.2.1.4"), b"\0\0\0").unwrap();
    fs::write(d.join("10.2.1.5"), "dead\r\neth0").unwrap();
    let store = Locked::open(d).unwrap();
    let c = claims(&[
        ("10.2.1.2", "a", "eth0"),
        ("10.2.1.3", "b", "eth0"),
        ("10.2.1.4", "c", "eth0"),
    ]);
    let freed = store.release_invalid(&valid(&["a", "b", "c"]), &c).unwrap();
    assert_eq!(freed, vec!["10.2.1.5".parse::<IpAddr>().unwrap()]);
    assert_eq!(fs::read(d.join("10.2.1.2")).unwrap(), b"a\r\neth0");
    assert_eq!(fs::read(d.join("10.2.1.3")).unwrap(), b"b\r\neth0");
    assert_eq!(fs::read(d.join("10.2.1.4")).unwrap(), b"c\r\neth0");
    assert!(list(d).iter().all(|n| atomicfile::parse_temp(n).is_none()));
}

/// Without a record naming its IPs, a valid attachment may own any torn
/// file (or one cut from its key): GC keeps them all until every valid
/// attachment is accounted for.
#[test]
fn gc_keeps_damaged_files_while_a_valid_attachment_is_unaccounted() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.2.1.2"), "").unwrap();
    fs::write(d.join("10.2.1.3"), "liv").unwrap();
    fs::write(d.join("10.2.1.4"), "other\r\neth0").unwrap();
    let store = Locked::open(d).unwrap();
    let freed = store
        .release_invalid(&valid(&["live"]), &Claims::default())
        .unwrap();
    assert_eq!(freed, vec!["10.2.1.4".parse::<IpAddr>().unwrap()]);
    assert!(d.join("10.2.1.2").exists() && d.join("10.2.1.3").exists());
    // Once "live" is accounted for (an intact file), they are stale.
    fs::write(d.join("10.2.1.9"), "live\r\neth0").unwrap();
    let freed = store
        .release_invalid(&valid(&["live"]), &Claims::default())
        .unwrap();
    assert_eq!(freed.len(), 2, "{freed:?}");
    assert!(d.join("10.2.1.9").exists());
}

#[test]
fn del_releases_damaged_files_of_its_own_ips_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.2.1.2"), "").unwrap(); // ours, torn
    fs::write(d.join("10.2.1.3"), "ab").unwrap(); // ours, cut short
    fs::write(d.join("10.2.1.4"), "").unwrap(); // claimed by another record
    fs::write(d.join("10.2.1.5"), "zz\r\neth0").unwrap(); // intact, someone else's
    fs::write(d.join("10.2.1.6"), "").unwrap(); // not ours to judge
    let store = Locked::open(d).unwrap();
    let ips: Vec<IpAddr> = ["10.2.1.2", "10.2.1.3", "10.2.1.4", "10.2.1.5", "10.2.1.7"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let other: IpAddr = "10.2.1.4".parse().unwrap();
    let freed = store
        .release_torn("abc", "eth0", TornScope::At(&ips), &mut |ip| ip == other)
        .unwrap();
    assert_eq!(freed, ips[..2].to_vec());
    for kept in ["10.2.1.4", "10.2.1.5", "10.2.1.6"] {
        assert!(d.join(kept).exists(), "{kept}");
    }
}

#[test]
fn unfinished_del_releases_damaged_files_written_since_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::write(d.join("10.2.1.2"), "").unwrap(); // older: not ours
    let since = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let store = Locked::open(d).unwrap();
    let none = store
        .release_torn("abc", "eth0", TornScope::WrittenSince(since), &mut |_| {
            false
        })
        .unwrap();
    assert!(none.is_empty() && d.join("10.2.1.2").exists());
    let since = std::time::SystemTime::UNIX_EPOCH;
    fs::write(d.join("10.2.1.3"), "").unwrap();
    fs::write(d.join("10.2.1.4"), "zz\r\neth0").unwrap(); // intact: kept
    let other: IpAddr = "10.2.1.3".parse().unwrap();
    let freed = store
        .release_torn("abc", "eth0", TornScope::WrittenSince(since), &mut |ip| {
            ip == other
        })
        .unwrap();
    assert_eq!(freed, vec!["10.2.1.2".parse::<IpAddr>().unwrap()]);
    assert!(d.join("10.2.1.3").exists() && d.join("10.2.1.4").exists());
}

/// GC removes the reservation temps of dead writers, in today's naming
/// and in the `.reserve-<pid>-<ip>` of earlier versions; a live writer's
/// temp stays.
#[test]
fn gc_sweeps_the_reservation_temps_of_dead_writers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = Locked::open(d).unwrap();
    let live = format!(".10.2.1.7.tmp-{}", std::process::id());
    for name in [
        ".10.2.1.5.tmp-999999999",
        ".reserve-999999999-10.2.1.6",
        &live,
    ] {
        fs::write(d.join(name), "a\r\neth0").unwrap();
    }
    store.sweep_reserve_temps().unwrap();
    let mut left = list(d);
    left.sort();
    assert_eq!(left, [live, "lock".to_string()]);
}

fn list(d: &Path) -> Vec<String> {
    fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
