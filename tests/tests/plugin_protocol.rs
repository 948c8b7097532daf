//! netboot-cni's side of the CNI protocol, against the real binary inside
//! node namespaces: VERSION, every command at every spec version (result
//! shapes, version gates), STATUS, and a table of bad inputs that must be
//! refused with the right code while changing nothing on the node.

use netboot_tests::mode_suite::{
    assert_refused, round_trip_at_every_version, set_conf, shared_bad_inputs, BadInput,
};
use netboot_tests::plugin_support::{
    err_code, err_text, merged, with_prev, CniPathDir, PluginNode,
};
use netboot_tests::{require_root, PluginCall};
use serde_json::{json, Value};

const ALL_VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

#[test]
fn version_lists_every_spec_version() {
    require_root();
    let node = PluginNode::new("ver");
    // podman: CNI_NETNS=dummy, no config at all.
    let call = PluginCall {
        netns: Some("dummy".into()),
        ..node.bare_call("VERSION", &Value::Null)
    };
    let call = PluginCall {
        stdin: String::new(),
        ..call
    };
    let out = node.run(&call).expect_ok();
    assert_eq!(
        out,
        json!({"cniVersion": "1.1.0", "supportedVersions": ALL_VERSIONS})
    );
    // With a config of any version, even one it does not speak.
    let out = node
        .run(&node.bare_call("VERSION", &json!({"cniVersion": "9.9.9"})))
        .expect_ok();
    assert_eq!(out["supportedVersions"], json!(ALL_VERSIONS));
}

#[test]
fn add_check_del_round_trip_at_every_version() {
    require_root();
    let node = PluginNode::new("rt");
    round_trip_at_every_version(
        &node,
        |_, _, _| {},
        |v, pod, conf, res| {
            // CHECK must look at the pod for real. The delegate (bridge)
            // CHECK runs first and reports with its own code (999), so only
            // failure and the culprit are asserted here; code 100 is
            // asserted where only netboot can see the damage (DNAT rules).
            pod.exec(&["ip", "route", "del", &node.env.network])
                .expect_ok();
            let broken = node.run(&node.call("CHECK", pod, &with_prev(conf, res)));
            assert!(!broken.success(), "{v}: CHECK missed a deleted route");
            pod.exec(&["ip", "link", "set", "eth0", "down"]).expect_ok();
            let broken = node.run(&node.call("CHECK", pod, &with_prev(conf, res)));
            assert!(!broken.success(), "{v}: CHECK missed eth0 down");
        },
    );
}

#[test]
fn check_without_prev_result_or_attachment_fails() {
    require_root();
    let node = PluginNode::new("chk");
    let pod = node.pod("chk");
    let conf = node.conf("1.0.0");
    let out = node.run(&node.call("CHECK", &pod, &conf));
    assert_eq!(err_code(&out), 7, "{}", out.output);
    assert!(err_text(&out).contains("prevResult"), "{}", out.output);
    // A prevResult for an attachment netboot never made.
    let fake = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": [], "routes": []});
    let out = node.run(&node.call("CHECK", &pod, &with_prev(&conf, &fake)));
    assert_eq!(err_code(&out), 100, "{}", out.output);
    assert!(err_text(&out).contains("not attached"), "{}", out.output);
}

