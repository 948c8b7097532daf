//! `netboot status` with leases in flanneld's exact JSON, TLS and auth
//! etcd, and an unreachable etcd.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netboot_tests::etcd::{netboot, sv, EtcdServer};
use serde_json::Value;

const LEASE_A: &str = r#"{"PublicIP":"192.168.50.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:1c:2e:00:00:01"}}"#;
const LEASE_B: &str = r#"{"PublicIP":"192.168.50.12","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:1c:2e:00:00:02"}}"#;

fn with_etcd(etcd: &EtcdServer, args: &[&str]) -> Vec<String> {
    let mut a = sv(args);
    a.extend(etcd.netboot_args());
    a
}

/// `--cni-conf-dir` and `--cni-bin-dir` under `dir` (`net.d`, `bin`).
fn cni_dirs(dir: &std::path::Path) -> [String; 2] {
    [
        format!("--cni-conf-dir={}", dir.join("net.d").display()),
        format!("--cni-bin-dir={}", dir.join("bin").display()),
    ]
}

#[test]
fn status_table_and_json_show_flannel_leases() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    etcd.put(
        "/coreos.com/network/config",
        r#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}"#,
    );
    etcd.put("/coreos.com/network/subnets/10.244.3.0-24", LEASE_A);
    etcd.put_with_lease("/coreos.com/network/subnets/10.244.4.0-24", LEASE_B, 3600);
    let env = dir.path().join("subnet.env");
    std::fs::write(&env, "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.4.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n").unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(bin.join("portmap"), "").unwrap();
    let common = [
        format!("--subnet-file={}", env.display()),
        format!("--cni-bin-dir={}", bin.display()),
    ];

    let mut a = with_etcd(&etcd, &["status"]);
    a.extend(common.iter().cloned());
    let out = netboot(&a).expect_ok();
    let s = &out.stdout;
    assert!(s.contains("SUBNET"), "{s}");
    let row_a = s.lines().find(|l| l.contains("10.244.3.0/24")).expect(s);
    assert!(
        row_a.contains("192.168.50.11")
            && row_a.contains("6a:1c:2e:00:00:01")
            && row_a.contains("reserved (no TTL)"),
        "{row_a}"
    );
    let row_b = s.lines().find(|l| l.contains("10.244.4.0/24")).expect(s);
    assert!(
        row_b.contains("192.168.50.12")
            && row_b.contains("vxlan")
            && (row_b.contains("0h59m") || row_b.contains("1h00m")),
        "{row_b}"
    );
    assert!(s.contains("FLANNEL_SUBNET=10.244.4.1/24"), "{s}");
    assert!(
        s.contains("lease: /coreos.com/network/subnets/10.244.4.0-24"),
        "{s}"
    );
    assert!(s.contains("flannel.1"), "{s}");

    a.push("--json".into());
    let out = netboot(&a).expect_ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let leases = v["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(leases[0]["subnet"], "10.244.3.0/24");
    assert_eq!(leases[0]["etcdLease"], Value::Null);
    assert_eq!(leases[0]["expiresIn"], "reserved (no TTL)");
    assert_eq!(leases[0]["reserved"], true);
    assert_eq!(leases[1]["vtepMAC"], "6a:1c:2e:00:00:02");
    let ttl = leases[1]["ttlSeconds"].as_i64().unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    assert_eq!(
        v["config"]["effective"]["Network"]["value"],
        "10.244.0.0/16"
    );
    assert_eq!(v["node"]["subnetEnv"]["FLANNEL_MTU"], "1450");
    let plugins = v["node"]["plugins"].as_array().unwrap();
    let portmap = plugins.iter().find(|p| p["name"] == "portmap").unwrap();
    assert_eq!(portmap["path"], bin.join("portmap").display().to_string());
    let netboot_cni = plugins.iter().find(|p| p["name"] == "netboot-cni").unwrap();
    assert_eq!(netboot_cni["path"], Value::Null);
}

