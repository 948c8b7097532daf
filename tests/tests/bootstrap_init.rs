//! `netboot init`, `config` and `conflist` against a real etcd v3.

use std::path::Path;

use netboot_tests::etcd::{netboot, sv, EtcdServer};
use netboot_tests::CmdOutput;
use serde_json::Value;

const KEY: &str = "/coreos.com/network/config";

/// `netboot init` with the server's flags, a temp conf/bin dir and `extra`.
fn init(etcd: &EtcdServer, dir: &Path, extra: &[&str]) -> CmdOutput {
    let mut a = sv(&["init"]);
    a.extend(etcd.netboot_args());
    a.push(format!("--cni-conf-dir={}", dir.join("net.d").display()));
    a.push(format!("--cni-bin-dir={}", dir.join("bin").display()));
    a.extend(sv(extra));
    netboot(&a)
}

fn stored(etcd: &EtcdServer) -> Value {
    serde_json::from_str(&etcd.get(KEY).expect("config stored")).unwrap()
}

#[test]
fn init_on_empty_store_then_same_then_different_then_force() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = init(&etcd, dir.path(), &[]).expect_ok();
    assert!(
        out.stdout.contains("Wrote the network config"),
        "{}",
        out.stdout
    );
    assert_eq!(
        etcd.get(KEY).unwrap(),
        r#"{"Network":"10.2.0.0/16","Backend":{"Type":"vxlan"}}"#
    );
    let conflist = std::fs::read_to_string(dir.path().join("net.d/10-flannel.conflist")).unwrap();
    let v: Value = serde_json::from_str(&conflist).unwrap();
    assert_eq!(v["plugins"][0]["type"], "netboot-cni");
    assert_eq!(v["plugins"][0]["mode"], "auto");

    // Same config, spelled differently (defaults explicit): a no-op.
    let out = init(&etcd, dir.path(), &["--subnet-len=24", "--vni=1"]).expect_ok();
    assert!(out.stdout.contains("already the same"), "{}", out.stdout);
    assert_eq!(stored(&etcd)["Network"], "10.2.0.0/16");
    assert!(
        stored(&etcd)["Backend"].get("VNI").is_none(),
        "no-op must not rewrite"
    );

    let out = init(&etcd, dir.path(), &["--network=10.5.0.0/16", "--vni=7"]);
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("already holds a different network config"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Network: 10.2.0.0/16 -> 10.5.0.0/16"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Backend.VNI: 1 -> 7"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(stored(&etcd)["Network"], "10.2.0.0/16");

    let out = init(
        &etcd,
        dir.path(),
        &["--network=10.5.0.0/16", "--vni=7", "--force"],
    )
    .expect_ok();
    assert!(out.stdout.contains("Replaced"), "{}", out.stdout);
    assert_eq!(stored(&etcd)["Network"], "10.5.0.0/16");
    assert_eq!(stored(&etcd)["Backend"]["VNI"], 7);
}

