//! [`CniNode`]: a node netboot-cni runs in, whatever its mode. Bridge
//! mode ([`PluginNode`], reference plugins on CNI_PATH) and native mode
//! (`NativeNode`, an empty CNI_PATH) differ in their config, their calls,
//! what they leave behind and how strictly a snapshot compares; CHECK
//! and GC are the same calls in both, written once here.

use serde_json::{json, Value};

use crate::netns::Netns;
use crate::plugin::{PluginCall, PluginOutput};
use crate::plugin_support::{merged, with_prev, PluginNode, Snapshot};

/// A node set up for netboot-cni in one mode.
pub trait CniNode {
    /// The node underneath (subnet.env, dataDir, the host-local store).
    fn plugin_node(&self) -> &PluginNode;
    /// The mode's config at `version`.
    fn conf(&self, version: &str) -> Value;
    /// A call for `pod` inside the node, with the mode's CNI_PATH.
    fn call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall;
    /// A call with no pod (STATUS, GC), with the mode's CNI_PATH.
    fn bare_call(&self, command: &str, conf: &Value) -> PluginCall;
    /// Everything a refused call must leave as it was.
    fn snapshot(&self) -> Snapshot;
    /// Everything an attachment of `ids` leaves on the node is gone.
    fn assert_clean(&self, ids: &[&str]);

    /// Run netboot-cni as `call` says.
    fn run(&self, call: &PluginCall) -> PluginOutput {
        self.plugin_node().run(call)
    }

    /// ADD `pod` and return the result; panics on failure.
    #[track_caller]
    fn add(&self, pod: &Netns, conf: &Value) -> Value {
        self.run(&self.call("ADD", pod, conf)).expect_ok()
    }

    /// DEL `pod`; panics on failure.
    #[track_caller]
    fn del(&self, pod: &Netns, conf: &Value) {
        self.run(&self.call("DEL", pod, conf)).expect_ok();
    }

    /// CHECK `pod` against `result`.
    fn check(&self, pod: &Netns, conf: &Value, result: &Value) -> PluginOutput {
        self.run(&self.call("CHECK", pod, &with_prev(conf, result)))
    }

    /// GC keeping only `valid` (container ids, ifname eth0).
    #[track_caller]
    fn gc(&self, conf: &Value, valid: &[&str]) {
        let list: Vec<Value> = valid
            .iter()
            .map(|c| json!({"containerID": c, "ifname": "eth0"}))
            .collect();
        let gc = merged(conf, json!({"cni.dev/valid-attachments": list}));
        let out = self.run(&self.bare_call("GC", &gc));
        assert_eq!(out.expect_ok(), Value::Null, "GC prints nothing");
    }
}

impl CniNode for PluginNode {
    fn plugin_node(&self) -> &PluginNode {
        self
    }
    fn conf(&self, version: &str) -> Value {
        PluginNode::conf(self, version)
    }
    fn call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall {
        PluginNode::call(self, command, pod, conf)
    }
    fn bare_call(&self, command: &str, conf: &Value) -> PluginCall {
        PluginNode::bare_call(self, command, conf)
    }
    fn snapshot(&self) -> Snapshot {
        PluginNode::snapshot(self)
    }
    #[track_caller]
    fn assert_clean(&self, ids: &[&str]) {
        PluginNode::assert_clean(self, ids)
    }
}