#[test]
fn status_shows_both_families_backends_and_reservations() {
    let etcd = EtcdServer::start();
    let dir = tempfile::tempdir().unwrap();
    etcd.put(
        "/coreos.com/network/config",
        r#"{"Network":"10.244.0.0/16","EnableIPv6":true,"IPv6Network":"fd42:10::/56","Backend":{"Type":"vxlan","DirectRouting":true,"GBP":true,"MTU":9000,"Port":4789}}"#,
    );
    // Dual stack vxlan with a VtepMAC per family; IPv6-only host-gw,
    // reserved (no TTL).
    etcd.put_with_lease(
        "/coreos.com/network/subnets/10.244.5.0-24&fd42:10:0:5::-64",
        r#"{"PublicIP":"192.168.50.15","PublicIPv6":"fd00:50::15","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"6a:1c:2e:00:00:05"},"BackendV6Data":{"VNI":1,"VtepMAC":"6a:1c:2e:00:06:05"}}"#,
        3600,
    );
    etcd.put(
        "/coreos.com/network/subnets/0.0.0.0-0&fd42:10:0:6::-64",
        r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:50::16","BackendType":"host-gw"}"#,
    );
    let env = dir.path().join("subnet.env");
    std::fs::write(
        &env,
        "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.5.1/24\n\
         FLANNEL_IPV6_NETWORK=fd42:10::/56\nFLANNEL_IPV6_SUBNET=fd42:10:0:5::1/64\n\
         FLANNEL_MTU=8950\nFLANNEL_IPMASQ=false\n",
    )
    .unwrap();
    let mut a = with_etcd(&etcd, &["status"]);
    a.push(format!("--subnet-file={}", env.display()));
    a.push(format!("--cni-bin-dir={}", dir.path().display()));
    let s = netboot(&a).expect_ok().stdout;
    assert!(
        s.contains("IPv4 10.244.0.0/16 + IPv6 fd42:10::/56, backend vxlan (VNI 1, port 4789, DirectRouting, GBP, MTU 9000)"),
        "{s}"
    );
    assert!(
        s.contains("IPV6 SUBNET") && s.contains("VTEP MAC (IPV6)"),
        "{s}"
    );
    let dual = s.lines().find(|l| l.contains("10.244.5.0/24")).expect(&s);
    for want in [
        "fd42:10:0:5::/64",
        "192.168.50.15",
        "fd00:50::15",
        "vxlan",
        "6a:1c:2e:00:00:05",
        "6a:1c:2e:00:06:05",
        "0h59m",
    ] {
        assert!(dual.contains(want), "{want} missing: {dual}");
    }
    let v6 = s
        .lines()
        .find(|l| l.contains("fd42:10:0:6::/64"))
        .expect(&s);
    for want in ["fd00:50::16", "host-gw", "reserved (no TTL)"] {
        assert!(v6.contains(want), "{want} missing: {v6}");
    }
    // This node, per family.
    assert!(
        s.contains("IPv4: FLANNEL_SUBNET 10.244.5.1/24 of network 10.244.0.0/16"),
        "{s}"
    );
    assert!(
        s.contains("IPv6: FLANNEL_IPV6_SUBNET fd42:10:0:5::1/64 of network fd42:10::/56"),
        "{s}"
    );
    assert!(s.contains("flannel-v6.1"), "{s}");

    a.push("--json".into());
    let v: Value = serde_json::from_str(&netboot(&a).expect_ok().stdout).unwrap();
    assert_eq!(v["backend"], "vxlan");
    assert_eq!(v["families"], serde_json::json!(["IPv4", "IPv6"]));
    // etcd lists keys in byte order: 0.0.0.0-0&… first.
    let l = &v["leases"][0];
    assert_eq!(l["subnet"], Value::Null);
    assert_eq!(l["ipv6Subnet"], "fd42:10:0:6::/64");
    assert_eq!(l["publicIP"], Value::Null);
    assert_eq!(l["publicIPv6"], "fd00:50::16");
    assert_eq!(l["reserved"], true);
    assert_eq!(v["leases"][1]["vtepMACv6"], "6a:1c:2e:00:06:05");
    let fams = v["node"]["families"].as_array().unwrap();
    assert_eq!(fams[1]["family"], "IPv6");
    assert_eq!(fams[1]["subnet"], "fd42:10:0:5::1/64");
    assert!(fams[1]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["check"] == "vtep-v6"));
    assert_eq!(
        v["node"]["lease"],
        "/coreos.com/network/subnets/10.244.5.0-24&fd42:10:0:5::-64"
    );
}