#[test]
fn concurrent_inits_store_exactly_one_config() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let results: Vec<(String, CmdOutput)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let etcd = &etcd;
                let d = dir.path().join(format!("n{i}"));
                s.spawn(move || {
                    // Two nodes per config: the pairs must agree.
                    let net = format!("10.{}.0.0/16", 10 + i / 2);
                    let out = init(etcd, &d, &[&format!("--network={net}")]);
                    (net, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winner = stored(&etcd)["Network"].as_str().unwrap().to_string();
    let mut wrote = 0;
    for (net, out) in &results {
        if out.stdout.contains("Wrote the network config") {
            wrote += 1;
            assert_eq!(net, &winner);
        } else if net == &winner {
            assert!(
                out.success() && out.stdout.contains("already the same"),
                "{out:?}"
            );
        } else {
            assert!(
                !out.success() && out.stderr.contains("different network config"),
                "{out:?}"
            );
        }
    }
    assert_eq!(wrote, 1, "{results:?}");
}

#[test]
fn every_validation_error_is_named() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let table: &[(&[&str], &str)] = &[
        (
            &["--network=10.2.0.0/33"],
            "--network \"10.2.0.0/33\" is not a valid IPv4 CIDR",
        ),
        (
            &["--network=10.2.1.0/16"],
            "has host bits set: the network address is 10.2.0.0/16",
        ),
        (
            &["--network=10.2.0.0/29"],
            "Network 10.2.0.0/29 is too small",
        ),
        (
            &["--subnet-len=16"],
            "SubnetLen 16 does not fit Network 10.2.0.0/16: it must be at least 18",
        ),
        (&["--subnet-len=31"], "SubnetLen 31 is too long"),
        (
            &["--subnet-min=10.3.1.0"],
            "SubnetMin 10.3.1.0 is outside Network 10.2.0.0/16",
        ),
        (
            &["--subnet-max=10.2.9.5"],
            "SubnetMax 10.2.9.5 is not on a subnet boundary",
        ),
        (
            &["--subnet-min=10.2.9.0", "--subnet-max=10.2.3.0"],
            "SubnetMin 10.2.9.0 is above SubnetMax 10.2.3.0",
        ),
        (
            &["--subnet-min=nope"],
            "--subnet-min \"nope\" is not a valid IPv4 address",
        ),
        (&["--backend=udp"], "Backend type \"udp\" is not supported"),
        (
            &["--backend=host-gw", "--vni=3"],
            "--vni and --port only apply to the vxlan backend",
        ),
        (&["--vni=16777216"], "VNI 16777216 is out of range"),
        (&["--port=70000"], "Port 70000 is out of range"),
        (
            &["--ipv6-network=fd00::/125"],
            "IPv6Network fd00::/125 is too small",
        ),
        (
            &["--ipv6-network=fd00::/48", "--ipv6-subnet-len=48"],
            "IPv6SubnetLen 48 does not fit",
        ),
        (&["--no-ipv4"], "--no-ipv4 needs --ipv6-network"),
        (
            &["--cni-version=9.9.9"],
            "--cni-version \"9.9.9\" is not a CNI spec version",
        ),
    ];
    for (flags, want) in table {
        let out = init(&etcd, dir.path(), flags);
        assert!(!out.success(), "{flags:?} was accepted");
        assert!(
            out.stderr.contains(want),
            "{flags:?}: {} lacks {want:?}",
            out.stderr
        );
        assert_eq!(etcd.get(KEY), None, "{flags:?} wrote to etcd");
    }
    assert!(
        !dir.path().join("net.d").exists(),
        "a refused init wrote the conflist"
    );
}

#[test]
fn configs_with_odd_key_case_read_like_flannel() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = |etcd: &EtcdServer| {
        let mut a = sv(&["config", "--json"]);
        a.extend(etcd.netboot_args());
        let out = netboot(&a).expect_ok();
        serde_json::from_str::<Value>(&out.stdout).unwrap()
    };
    // The seed notes' example.
    etcd.put(KEY, r#"{"NetWork":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"vxlan"}}"#);
    let c = config(&etcd);
    assert_eq!(c["normalized"]["Network"], "10.2.0.0/16");
    assert_eq!(c["effective"]["SubnetMax"]["value"], "10.2.20.0");
    assert_eq!(c["effective"]["SubnetLen"]["default"], true);
    // Re-init with the same meaning is a no-op.
    let out = init(
        &etcd,
        dir.path(),
        &["--subnet-min=10.2.1.0", "--subnet-max=10.2.20.0"],
    )
    .expect_ok();
    assert!(out.stdout.contains("already the same"), "{}", out.stdout);

    etcd.put(
        KEY,
        r#"{"network":"10.7.0.0/16","SUBNETLEN":26,"backend":{"type":"host-gw"}}"#,
    );
    let c = config(&etcd);
    assert_eq!(
        c["normalized"],
        serde_json::json!({"Network":"10.7.0.0/16","SubnetLen":26,"Backend":{"Type":"host-gw"}})
    );
    assert_eq!(c["effective"]["SubnetMin"]["value"], "10.7.0.64");

    // Keys differing only in case: the last one wins, as in Go.
    etcd.put(
        KEY,
        r#"{"Network":"10.8.0.0/16","network":"10.9.0.0/16","Backend":{"Type":"vxlan"}}"#,
    );
    assert_eq!(config(&etcd)["normalized"]["Network"], "10.9.0.0/16");

    // No Backend: flanneld would use udp; config reports it and fails.
    etcd.put(KEY, r#"{"Network":"10.8.0.0/16"}"#);
    let mut a = sv(&["config"]);
    a.extend(etcd.netboot_args());
    let out = netboot(&a);
    assert!(
        !out.success() && out.stdout.contains("Backend is missing"),
        "{out:?}"
    );
}

#[test]
fn dry_run_writes_nothing() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = init(&etcd, dir.path(), &["--dry-run"]).expect_ok();
    assert!(
        out.stdout.contains("Would write the network config"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("nothing was written"), "{}", out.stdout);
    assert_eq!(etcd.get(KEY), None);
    assert!(!dir.path().join("net.d").exists());
    assert!(!dir.path().join("bin").exists());
    // A differing config with --force --dry-run: still nothing.
    init(&etcd, dir.path(), &[]).expect_ok();
    let before = etcd.get(KEY);
    let out = init(
        &etcd,
        dir.path(),
        &["--network=10.9.0.0/16", "--force", "--dry-run"],
    )
    .expect_ok();
    assert!(out.stdout.contains("Would replace it"), "{}", out.stdout);
    assert_eq!(etcd.get(KEY), before);
}

#[test]
fn conflist_per_mode_and_atomic_replacement() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    let netd = dir.path().join("net.d");
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(netd.join("10-flannel.conflist"), "old contents").unwrap();
    init(&etcd, dir.path(), &["--upstream"]).expect_ok();
    let text = std::fs::read_to_string(netd.join("10-flannel.conflist")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["cniVersion"], "0.3.1");
    assert_eq!(v["plugins"][0]["type"], "flannel");
    assert_eq!(v["plugins"][1]["type"], "portmap");
    assert_eq!(v["plugins"][1]["capabilities"]["portMappings"], true);
    init(&etcd, dir.path(), &["--cni-version=1.1.0"]).expect_ok();
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(netd.join("10-flannel.conflist")).unwrap())
            .unwrap();
    assert_eq!(v["cniVersion"], "1.1.0");
    assert_eq!(v["plugins"][0]["type"], "netboot-cni");
    assert_eq!(v["plugins"].as_array().unwrap().len(), 1);
    let names: Vec<String> = std::fs::read_dir(&netd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["10-flannel.conflist".to_string()],
        "temp files left behind"
    );

    // `netboot conflist` prints exactly what init wrote.
    let out = netboot(&sv(&["conflist", "--cni-version=1.1.0"])).expect_ok();
    assert_eq!(
        out.stdout,
        std::fs::read_to_string(netd.join("10-flannel.conflist")).unwrap()
    );
    let out = netboot(&sv(&["conflist", "--upstream"])).expect_ok();
    let shipped: Value =
        serde_json::from_str(include_str!("../../conf/10-flannel-upstream.conflist")).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), shipped);
}
