//! netboot-cni in `flannel` mode.
//!
//! The `real_flannel_*` tests run the real upstream flannel CNI plugin
//! (flannel-io/cni-plugin v1.9.1, `upstream::flannel_plugin`) delegating
//! to the reference bridge + host-local: every CNI version, STATUS and GC,
//! a failed ADD rolled back. The crash and truncation trials and
//! `handover_flannel.rs` use the real plugin too.
//!
//! The other tests use a *recorder* in flannel's place, for logic checks
//! the real plugin cannot serve: it records exactly how netboot-cni
//! invoked it (argv, environment, stdin, byte for byte) and answers with a
//! canned result or error (an arbitrary code such as 42, a failing
//! STATUS, garbage), which the real plugin cannot be made to produce. It
//! proves the delegation protocol only, never that flannel mode works.

use std::fs;
use std::path::Path;

use netboot_tests::crash_support::{Mode, ModeNode};
use netboot_tests::plugin_support::{
    assert_result_shape, cid, err_code, err_text, merged, recorded_calls, recording_script,
    with_prev, CniPathDir, PluginNode, RecordedCall, NET,
};
use netboot_tests::{require_root, Netns, PluginCall};
use serde_json::{json, Value};
use tempfile::TempDir;

const RESULT: &str = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"cni0","mac":"0a:58:0a:02:01:01"},{"name":"eth0","mac":"0a:58:0a:02:01:05","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.2.1.5/24","gateway":"10.2.1.1","interface":1}],"routes":[{"dst":"10.2.0.0/16"}]}"#;

/// A node with a CNI_PATH holding the recording `flannel` (and, when
/// `with_bridge`, the reference bridge + host-local).
struct Fixture {
    node: PluginNode,
    path: CniPathDir,
    log: TempDir,
}

impl Fixture {
    fn new(tag: &str, with_bridge: bool) -> Self {
        let node = PluginNode::new(tag);
        let path = CniPathDir::new();
        let log = tempfile::Builder::new()
            .prefix("netboot-flannel-log-")
            .tempdir()
            .unwrap();
        path.script("flannel", &recording_script(log.path()));
        if with_bridge {
            path.reference(&["bridge", "host-local"]);
        }
        fs::write(log.path().join("result-ADD"), RESULT).unwrap();
        Fixture { node, path, log }
    }

    fn conf(&self, version: &str) -> Value {
        merged(&self.node.conf(version), json!({"mode": "flannel"}))
    }

    fn call(&self, cmd: &str, pod: &Netns, conf: &Value) -> PluginCall {
        PluginCall {
            path: self.path.cni_path(),
            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web".into(),
            ..self.node.call(cmd, pod, conf)
        }
    }

    fn calls(&self) -> Vec<RecordedCall> {
        recorded_calls(self.log.path())
    }

    fn commands(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.command).collect()
    }

    fn log_dir(&self) -> &Path {
        self.log.path()
    }
}

/// The config the flannel binary must receive for `conf`.
fn expected_flannel_conf(f: &Fixture, version: &str, runtime: &Value) -> Value {
    json!({
        "cniVersion": version,
        "name": NET,
        "type": "flannel",
        "subnetFile": f.node.subnet_file,
        "dataDir": f.node.data_dir,
        "delegate": {"isDefaultGateway": true, "hairpinMode": true},
        "ipam": {"dataDir": f.node.ipam_dir},
        "runtimeConfig": runtime,
    })
}