#[test]
fn status_without_config_says_so() {
    let etcd = EtcdServer::start();
    let out = netboot(&with_etcd(&etcd, &["status"]));
    assert!(!out.success());
    assert!(
        out.stderr
            .contains("no network config at /coreos.com/network/config"),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_etcd_with_client_certs() {
    let etcd = EtcdServer::start_tls();
    assert!(etcd.url.starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let mut a = with_etcd(&etcd, &["init"]);
    a.extend(cni_dirs(dir.path()));
    netboot(&a).expect_ok();
    assert!(etcd
        .get("/coreos.com/network/config")
        .unwrap()
        .contains("10.2.0.0/16"));
    netboot(&with_etcd(&etcd, &["config"])).expect_ok();
    // Without the client certificate the server refuses: a clear error, bounded.
    let t = etcd.tls.as_ref().unwrap();
    let out = netboot(&sv(&[
        "config",
        &format!("--etcd={}", etcd.url),
        &format!("--cacert={}", t.ca.display()),
        "--etcd-timeout=3",
    ]));
    assert!(!out.success());
    assert!(out.stderr.contains(&etcd.url), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
}

/// `netboot config` against `etcd` with the client certificate but no
/// `--cacert`, in an environment where the machine's trusted roots are
/// whatever `env` points at.
fn config_trusting(etcd: &EtcdServer, env: &[(&str, &Path)]) -> netboot_tests::CmdOutput {
    let t = etcd.tls.as_ref().unwrap();
    let mut cmd = Command::new(netboot_tests::bin_path("netboot"));
    cmd.args([
        "config".to_string(),
        format!("--etcd={}", etcd.url),
        format!("--cert={}", t.cert.display()),
        format!("--key={}", t.key.display()),
        "--etcd-timeout=3".to_string(),
    ])
    .env_remove("SSL_CERT_FILE")
    .env_remove("SSL_CERT_DIR")
    .envs(env.iter().copied());
    netboot_tests::run(cmd, None, Duration::from_secs(60))
}

#[test]
fn tls_etcd_without_cacert_is_checked_against_the_system_roots() {
    let etcd = EtcdServer::start_tls();
    etcd.put(
        "/coreos.com/network/config",
        r#"{"Network":"10.9.0.0/16","Backend":{"Type":"vxlan"}}"#,
    );
    let t = etcd.tls.as_ref().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    std::fs::copy(&t.ca, certs.join("netboot-test-ca.pem")).unwrap();
    let none = dir.path().join("none");

    // The test CA as the machine's bundle, or in its certificate directory.
    for env in [
        vec![("SSL_CERT_FILE", t.ca.as_path())],
        vec![
            ("SSL_CERT_FILE", none.as_path()),
            ("SSL_CERT_DIR", certs.as_path()),
        ],
    ] {
        let out = config_trusting(&etcd, &env);
        assert!(
            out.success() && out.stdout.contains("10.9.0.0/16"),
            "{env:?}: {out}"
        );
    }
    // Roots without the test CA (only the server's own certificate, which
    // is no issuer): the server is refused, so the roots are really checked.
    let other = dir.path().join("server.crt");
    std::fs::copy(etcd.dir.path().join("server.crt"), &other).unwrap();
    let out = config_trusting(&etcd, &[("SSL_CERT_FILE", &other)]);
    assert!(!out.success(), "{out}");
    assert!(out.stderr.to_lowercase().contains("certificate"), "{out}");
    // No roots anywhere: said at once, naming the way out.
    let out = config_trusting(&etcd, &[("SSL_CERT_FILE", &none), ("SSL_CERT_DIR", &none)]);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr.contains("trusted root") && out.stderr.contains("--cacert"),
        "{out}"
    );
}

#[test]
fn auth_etcd_with_user_and_password_file() {
    let mut etcd = EtcdServer::start();
    etcd.enable_auth(
        "rootpw-test",
        "flannel",
        "s3cret-test",
        "/coreos.com/network/",
    );
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, "s3cret-test\n").unwrap();
    let mut a = with_etcd(&etcd, &["init", "--user=flannel"]);
    a.push(format!("--password-file={}", pwfile.display()));
    a.extend(cni_dirs(dir.path()));
    let out = netboot(&a).expect_ok();
    assert!(
        out.stdout.contains("Wrote the network config"),
        "{}",
        out.stdout
    );
    assert!(etcd.get("/coreos.com/network/config").is_some());

    // No credentials, wrong password: refused at once, password never shown.
    let out = netboot(&with_etcd(&etcd, &["config"]));
    assert!(
        !out.success() && out.stderr.contains("rejected the credentials"),
        "{}",
        out.stderr
    );
    std::fs::write(&pwfile, "wrong-password\n").unwrap();
    let mut a = with_etcd(&etcd, &["config", "--user=flannel"]);
    a.push(format!("--password-file={}", pwfile.display()));
    let out = netboot(&a);
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr
            .contains("rejected the credentials (user \"flannel\")"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("wrong-password"), "{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(5),
        "auth errors must not be retried: {:?}",
        out.elapsed
    );
}

#[test]
fn stopped_etcd_fails_clearly_within_the_timeout() {
    let mut etcd = EtcdServer::start();
    let url = etcd.url.clone();
    etcd.stop();
    let dir = tempfile::tempdir().unwrap();
    let out = netboot(&sv(&[
        "init",
        &format!("--etcd={url}"),
        "--etcd-timeout=5",
        &format!("--cni-conf-dir={}", dir.path().join("net.d").display()),
    ]));
    assert!(!out.success());
    assert!(
        out.stderr.contains(&format!("cannot reach etcd at {url}")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    // A bound on hanging, not a performance assertion.
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    assert!(!dir.path().join("net.d").exists());
}
