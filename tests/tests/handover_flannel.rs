//! Hand-over between the real upstream flannel CNI plugin
//! (flannel-io/cni-plugin v1.9.1, built by `upstream::flannel_plugin`) and
//! netboot-cni, both ways, on one node: same network name (`cbr0`),
//! `dataDir`, `subnetFile` and host-local store.
//!
//! The runtime is played by the test, as libcni runs kube-flannel's
//! conflist `{"plugins":[{"type":"flannel","delegate":{...}},
//! {"type":"portmap","capabilities":{"portMappings":true}}]}`: flannel ADD,
//! then portmap ADD with flannel's result as prevResult; DEL in reverse
//! order, each with the final result. The CNI_PATH holds what a node's
//! `/opt/cni/bin` holds: flannel, the reference bridge, host-local and
//! portmap, and netboot-cni.
//!
//! After every hand-over the node must equal its state before the pod
//! (`PluginNode::settled_diff`: links, addresses, routes, neighbours,
//! iptables, nftables, every file), with one stated exception: upstream
//! flannel's DEL of a *bridge-mode* attachment replays the bridge +
//! host-local config netboot wrote to flannel's scratch file, which
//! removes everything on the network, but cannot know netboot's own
//! record under `<dataDir>/.netboot/`; the next netboot DEL or GC removes
//! that inert file.

use netboot_tests::plugin_support::{
    cid, err_code, merged, plugin_bin, with_ports, with_prev, CniPathDir, PluginNode, NET,
};
use netboot_tests::upstream::flannel_plugin;
use netboot_tests::{require_root, run_plugin, Netns, PluginCall, PluginOutput, SubnetEnv};
use serde_json::{json, Value};

const HOST_PORT: u16 = 8080;

/// A node with the full CNI_PATH. FLANNEL_IPMASQ is false, so the bridge
/// also makes its per-container masquerade chain (more state to clean).
struct Handover {
    node: PluginNode,
    path: CniPathDir,
}

impl Handover {
    fn new(tag: &str) -> Self {
        let node = PluginNode::with_env(
            tag,
            SubnetEnv {
                ipmasq: false,
                ..SubnetEnv::default()
            },
        );
        let path = CniPathDir::new();
        path.reference(&["bridge", "host-local", "portmap"])
            .link("flannel", &flannel_plugin())
            .link("netboot-cni", &plugin_bin());
        let h = Handover { node, path };
        // Node-wide state (cni0, portmap's shared chains, native mode's
        // node rules and lock) exists before any baseline is taken.
        for mode in ["bridge", "native"] {
            let pod = h.node.pod("w");
            h.netboot("ADD", &pod, mode).expect_ok();
            h.netboot("DEL", &pod, mode).expect_ok();
        }
        let pod = h.node.pod("w");
        let res = h.runtime_add(&pod);
        h.runtime_del(&pod, &res);
        h
    }

    /// kube-flannel's flannel entry, with this node's files.
    fn flannel_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": NET,
            "type": "flannel",
            "subnetFile": self.node.subnet_file,
            "dataDir": self.node.data_dir,
            "ipam": {"dataDir": self.node.ipam_dir},
            "delegate": {"isDefaultGateway": true, "hairpinMode": true},
        })
    }

    /// kube-flannel's portmap entry, with the runtime's mappings.
    fn portmap_conf(&self) -> Value {
        with_ports(
            &json!({
                "cniVersion": "1.0.0",
                "name": NET,
                "type": "portmap",
                "capabilities": {"portMappings": true},
            }),
            HOST_PORT,
            80,
        )
    }

    /// netboot-cni's config in `mode`, at 1.1.0 (above what flannel and the
    /// reference plugins speak), with the same port mapping.
    fn netboot_conf(&self, mode: &str) -> Value {
        let c = merged(&self.node.conf("1.1.0"), json!({"mode": mode}));
        with_ports(&c, HOST_PORT, 80)
    }

    fn call(&self, cmd: &str, pod: &Netns, conf: &Value) -> PluginCall {
        PluginCall {
            path: self.path.cni_path(),
            ..self.node.call(cmd, pod, conf)
        }
    }

    fn netboot(&self, cmd: &str, pod: &Netns, mode: &str) -> PluginOutput {
        self.node
            .run(&self.call(cmd, pod, &self.netboot_conf(mode)))
    }

    /// A plugin of the CNI_PATH (not netboot-cni) called by the "runtime".
    fn upstream(&self, plugin: &str, cmd: &str, pod: &Netns, conf: &Value) -> PluginOutput {
        run_plugin(&self.path.path().join(plugin), &self.call(cmd, pod, conf))
    }

    /// libcni's ADD of the flannel conflist; the final result.
    fn runtime_add(&self, pod: &Netns) -> Value {
        let res = self
            .upstream("flannel", "ADD", pod, &self.flannel_conf())
            .expect_ok();
        let pm = with_prev(&self.portmap_conf(), &res);
        self.upstream("portmap", "ADD", pod, &pm).expect_ok()
    }

    /// libcni's DEL of the flannel conflist: portmap, then flannel.
    fn runtime_del(&self, pod: &Netns, res: &Value) {
        let pm = with_prev(&self.portmap_conf(), res);
        self.upstream("portmap", "DEL", pod, &pm).expect_ok();
        let fl = with_prev(&self.flannel_conf(), res);
        self.upstream("flannel", "DEL", pod, &fl).expect_ok();
    }

    /// The attachment's network state is there: eth0 with the result's IP,
    /// its host-local file, its DNAT chain.
    #[track_caller]
    fn assert_attached(&self, pod: &Netns, res: &Value) {
        assert_eq!(pod.ipv4_addrs("eth0"), netboot_tests::result_ips(res));
        let ip = netboot_tests::first_ip(res);
        assert_eq!(self.node.allocations(), vec![ip], "{res}");
        let rules = self.node.iptables_save();
        assert!(
            rules.contains(&cid(pod)) || self.node.nft_ruleset().contains(&cid(pod)),
            "no port mapping for {}",
            cid(pod)
        );
    }

    /// The pod lost its eth0; once its netns is gone the node equals
    /// `baseline`.
    #[track_caller]
    fn assert_clean_after(&self, pod: Netns, baseline: &netboot_tests::plugin_support::Snapshot) {
        assert!(
            pod.link_names().iter().all(|l| l != "eth0"),
            "eth0 left in the pod"
        );
        let id = cid(&pod);
        drop(pod);
        self.node.assert_clean(&[&id]);
        let diff = self.node.settled_diff(baseline);
        assert!(diff.is_empty(), "node differs from before the pod:\n{diff}");
    }
}

