//! Namespace handling, sysctl, NotFound / idempotency. Real kernel, root only.

mod common;

use std::path::Path;

use common::{need_root, root_links, root_ns, TestNs};
use netkit::{sysctl, Netns};

fn own_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

#[test]
fn missing_netns_is_not_found() {
    if !need_root() {
        return;
    }
    let err = Netns::open(Path::new("/run/netns/nk-definitely-missing")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("nk-definitely-missing"), "{err}");
    let err = Netns::open(Path::new("/proc/999999999/ns/net")).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    // A regular file is not a namespace.
    let err = Netns::open(Path::new("/etc/hostname")).unwrap_err();
    assert!(!err.is_not_found(), "{err}");
}

#[test]
fn create_and_delete_named_are_idempotent_where_they_should_be() {
    let Some(t) = root_ns() else {
        return;
    };
    let err = netkit::create_named(&t.name).unwrap_err();
    assert!(err.is_exists(), "{err}");
    let listed = std::fs::read_dir("/run/netns")
        .unwrap()
        .any(|e| e.unwrap().file_name() == *t.name);
    assert!(listed);
    netkit::delete_named("nk-never-existed").unwrap();
    assert!(netkit::create_named("a/b").is_err());
}

#[test]
fn run_never_moves_the_callers_thread() {
    if !need_root() {
        return;
    }
    let before = own_netns_inode();
    let t = TestNs::new();
    let inside = t.ns.run(own_netns_inode).unwrap();
    assert_ne!(inside, before);
    assert_eq!(own_netns_inode(), before);
    // An error (or panic) inside the closure leaves the caller where it was.
    let r: Result<(), String> = t.ns.run(|| Err("boom".into())).unwrap();
    assert!(r.is_err());
    let p = std::panic::catch_unwind(|| t.ns.run(|| panic!("inside")));
    assert!(p.is_err());
    assert_eq!(own_netns_inode(), before);
    // The current() handle really is ours.
    let cur = Netns::current().unwrap();
    assert_eq!(cur.run(own_netns_inode).unwrap(), before);
}

#[test]
fn netlink_socket_stays_in_its_netns() {
    let Some(t) = root_ns() else {
        return;
    };
    let mut nl = t.nl();
    // A fresh namespace has only lo, whichever thread drives the socket.
    let names: Vec<String> = std::thread::spawn(move || nl.link().list().unwrap())
        .join()
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, vec!["lo".to_string()]);
}

#[test]
fn missing_objects_are_idempotent() {
    let Some(t) = root_ns() else {
        return;
    };
    let mut nl = t.nl();
    assert!(nl.link().by_name("nope0").unwrap().is_none());
    assert!(nl.link().by_index(4242).unwrap().is_none());
    nl.link().del(4242).unwrap();
    nl.link().del_by_name("nope0").unwrap();
    let lo = nl.link().by_name("lo").unwrap().unwrap();
    nl.addr()
        .del(lo.index, "10.9.9.9/32".parse().unwrap())
        .unwrap();
    let mut r = netkit::RouteSpec::to("10.9.0.0/16".parse().unwrap());
    r.oif = Some(lo.index);
    nl.route().del(&r).unwrap();
    // Setting a missing link is an error, and says which link.
    let err = nl.link().set_up(4242).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().contains("#4242"), "{err}");
}

#[test]
fn sysctl_is_per_netns() {
    if !need_root() {
        return;
    }
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let links_before = root_links();
    let t = TestNs::new();
    let want = if root_before.trim() == "1" { "0" } else { "1" };
    sysctl::set_in(&t.ns, "net/ipv4/ip_forward", want).unwrap();
    let get_in = |key: &'static str| t.ns.run(|| sysctl::get(key)).unwrap();
    assert_eq!(get_in("net.ipv4.ip_forward").unwrap(), want);
    let (ok, out) = t.exec(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    assert!(ok);
    assert_eq!(out.trim(), want);
    // Per-device keys with dots in the name use the slash form.
    sysctl::set_in(&t.ns, "net/ipv4/conf/lo/rp_filter", "2").unwrap();
    assert_eq!(get_in("net/ipv4/conf/lo/rp_filter").unwrap(), "2");
    let err = get_in("net/ipv4/conf/nope0/rp_filter").unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        root_before
    );
    assert_eq!(root_links(), links_before);
}