#[test]
fn flannel_add_and_del_invocation_protocol() {
    require_root();
    let f = Fixture::new("fl", false);
    let pod = f.node.pod("fl");
    // A capability netboot does not act on itself, passed through as is
    // (`bandwidth` is chained to the reference plugin: plugin_bandwidth.rs).
    let runtime = json!({"mac": "0a:58:0a:02:01:05"});
    let conf = merged(&f.conf("1.0.0"), json!({"runtimeConfig": runtime}));
    let out = f.node.run(&f.call("ADD", &pod, &conf));
    let res = out.expect_ok();
    let canned: Value = serde_json::from_str(RESULT).unwrap();
    assert_eq!(res, canned, "flannel's result must come back unchanged");
    assert!(
        out.stderr().contains("recorder stderr ADD"),
        "delegate stderr must pass through: {}",
        out.output
    );

    let calls = f.calls();
    assert_eq!(f.commands(), ["ADD"]);
    let add = &calls[0];
    assert_eq!(
        add.argv,
        f.path.path().join("flannel").display().to_string()
    );
    let env = &add.env;
    assert_eq!(env["CNI_COMMAND"], "ADD");
    assert_eq!(env["CNI_CONTAINERID"], cid(&pod));
    assert_eq!(env["CNI_NETNS"], pod.path().display().to_string());
    assert_eq!(env["CNI_IFNAME"], "eth0");
    assert_eq!(env["CNI_PATH"], f.path.cni_path());
    assert_eq!(
        env["CNI_ARGS"],
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web"
    );
    assert_eq!(add.stdin, expected_flannel_conf(&f, "1.0.0", &runtime));

    // netboot keeps its record; the scratch file is flannel's business.
    assert_eq!(f.node.records(), vec![format!("{}@eth0.json", cid(&pod))]);
    assert_eq!(f.node.scratch_files(), Vec::<String>::new());

    // DEL replays the recorded call, whatever today's config says.
    let changed = merged(
        &f.conf("1.0.0"),
        json!({"delegate": {"mtu": 9000}, "subnetFile": "/nonexistent/subnet.env"}),
    );
    let out = f.node.run(&f.call("DEL", &pod, &changed));
    out.expect_ok();
    assert!(
        out.stderr().contains("recorder stderr DEL"),
        "{}",
        out.output
    );
    let calls = f.calls();
    assert_eq!(f.commands(), ["ADD", "DEL"]);
    let del = &calls[1];
    assert_eq!(del.env["CNI_COMMAND"], "DEL");
    assert_eq!(del.env["CNI_CONTAINERID"], cid(&pod));
    assert_eq!(del.env["CNI_NETNS"], pod.path().display().to_string());
    let expected = with_prev(&expected_flannel_conf(&f, "1.0.0", &runtime), &canned);
    assert_eq!(
        del.stdin, expected,
        "DEL must replay ADD's config + prevResult"
    );
    assert_eq!(f.node.records(), Vec::<String>::new());
    // A second DEL has nothing recorded; it may ask flannel again (flannel
    // itself is idempotent) but must succeed.
    f.node.run(&f.call("DEL", &pod, &changed)).expect_ok();
}

#[test]
fn flannel_result_comes_back_in_the_config_version() {
    require_root();
    let f = Fixture::new("flv", false);
    for v in ["0.3.1", "0.4.0", "1.1.0"] {
        let pod = f.node.pod("v");
        let conf = f.conf(v);
        let res = f.node.run(&f.call("ADD", &pod, &conf)).expect_ok();
        assert_eq!(res["cniVersion"], v, "{res}");
        if v.starts_with("0.") {
            assert_eq!(res["ips"][0]["version"], "4", "{res}");
        } else {
            assert!(res["ips"][0].get("version").is_none(), "{res}");
        }
        assert_eq!(res["ips"][0]["address"], "10.2.1.5/24");
        let last = f.calls().pop().unwrap();
        assert_eq!(last.command, "ADD");
        assert_eq!(
            last.stdin["cniVersion"], v,
            "flannel gets the config's version"
        );
        f.node.run(&f.call("DEL", &pod, &conf)).expect_ok();
    }
}

#[test]
fn flannel_error_passes_through_and_rolls_back() {
    require_root();
    let f = Fixture::new("flerr", false);
    fs::write(
        f.log_dir().join("fail-ADD"),
        r#"{"cniVersion":"1.0.0","code":42,"msg":"flannel recorder says no","details":"lease gone"}"#,
    )
    .unwrap();
    let pod = f.node.pod("e");
    let out = f.node.run(&f.call("ADD", &pod, &f.conf("1.0.0")));
    assert_eq!(err_code(&out), 42, "{}", out.output);
    let err = out.expect_err();
    assert_eq!(err["msg"], "flannel recorder says no", "{err}");
    assert!(err_text(&out).contains("lease gone"), "{err}");
    assert_eq!(err["cniVersion"], "1.0.0");
    assert!(
        out.stderr().contains("recorder stderr ADD"),
        "{}",
        out.output
    );
    // SPEC: a failed delegate ADD is followed by its DEL.
    assert_eq!(f.commands(), ["ADD", "DEL"]);
    let calls = f.calls();
    assert_eq!(calls[1].env["CNI_CONTAINERID"], cid(&pod));
    assert_eq!(calls[1].stdin["type"], "flannel");
    assert_eq!(f.node.records(), Vec::<String>::new(), "record left");

    // Garbage instead of a result is an error too, and rolled back.
    fs::remove_file(f.log_dir().join("fail-ADD")).unwrap();
    fs::write(f.log_dir().join("result-ADD"), "not json").unwrap();
    let out = f.node.run(&f.call("ADD", &pod, &f.conf("1.0.0")));
    assert!(!out.success(), "{}", out.output);
    assert_eq!(f.commands(), ["ADD", "DEL", "ADD", "DEL"]);
    assert_eq!(f.node.records(), Vec::<String>::new());
}