#[test]
fn upstream_flannel_attachment_is_deleted_by_netboot_in_bridge_and_native_mode() {
    require_root();
    let h = Handover::new("hofl");
    let baseline = h.node.stable_snapshot();
    for mode in ["bridge", "native"] {
        let pod = h.node.pod("f");
        let id = cid(&pod);
        let res = h.runtime_add(&pod);
        h.assert_attached(&pod, &res);
        // flannel's scratch file: the bridge config it delegated.
        let scratch: Value =
            serde_json::from_slice(&std::fs::read(h.node.data_dir.join(&id)).unwrap()).unwrap();
        assert_eq!(scratch["type"], "bridge", "{mode}: {scratch}");
        assert_eq!(h.node.records(), Vec::<String>::new());
        if mode == "native" {
            // Without the bridge binary the attachment cannot be undone:
            // DEL says so (code 50) and keeps flannel's scratch file, so it
            // can be retried once the binary is back.
            let empty = CniPathDir::new();
            let out = h.node.run(&PluginCall {
                path: empty.cni_path(),
                ..h.node.call("DEL", &pod, &h.netboot_conf(mode))
            });
            assert_eq!(err_code(&out), 50, "{}", out.output);
            assert!(h.node.data_dir.join(&id).is_file(), "scratch file lost");
        }
        h.netboot("DEL", &pod, mode).expect_ok();
        h.assert_clean_after(pod, &baseline);
    }
}

#[test]
fn netboot_attachment_is_deleted_by_upstream_flannel() {
    require_root();
    let h = Handover::new("honb");
    let baseline = h.node.stable_snapshot();
    for mode in ["bridge", "native"] {
        let pod = h.node.pod("n");
        let id = cid(&pod);
        let res = h.netboot("ADD", &pod, mode).expect_ok();
        h.assert_attached(&pod, &res);
        let scratch: Value =
            serde_json::from_slice(&std::fs::read(h.node.data_dir.join(&id)).unwrap()).unwrap();
        // The runtime hands netboot's 1.1.0 result to its 1.0.0 conflist.
        let res = merged(&res, json!({"cniVersion": "1.0.0"}));
        if mode == "bridge" {
            // The config flannel would have rendered, byte-compatible.
            assert_eq!(scratch["type"], "bridge", "{scratch}");
            h.runtime_del(&pod, &res);
            // All but netboot's record is gone; the record is inert (its
            // replay is idempotent) and goes with netboot's next DEL.
            assert_eq!(h.node.records(), vec![format!("{id}@eth0.json")]);
            h.netboot("DEL", &pod, mode).expect_ok();
        } else {
            // Native mode's scratch file names netboot-cni: flannel's DEL
            // execs it, and netboot undoes the attachment from its record.
            assert_eq!(scratch["type"], "netboot-cni", "{scratch}");
            assert_eq!(scratch["mode"], "native", "{scratch}");
            h.runtime_del(&pod, &res);
        }
        h.assert_clean_after(pod, &baseline);
    }
}

