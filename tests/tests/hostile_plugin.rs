//! Path traversal and injection against the real `netboot-cni` binary
//! (issue 8), run inside node network namespaces in native mode (so the
//! real `nft` programs the node's firewall).
//!
//! Container IDs, ifnames, network names and the `dataDir` / `subnetFile` /
//! `logFile` / `ipam.dataDir` values are drawn from a table of hostile
//! strings. After every call the node must be exactly as before (links,
//! addresses, routes, iptables, nftables ruleset and every file under the
//! node's directory), no `/tmp/pwned` may appear (no shell ever ran), and a
//! live attachment beside the attempts must be untouched.
//!
//! NUL bytes cannot be put in an environment variable at all (execve takes
//! C strings), so they are covered in-process by `cni/tests/hostile_input.rs`.

use std::path::Path;

use netboot_tests::cni_node::CniNode;
use netboot_tests::native_support::NativeNode;
use netboot_tests::plugin::PluginCall;
use netboot_tests::plugin_support::{cid, err_code, err_text, merged, with_ports};
use netboot_tests::require_root;
use serde_json::{json, Value};

const PWNED: &str = "/tmp/pwned";

fn hostile() -> Vec<String> {
    let v: Vec<String> = [
        "../../etc",
        "..",
        ".",
        "a/b",
        "/etc/passwd",
        "/",
        "a\nb",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "x;touch /tmp/pwned",
        "x|touch /tmp/pwned",
        "x&&touch /tmp/pwned",
        "x\"y",
        "x'y",
        "x y",
        "-x",
        ".netboot",
        "x@eth0",
        "wé",
        "\u{202e}x",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v
}

/// Valid by libcni's rules, but longer than any file name: refused up
/// front with code 4 (DEL: nothing to do), never half-attached.
fn long() -> String {
    "a".repeat(5000)
}

fn assert_no_shell() {
    assert!(!Path::new(PWNED).exists(), "{PWNED} exists: a shell ran");
}

/// ADD and DEL with a hostile container ID: refused with 4 (also when empty),
/// and the node, files included, is exactly as before.
#[test]
fn hostile_container_ids_are_refused_and_change_nothing() {
    require_root();
    let _ = std::fs::remove_file(PWNED);
    let node = NativeNode::new("h8cid");
    let conf = with_ports(&node.conf("1.1.0"), 18080, 80);
    // A live attachment beside the attempts.
    let live = node.pod("live");
    let live_res = node.add(&live, &conf);
    let pod = node.pod("p");
    let baseline = node.snapshot();
    for id in hostile().into_iter().chain([String::new()]) {
        for command in ["ADD", "DEL", "CHECK"] {
            let call = PluginCall {
                container_id: id.clone(),
                ..node.call(command, &pod, &conf)
            };
            let out = node.run(&call);
            assert!(
                !out.success(),
                "{command} with container ID {id:?} succeeded"
            );
            // An empty ID counts as unset: "required env variables missing".
            assert_eq!(err_code(&out), 4, "{command} {id:?}: {}", out.stdout());
            assert!(
                node.snapshot() == baseline,
                "{command} {id:?} changed the node"
            );
            assert_no_shell();
        }
    }
    for command in ["ADD", "DEL", "CHECK"] {
        let call = PluginCall {
            container_id: long(),
            ..node.call(command, &pod, &conf)
        };
        let out = node.run(&call);
        if command == "DEL" {
            // Nothing can exist under it: DEL succeeds and does nothing.
            assert!(out.success(), "DEL with a 5000-byte ID: {}", out.stdout());
        } else {
            assert_eq!(
                err_code(&out),
                4,
                "{command} 5000-byte ID: {}",
                out.stdout()
            );
            assert!(err_text(&out).contains("at most 200"), "{}", out.stdout());
        }
        assert!(
            node.snapshot() == baseline,
            "{command} with a 5000-byte ID changed the node"
        );
    }
    node.check(&live, &conf, &live_res).expect_ok();
    node.del(&live, &conf);
    node.assert_clean(&[&cid(&live)]);
}

/// Hostile ifnames: the ones CNI forbids are refused with 4 and change
/// nothing; the ones it allows (`e$(x)`, "e;x": Linux accepts them as
/// names) are plain names. No shell runs, nft refuses them as rule comments
/// (so an ADD with port mappings rolls back completely), and DEL restores
/// the node.
#[test]
fn hostile_ifnames_never_reach_a_shell_or_the_firewall() {
    require_root();
    let _ = std::fs::remove_file(PWNED);
    let node = NativeNode::new("h8ifn");
    let plain = node.conf("1.1.0");
    let ported = with_ports(&plain, 18081, 80);
    let live = node.pod("live");
    let live_res = node.add(&live, &ported);
    let baseline = node.snapshot();
    let mut names = hostile();
    names.extend(
        [
            "e$(id)", "e`id`", "e;x", "e|x", "e\"x", "e'x", "e#x", "e{x}",
        ]
        .map(String::from),
    );
    for ifname in names {
        let pod = node.pod("i");
        for conf in [&plain, &ported] {
            let call = PluginCall {
                ifname: ifname.clone(),
                ..node.call("ADD", &pod, conf)
            };
            let out = node.run(&call);
            if out.success() {
                // A legal (if odd) name: the pod got exactly that device.
                assert!(pod.link_names().contains(&ifname), "{ifname:?}");
            } else {
                let code = err_code(&out);
                assert!(
                    code == 4 || code == 999 || code == 7,
                    "{ifname:?}: {}",
                    out.stdout()
                );
            }
            let del = PluginCall {
                ifname: ifname.clone(),
                ..node.call("DEL", &pod, conf)
            };
            let out = node.run(&del);
            if !out.success() {
                assert_eq!(err_code(&out), 4, "DEL {ifname:?}: {}", out.stdout());
            }
            assert!(
                node.snapshot() == baseline,
                "ADD+DEL with ifname {ifname:?} did not restore the node"
            );
            let rules = node.nft_json().to_string();
            assert!(
                !rules.contains("pwned") && !rules.contains("$(id)"),
                "{rules}"
            );
            assert_no_shell();
        }
    }
    node.check(&live, &ported, &live_res).expect_ok();
    node.del(&live, &ported);
    node.assert_clean(&[&cid(&live)]);
}

/// Hostile network names and path values in the config: refused with 7
/// before any side effect, naming the key.
#[test]
fn hostile_config_names_and_paths_are_refused_and_write_nothing() {
    require_root();
    let _ = std::fs::remove_file(PWNED);
    let node = NativeNode::new("h8cfg");
    let conf = with_ports(&node.conf("1.1.0"), 18082, 80);
    let live = node.pod("live");
    let live_res = node.add(&live, &conf);
    let pod = node.pod("p");
    let baseline = node.snapshot();
    let dir = node.dir().to_string_lossy().into_owned();
    let mut cases: Vec<(Value, &str)> = Vec::new();
    for v in hostile() {
        cases.push((json!({ "name": v }), "network name"));
    }
    for key in ["dataDir", "subnetFile", "logFile"] {
        for v in [
            "../../etc".to_string(),
            "relative/dir".to_string(),
            format!("{dir}/../../etc"),
            format!("{dir}/x\ny"),
            "$(touch /tmp/pwned)".to_string(),
        ] {
            cases.push((json!({ key: v }), key));
        }
    }
    for v in ["../../tmp", "tmp", "/var/lib/cni/../../etc", "/x\n"] {
        cases.push((json!({"ipam": {"dataDir": v}}), "ipam.dataDir"));
    }
    for (extra, key) in cases {
        let bad = merged(&conf, extra.clone());
        for command in ["ADD", "DEL", "CHECK"] {
            let out = node.run(&node.call(command, &pod, &bad));
            assert!(!out.success(), "{command} with {extra} succeeded");
            assert_eq!(err_code(&out), 7, "{command} {extra}: {}", out.stdout());
            assert!(out.stdout().contains(key), "{extra}: {}", out.stdout());
            assert!(
                node.snapshot() == baseline,
                "{command} {extra} changed the node"
            );
            assert_no_shell();
        }
    }
    node.check(&live, &conf, &live_res).expect_ok();
    node.del(&live, &conf);
    node.assert_clean(&[&cid(&live)]);
}

/// nftables only ever carries validated identifiers: with the oddest legal
/// container ID and network name the ruleset holds exactly the expected
/// rules and hostPort map elements (owned by network/container/ifname),
/// in netboot's and portmap's own tables only.
#[test]
fn nft_rules_carry_only_validated_identifiers() {
    require_root();
    let node = NativeNode::new("h8nft");
    let before: Vec<String> = tables(&node.nft_json());
    let conf = merged(
        &with_ports(&node.conf("1.1.0"), 18083, 80),
        json!({"name": "n.e-t_1"}),
    );
    let pod = node.pod("p");
    let odd = "A.b-c_9.";
    let call = PluginCall {
        container_id: odd.into(),
        ..node.call("ADD", &pod, &conf)
    };
    node.run(&call).expect_ok();
    let after = tables(&node.nft_json());
    for t in &after {
        assert!(
            before.contains(t)
                || ["ip cni_hostport", "ip6 cni_hostport", "inet netboot"].contains(&t.as_str()),
            "unexpected table {t} (before: {before:?})"
        );
    }
    let mentions = node.nft_mentioning(odd);
    assert!(
        mentions
            .iter()
            .any(|m| m.contains(&format!("n.e-t_1/{odd}/eth0"))),
        "no element owned by {odd}: {mentions:#?}"
    );
    let del = PluginCall {
        container_id: odd.into(),
        ..node.call("DEL", &pod, &conf)
    };
    node.run(&del).expect_ok();
    assert_eq!(node.nft_mentioning(odd), Vec::<String>::new());
}

fn tables(nft: &Value) -> Vec<String> {
    nft["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("table"))
        .map(|t| {
            format!(
                "{} {}",
                t["family"].as_str().unwrap_or("?"),
                t["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}
