use super::*;
use crate::conf::Mode;
use crate::record::entry::Call;
use serde_json::json;

fn record(cid: &str, ifname: &str) -> Record {
    let mut rec = Record::new(cid, ifname, "cbr0", Mode::Bridge);
    rec.delegate = Some(Call {
        type_: "bridge".into(),
        conf: json!({"type":"bridge"}),
    });
    rec
}

#[test]
fn remove_takes_dead_writers_temp_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store.save(&record("c1", "eth0")).unwrap();
    let rec_dir = dir.path().join(RECORD_DIR);
    // 999999999 is above any pid_max; our own PID is alive.
    let dead = rec_dir.join(".c1@eth0.json.tmp-999999999");
    let live = rec_dir.join(format!(".c1@eth0.json.tmp-{}", std::process::id()));
    let other = rec_dir.join(".c2@eth0.json.tmp-999999999");
    for p in [&dead, &live, &other] {
        fs::write(p, b"x").unwrap();
    }
    store.remove("c1", "eth0").unwrap();
    assert!(!dead.exists() && live.exists() && other.exists());
    store.remove_dead_temps().unwrap();
    assert!(!other.exists() && live.exists());
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn round_trip_and_listing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert_eq!(store.load("c1", "eth0").unwrap(), None);
    store.save(&record("c1", "eth0")).unwrap();
    store.save(&record("c1", "net1")).unwrap();
    store.save_flannel("c1", b"{}").unwrap();
    assert_eq!(
        store.load("c1", "eth0").unwrap(),
        Some(record("c1", "eth0"))
    );
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|(c, i, _)| (c, i))
        .collect();
    assert_eq!(
        listed,
        vec![("c1".into(), "eth0".into()), ("c1".into(), "net1".into())]
    );
    assert_eq!(store.list_flannel().unwrap(), vec!["c1".to_string()]);
    store.save(&record("c10", "eth0")).unwrap();
    assert_eq!(store.ifnames_of("c1").unwrap(), vec!["eth0", "net1"]);
    assert_eq!(store.ifnames_of("c").unwrap(), Vec::<String>::new());
    assert_eq!(store.ifnames_of("c10").unwrap(), vec!["eth0"]);
    store.remove("c1", "eth0").unwrap();
    store.remove("c1", "eth0").unwrap();
    assert_eq!(store.load("c1", "eth0").unwrap(), None);
    // A finished ADD's record and scratch file go without a listing.
    store.remove_finished("c1", "net1").unwrap();
    store.remove_flannel_finished("c1").unwrap();
    store.remove_finished("c1", "net1").unwrap();
    assert_eq!(store.ifnames_of("c1").unwrap(), Vec::<String>::new());
    assert_eq!(store.list_flannel().unwrap(), Vec::<String>::new());
}

#[test]
fn permissions_are_root_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(&dir.path().join("flannel"));
    store.save_flannel("c1", b"{}").unwrap();
    let meta = fs::metadata(store.flannel_path("c1")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let meta = fs::metadata(dir.path().join("flannel")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
}

#[test]
fn damaged_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    fs::create_dir_all(dir.path().join(RECORD_DIR)).unwrap();
    fs::write(dir.path().join(RECORD_DIR).join("c1@eth0.json"), b"").unwrap();
    let err = store.load("c1", "eth0").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("0 bytes"));
}

#[test]
fn sibling_marks_are_no_records_and_orphans_go_in_gc() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    assert!(!store.siblings_marked("c1") && !store.flannel_exists("c1"));
    store.mark_siblings("c1").unwrap();
    store.mark_siblings("c1").unwrap();
    store.mark_siblings("c2").unwrap();
    store.save(&record("c1", "eth0")).unwrap();
    store.save_flannel("c1", b"{}").unwrap();
    assert!(store.siblings_marked("c1") && store.flannel_exists("c1"));
    assert_eq!(store.ifnames_of("c1").unwrap(), vec!["eth0"]);
    assert_eq!(store.list().unwrap().len(), 1);
    // c2 has a mark and no record: a killed ADD's.
    store.remove_orphan_marks().unwrap();
    assert!(store.siblings_marked("c1") && !store.siblings_marked("c2"));
    store.unmark_siblings("c1").unwrap();
    store.unmark_siblings("c1").unwrap();
    assert!(!store.siblings_marked("c1"));
}