#[test]
fn without_its_scratch_file_a_native_attachment_defeats_upstream_flannel() {
    require_root();
    // Why native mode writes the scratch file: without it flannel's DEL
    // succeeds having done nothing (flannel.go doCmdDel: a missing file is
    // "already removed"), and the pod's IP, port mapping and netboot's
    // record stay behind.
    let h = Handover::new("honone");
    let baseline = h.node.stable_snapshot();
    let pod = h.node.pod("n");
    let id = cid(&pod);
    let res = h.netboot("ADD", &pod, "native").expect_ok();
    std::fs::remove_file(h.node.data_dir.join(&id)).unwrap();
    h.runtime_del(&pod, &merged(&res, json!({"cniVersion": "1.0.0"})));
    assert_eq!(h.node.allocations(), vec![netboot_tests::first_ip(&res)]);
    assert_eq!(h.node.records(), vec![format!("{id}@eth0.json")]);
    assert!(h.node.nft_ruleset().contains(&id), "port mapping gone");
    // netboot's own DEL still undoes it from the record.
    h.netboot("DEL", &pod, "native").expect_ok();
    h.assert_clean_after(pod, &baseline);
}

#[test]
fn flannel_scratch_file_matches_netboot_bridge_mode_byte_for_byte() {
    require_root();
    // The same pod config rendered by upstream flannel and by netboot-cni
    // in bridge mode: identical scratch files, so either plugin's DEL
    // replays what the other ADDed.
    let h = Handover::new("hobyte");
    let flannel_pod = h.node.pod("a");
    let res = h
        .upstream("flannel", "ADD", &flannel_pod, &h.flannel_conf())
        .expect_ok();
    let from_flannel = std::fs::read(h.node.data_dir.join(cid(&flannel_pod))).unwrap();
    let fl = with_prev(&h.flannel_conf(), &res);
    h.upstream("flannel", "DEL", &flannel_pod, &fl).expect_ok();
    let nb_pod = h.node.pod("b");
    let conf = merged(&h.node.conf("1.0.0"), json!({"mode": "bridge"}));
    h.node.run(&h.call("ADD", &nb_pod, &conf)).expect_ok();
    let from_netboot = std::fs::read(h.node.data_dir.join(cid(&nb_pod))).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&from_netboot),
        String::from_utf8_lossy(&from_flannel)
    );
    h.node.run(&h.call("DEL", &nb_pod, &conf)).expect_ok();
}

#[test]
fn native_scratch_file_without_its_record_is_undone_natively() {
    require_root();
    // The record is lost (zero bytes after a power loss, or removed):
    // DEL and GC find native mode's scratch file, which names netboot-cni
    // itself, and undo the attachment by its deterministic names instead
    // of exec'ing netboot-cni (on this CNI_PATH) as a delegate.
    let h = Handover::new("horec");
    let baseline = h.node.stable_snapshot();
    for by_gc in [false, true] {
        let pod = h.node.pod("r");
        let id = cid(&pod);
        h.netboot("ADD", &pod, "native").expect_ok();
        std::fs::write(h.node.record_path(&id), b"").unwrap();
        if by_gc {
            let gc = merged(
                &h.netboot_conf("native"),
                json!({"cni.dev/valid-attachments": []}),
            );
            drop(pod);
            h.node
                .run(&PluginCall {
                    path: h.path.cni_path(),
                    ..h.node.bare_call("GC", &gc)
                })
                .expect_ok();
            h.node.assert_clean(&[&id]);
            let diff = h.node.settled_diff(&baseline);
            assert!(diff.is_empty(), "GC left:\n{diff}");
        } else {
            h.netboot("DEL", &pod, "native").expect_ok();
            h.assert_clean_after(pod, &baseline);
        }
    }
}

#[test]
fn upstream_flannel_consumes_its_scratch_file_even_when_its_delegate_del_fails() {
    require_root();
    // flannel.go doCmdDel removes the scratch file in a deferred cleanup
    // that sees only the JSON error, not the delegate's: a failed bridge
    // DEL loses the file, and flannel's next DEL "succeeds" doing nothing.
    // (netboot's flannel mode reads the file first and replays it; see
    // crash_trials::flannel_del_replays_or_rebuilds_what_flannel_cannot.)
    let h = Handover::new("hocons");
    let baseline = h.node.stable_snapshot();
    let pod = h.node.pod("c");
    let id = cid(&pod);
    let res = h.runtime_add(&pod);
    let path = h.node.data_dir.join(&id);
    let mut scratch: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    scratch["cniVersion"] = "1.1.0".into(); // the reference bridge refuses it
    std::fs::write(&path, scratch.to_string()).unwrap();
    let pm = with_prev(&h.portmap_conf(), &res);
    h.upstream("portmap", "DEL", &pod, &pm).expect_ok();
    let fl = with_prev(&h.flannel_conf(), &res);
    let out = h.upstream("flannel", "DEL", &pod, &fl);
    assert_eq!(err_code(&out), 1, "{}", out.output);
    assert!(!path.exists(), "flannel kept its scratch file");
    h.upstream("flannel", "DEL", &pod, &fl).expect_ok();
    assert_eq!(h.node.allocations(), vec![netboot_tests::first_ip(&res)]);
    // netboot-cni's DEL, with neither record nor scratch file, rebuilds
    // the bridge config from subnet.env and releases what flannel left.
    h.netboot("DEL", &pod, "bridge").expect_ok();
    h.assert_clean_after(pod, &baseline);
}