#[test]
fn flannel_mode_forwards_status_and_gc() {
    require_root();
    let f = Fixture::new("flst", false);
    let conf = f.conf("1.1.0");
    let bare = |cmd: &str, c: &Value| PluginCall {
        path: f.path.cni_path(),
        ..f.node.bare_call(cmd, c)
    };
    f.node.run(&bare("STATUS", &conf)).expect_ok();
    let calls = f.calls();
    assert_eq!(f.commands(), ["STATUS"]);
    assert_eq!(calls[0].stdin["type"], "flannel");
    assert_eq!(calls[0].stdin["cniVersion"], "1.1.0");

    let pod = f.node.pod("g");
    f.node.run(&f.call("ADD", &pod, &conf)).expect_ok();
    let gc = merged(&conf, json!({"cni.dev/valid-attachments": []}));
    f.node.run(&bare("GC", &gc)).expect_ok();
    let cmds = f.commands();
    assert_eq!(&cmds[..2], ["STATUS", "ADD"]);
    // The stale attachment is DELeted, and GC is forwarded to flannel.
    assert!(cmds[2..].contains(&"DEL".to_owned()), "{cmds:?}");
    assert!(cmds[2..].contains(&"GC".to_owned()), "{cmds:?}");
    let gc_call = f.calls().into_iter().find(|c| c.command == "GC").unwrap();
    assert_eq!(gc_call.stdin["cni.dev/valid-attachments"], json!([]));
    assert_eq!(f.node.records(), Vec::<String>::new());

    // The recorder fails STATUS: netboot is not ready either.
    fs::write(
        f.log_dir().join("fail-STATUS"),
        r#"{"cniVersion":"1.1.0","code":50,"msg":"flannel not ready"}"#,
    )
    .unwrap();
    let out = f.node.run(&bare("STATUS", &conf));
    assert_eq!(err_code(&out), 50, "{}", out.output);
    assert!(
        err_text(&out).contains("flannel not ready"),
        "{}",
        out.output
    );
}

#[test]
fn auto_mode_prefers_flannel_then_bridge() {
    require_root();
    let f = Fixture::new("auto", true);
    let conf = merged(&f.node.conf("1.0.0"), json!({"mode": "auto"}));
    let pod = f.node.pod("a");
    f.node.run(&f.call("ADD", &pod, &conf)).expect_ok();
    assert_eq!(f.commands(), ["ADD"], "auto must pick flannel when present");
    assert_eq!(f.node.allocations(), Vec::<String>::new());
    f.node.run(&f.call("DEL", &pod, &conf)).expect_ok();
    assert_eq!(f.commands(), ["ADD", "DEL"]);

    // Without flannel on CNI_PATH, auto uses bridge + host-local.
    fs::remove_file(f.path.path().join("flannel")).unwrap();
    let pod = f.node.pod("b");
    let res = f.node.run(&f.call("ADD", &pod, &conf)).expect_ok();
    assert_eq!(pod.ipv4_addrs("eth0"), netboot_tests::result_ips(&res));
    assert_eq!(f.node.scratch_files(), vec![cid(&pod)]);
    assert_eq!(f.commands(), ["ADD", "DEL"]);
    f.node.run(&f.call("DEL", &pod, &conf)).expect_ok();
    f.node.assert_clean(&[&cid(&pod)]);
}