#[test]
fn status_ready_and_not_ready() {
    require_root();
    let node = PluginNode::new("stat");
    let conf = node.conf("1.1.0");
    node.run(&node.bare_call("STATUS", &conf)).expect_ok();
    let auto = merged(&conf, json!({"mode": "auto"}));
    node.run(&node.bare_call("STATUS", &auto)).expect_ok();

    // No binaries on CNI_PATH: bridge mode is not ready and says what is
    // missing; auto falls back to native mode, which needs none.
    let empty = CniPathDir::new();
    let on_empty = |c: &Value| {
        node.run(&PluginCall {
            path: empty.cni_path(),
            ..node.bare_call("STATUS", c)
        })
    };
    let out = on_empty(&conf);
    assert_eq!(err_code(&out), 50, "{}", out.output);
    assert!(err_text(&out).contains("bridge"), "{}", out.output);
    on_empty(&auto).expect_ok();
    on_empty(&merged(&conf, json!({"mode": "native"}))).expect_ok();
    // Only bridge, no host-local.
    let half = CniPathDir::new();
    half.reference(&["bridge"]);
    let out = node.run(&PluginCall {
        path: half.cni_path(),
        ..node.bare_call("STATUS", &conf)
    });
    assert_eq!(err_code(&out), 50, "{}", out.output);
    assert!(err_text(&out).contains("host-local"), "{}", out.output);

    // subnet.env missing: the node agent is not up.
    std::fs::remove_file(&node.subnet_file).unwrap();
    let out = node.run(&node.bare_call("STATUS", &conf));
    assert_eq!(err_code(&out), 50, "{}", out.output);
    assert!(err_text(&out).contains("subnet.env"), "{}", out.output);
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    require_root();
    let node = PluginNode::new("bad");
    let pod = node.pod("bad");
    let empty = CniPathDir::new();
    let escape = node.data_dir.join("../../etc");
    let escape_existed = escape.exists();
    // No CNI_COMMAND at all is no error: the plugin then prints its name
    // and versions as the reference plugins do (cli_habits.rs).
    let mut cases: Vec<BadInput<PluginNode>> = shared_bad_inputs();
    cases.extend::<Vec<BadInput<PluginNode>>>(vec![
        (
            "unknown command",
            "ADD",
            Box::new(|c, _| c.command = "FROB".into()),
            4,
            vec!["FROB"],
        ),
        (
            "no CNI_CONTAINERID",
            "ADD",
            Box::new(|c, _| c.container_id.clear()),
            4,
            vec!["CNI_CONTAINERID"],
        ),
        (
            "no CNI_IFNAME",
            "ADD",
            Box::new(|c, _| c.ifname.clear()),
            4,
            vec!["CNI_IFNAME"],
        ),
        (
            "no CNI_PATH",
            "ADD",
            Box::new(|c, _| c.path.clear()),
            4,
            vec!["CNI_PATH"],
        ),
        (
            "escaping container id on DEL",
            "DEL",
            Box::new(|c, _| c.container_id = "../../etc".into()),
            4,
            vec!["../../etc"],
        ),
        (
            "ifname with /",
            "ADD",
            Box::new(|c, _| c.ifname = "et/h0".into()),
            4,
            vec!["et/h0"],
        ),
        (
            "ifname .",
            "ADD",
            Box::new(|c, _| c.ifname = ".".into()),
            4,
            vec!["ifname"],
        ),
        (
            "invalid mode",
            "ADD",
            set_conf(|n: &PluginNode| merged(&n.conf("1.0.0"), json!({"mode": "turbo"}))),
            7,
            vec!["mode", "turbo"],
        ),
        (
            "relative dataDir",
            "ADD",
            set_conf(|n: &PluginNode| merged(&n.conf("1.0.0"), json!({"dataDir": "flannel"}))),
            7,
            vec!["dataDir"],
        ),
        // Explicit bridge mode never falls back to native (auto without
        // plugins attaches natively: plugin_native.rs).
        (
            "no plugins, explicit bridge mode",
            "ADD",
            Box::new(move |c, _| c.path = empty.cni_path()),
            50,
            vec!["failed to find plugin \"bridge\""],
        ),
        (
            "delegate.name",
            "ADD",
            set_conf(|n: &PluginNode| merged(&n.conf("1.0.0"), json!({"delegate": {"name": "x"}}))),
            7,
            vec!["delegate.name"],
        ),
    ]);
    assert_refused(
        &node,
        &pod,
        &node.conf("1.0.0"),
        cases,
        |_| {},
        |what, ()| {
            assert!(pod.link_names().iter().all(|l| l != "eth0"), "{what}");
            assert_eq!(
                escape.exists(),
                escape_existed,
                "{what} wrote outside dataDir"
            );
        },
    );
}