/// netboot-cni in flannel mode with the real flannel plugin on `node`'s
/// CNI_PATH, at config version `v`.
fn real_call(node: &ModeNode, cmd: &str, pod: &Netns, v: &str) -> PluginCall {
    let conf = merged(&node.pn.conf(v), json!({"mode": "flannel"}));
    PluginCall {
        path: node.cni_path(),
        ..node.pn.call(cmd, pod, &conf)
    }
}

#[test]
fn real_flannel_add_and_del_at_every_version() {
    require_root();
    let node = ModeNode::new("rfv", Mode::Flannel);
    for v in ["0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let pod = node.pod("v");
        let id = cid(&pod);
        let res = node.run(&real_call(&node, "ADD", &pod, v)).expect_ok();
        assert_result_shape(v, &res, &pod, &node.pn);
        // flannel's scratch file, at the version flannel got: it speaks up
        // to 1.0.0, so a 1.1.0 config was negotiated down.
        let scratch: Value =
            serde_json::from_slice(&fs::read(node.data_dir.join(&id)).unwrap()).unwrap();
        let sent = if v == "1.1.0" { "1.0.0" } else { v };
        assert_eq!(scratch["cniVersion"], sent, "{scratch}");
        assert_eq!(scratch["type"], "bridge", "{scratch}");
        assert_eq!(node.records(), vec![format!("{id}@eth0.json")]);
        netboot_tests::assert_ping(&pod, &node.gateway());
        node.run(&real_call(&node, "DEL", &pod, v)).expect_ok();
        drop(pod);
        node.assert_clean(&[&id]);
    }
}

#[test]
fn real_flannel_status_and_gc() {
    require_root();
    // flannel v1.9.1 (Debian's libcni 1.1.2) knows neither STATUS nor GC:
    // netboot checks readiness itself and GCs flannel's attachments from
    // its records and flannel's scratch files.
    let node = ModeNode::new("rfst", Mode::Flannel);
    let conf = merged(&node.pn.conf("1.1.0"), json!({"mode": "flannel"}));
    let bare = |cmd: &str, c: &Value| PluginCall {
        path: node.cni_path(),
        ..node.pn.bare_call(cmd, c)
    };
    node.run(&bare("STATUS", &conf)).expect_ok();
    let keep = node.pod("keep");
    let gone = node.pod("gone");
    node.run(&real_call(&node, "ADD", &keep, "1.1.0"))
        .expect_ok();
    node.run(&real_call(&node, "ADD", &gone, "1.1.0"))
        .expect_ok();
    let (keep_id, gone_id) = (cid(&keep), cid(&gone));
    drop(gone);
    let gc = merged(
        &conf,
        json!({"cni.dev/valid-attachments": [{"containerID": keep_id, "ifname": "eth0"}]}),
    );
    node.run(&bare("GC", &gc)).expect_ok();
    assert_eq!(node.records(), vec![format!("{keep_id}@eth0.json")]);
    assert_eq!(node.scratch_files(), vec![keep_id.clone()]);
    assert_eq!(node.allocations().len(), 1);
    assert!(!node.iptables_save().contains(&gone_id));
    netboot_tests::assert_ping(&keep, &node.gateway());
    // subnet.env gone: not ready (flannel's own STATUS would say yes).
    fs::remove_file(&node.subnet_file).unwrap();
    let out = node.run(&bare("STATUS", &conf));
    assert_eq!(err_code(&out), 50, "{}", out.output);
    node.node.write_subnet_env(&node.env);
    node.run(&real_call(&node, "DEL", &keep, "1.1.0"))
        .expect_ok();
    node.assert_clean(&[&keep_id, &gone_id]);
}

#[test]
fn real_flannel_failed_add_is_rolled_back() {
    require_root();
    let node = ModeNode::new("rferr", Mode::Flannel);
    // 1. No subnet.env: flannel's own error comes back, nothing is left.
    fs::remove_file(&node.subnet_file).unwrap();
    let pod = node.pod("e");
    let out = node.run(&real_call(&node, "ADD", &pod, "1.0.0"));
    assert!(
        err_text(&out).contains("subnet.env"),
        "flannel's error must pass through: {}",
        out.output
    );
    node.assert_clean(&[&cid(&pod)]);
    node.node.write_subnet_env(&node.env);
    // 2. The bridge fails after flannel wrote its scratch file (cni0 holds
    //    another subnet's address): flannel leaves the file behind
    //    (plugins#426); netboot's rollback DELs through flannel, which
    //    replays and removes it.
    node.exec(&["ip", "link", "add", "cni0", "type", "bridge"])
        .expect_ok();
    node.exec(&["ip", "addr", "add", "10.9.9.1/24", "dev", "cni0"])
        .expect_ok();
    let out = node.run(&real_call(&node, "ADD", &pod, "1.0.0"));
    assert!(
        err_text(&out).contains("already has an IP address different"),
        "{}",
        out.output
    );
    assert!(pod.link_names().iter().all(|l| l != "eth0"), "eth0 left");
    node.assert_clean(&[&cid(&pod)]);
}

/// Stand-ins for `portmap` and `bandwidth` next to the `flannel` one, all
/// recording into the fixture's log (told apart by their stdin's `type`);
/// `bandwidth` ADD fails while `<log>/fail-bw` exists.
fn with_chain_stand_ins(f: &Fixture) {
    let log = f.log_dir().display().to_string();
    f.path.script("recorder", &recording_script(f.log_dir()));
    let rec = f.path.path().join("recorder").display().to_string();
    f.path
        .script("portmap", &format!("#!/bin/sh\nexec sh '{rec}'\n"));
    f.path.script(
        "bandwidth",
        &format!(
            r#"#!/bin/sh
if [ "$CNI_COMMAND" = ADD ] && [ -f '{log}/fail-bw' ]; then
  sh '{rec}' >/dev/null 2>&1
  echo '{{"cniVersion":"1.0.0","code":11,"msg":"bandwidth stand-in says no"}}'
  exit 1
fi
exec sh '{rec}'
"#
        ),
    );
}

/// (command, type) of every recorded call.
fn chain_calls(f: &Fixture) -> Vec<(String, String)> {
    f.calls()
        .into_iter()
        .map(|c| {
            let t = c.stdin["type"].as_str().unwrap_or("?").to_owned();
            (c.command, t)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn bandwidth_is_chained_after_portmap_and_undone_first() {
    require_root();
    let f = Fixture::new("flbw", false);
    with_chain_stand_ins(&f);
    let pod = f.node.pod("bw");
    // containerd's spelling; the reference plugin gets its own.
    let go = json!({"IngressRate": 8000000, "IngressBurst": 4294967295u64,
                    "EgressRate": 0, "EgressBurst": 0});
    let conf = merged(
        &f.conf("1.0.0"),
        json!({"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": go}}),
    );
    f.node.run(&f.call("ADD", &pod, &conf)).expect_ok();
    assert_eq!(
        chain_calls(&f),
        pairs(&[("ADD", "flannel"), ("ADD", "portmap"), ("ADD", "bandwidth")])
    );
    let bw = f.calls().pop().unwrap().stdin;
    assert_eq!(
        bw["runtimeConfig"]["bandwidth"],
        json!({"ingressRate": 8000000, "ingressBurst": 4294967295u64,
               "egressRate": 0, "egressBurst": 0}),
        "{bw}"
    );
    assert_eq!(bw["capabilities"], json!({"bandwidth": true}), "{bw}");
    assert_eq!(bw["name"], NET);
    assert!(
        bw["prevResult"]["ips"].is_array(),
        "chained on a result: {bw}"
    );

    f.node.run(&f.call("DEL", &pod, &conf)).expect_ok();
    assert_eq!(
        chain_calls(&f)[3..],
        pairs(&[("DEL", "bandwidth"), ("DEL", "portmap"), ("DEL", "flannel")])
    );
    assert_eq!(f.node.records(), Vec::<String>::new());

    // A failing bandwidth ADD is reported and everything is rolled back,
    // bandwidth first.
    fs::write(f.log_dir().join("fail-bw"), "").unwrap();
    let out = f.node.run(&f.call("ADD", &pod, &conf));
    assert_eq!(err_code(&out), 11, "{}", out.output);
    assert_eq!(
        chain_calls(&f)[6..],
        pairs(&[
            ("ADD", "flannel"),
            ("ADD", "portmap"),
            ("ADD", "bandwidth"),
            ("DEL", "bandwidth"),
            ("DEL", "portmap"),
            ("DEL", "flannel"),
        ])
    );
    assert_eq!(f.node.records(), Vec::<String>::new());
}
