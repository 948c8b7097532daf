//! Helpers for netboot-cni's native-mode tests (`tests/tests/plugin_native.rs`):
//! a [`PluginNode`] whose calls run with an *empty* CNI_PATH, what native
//! mode leaves on a node (`nbv…` veths, the host-local store, records,
//! nftables rules) and extra namespaces wired to the node by a veth (an
//! "outside" service, a peer node), all from private test ranges.

use std::ops::Deref;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cni_node::CniNode;
use crate::netns::Netns;
use crate::node::SubnetEnv;
use crate::plugin::PluginCall;
use crate::plugin_support::{
    list_names, merged, serve, with_mappings, CniPathDir, PluginNode, Snapshot, NET, POD_PORT,
};
use crate::retry;

/// The prefix of netboot's host-side veths (`nbv` + 12 hex digits).
pub const HOST_VETH_PREFIX: &str = "nbv";

/// A node running netboot-cni in native mode: every call gets an empty
/// temp dir as CNI_PATH, so any attempt to exec a delegate fails.
#[derive(Debug)]
pub struct NativeNode {
    pub pn: PluginNode,
    empty: CniPathDir,
}

impl Deref for NativeNode {
    type Target = PluginNode;
    fn deref(&self) -> &PluginNode {
        &self.pn
    }
}

impl NativeNode {
    /// A node whose subnet.env says `10.2.1.1/24` of `10.2.0.0/16`.
    pub fn new(tag: &str) -> Self {
        Self::with_env(tag, SubnetEnv::default())
    }

    pub fn with_env(tag: &str, env: SubnetEnv) -> Self {
        NativeNode {
            pn: PluginNode::with_env(tag, env),
            empty: CniPathDir::new(),
        }
    }

    /// The empty CNI_PATH every native call uses.
    pub fn cni_path(&self) -> String {
        self.empty.cni_path()
    }

    /// [`PluginNode::conf`] with `"mode": "native"`.
    pub fn conf(&self, version: &str) -> Value {
        merged(&self.pn.conf(version), json!({"mode": "native"}))
    }

    /// A call for `pod` inside this node with the empty CNI_PATH.
    pub fn call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall {
        PluginCall {
            path: self.cni_path(),
            ..self.pn.call(command, pod, conf)
        }
    }

    /// A call with no pod (STATUS, GC) with the empty CNI_PATH.
    pub fn bare_call(&self, command: &str, conf: &Value) -> PluginCall {
        PluginCall {
            path: self.cni_path(),
            ..self.pn.bare_call(command, conf)
        }
    }

    /// ADD `pod` natively and return the result; panics on failure.
    #[track_caller]
    pub fn add(&self, pod: &Netns, conf: &Value) -> Value {
        CniNode::add(self, pod, conf)
    }

    /// DEL `pod` natively; panics on failure.
    #[track_caller]
    pub fn del(&self, pod: &Netns, conf: &Value) {
        CniNode::del(self, pod, conf)
    }

    /// What the hostPort tests start from: a pod `p` ADDed natively with
    /// the port `mappings` (a JSON array of
    /// [`mapping`](crate::plugin_support::mapping)s), serving `text`
    /// on TCP [`POD_PORT`]. Returns the pod, its conf and ADD's result.
    #[track_caller]
    pub fn serving_pod(&self, mappings: Value, text: &str) -> (Netns, Value, Value) {
        let pod = self.pod("p");
        let conf = with_mappings(&self.conf("1.0.0"), mappings);
        let res = self.add(&pod, &conf);
        serve(&pod, POD_PORT, text);
        (pod, conf, res)
    }

    /// netboot's host veths (`nbv…`) on the node.
    pub fn host_veths(&self) -> Vec<String> {
        self.veths()
            .into_iter()
            .filter(|v| v.starts_with(HOST_VETH_PREFIX))
            .collect()
    }

    /// Every name in the host-local store directory of [`NET`].
    pub fn store_files(&self) -> Vec<String> {
        list_names(&self.ipam_dir.join(NET))
    }

    /// `nft -j list ruleset` of the node, parsed.
    pub fn nft_json(&self) -> Value {
        let out = self.exec(&["nft", "-j", "list", "ruleset"]).expect_ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON from nft: {e}\n{}", out.stdout))
    }

    /// The nftables rules (as JSON text) that mention `id` anywhere.
    pub fn nft_rules_mentioning(&self, id: &str) -> Vec<String> {
        self.nft_json()["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("rule"))
            .map(Value::to_string)
            .filter(|r| r.contains(id))
            .collect()
    }

    /// Every element of every named set and map of the node, as
    /// (`family table set`, the element's JSON text: key, comment, data).
    pub fn nft_elements(&self) -> Vec<(String, String)> {
        self.nft_json()["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("set").or_else(|| o.get("map")))
            .flat_map(|s| {
                let name = format!(
                    "{} {} {}",
                    s["family"].as_str().unwrap_or_default(),
                    s["table"].as_str().unwrap_or_default(),
                    s["name"].as_str().unwrap_or_default()
                );
                s["elem"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |e| (name.clone(), e.to_string()))
            })
            .collect()
    }

    /// The elements of `inet netboot <set>` (native hostPorts), as JSON text.
    pub fn hostport_elements(&self, set: &str) -> Vec<String> {
        let want = format!("inet netboot {set}");
        self.nft_elements()
            .into_iter()
            .filter(|(s, _)| *s == want)
            .map(|(_, e)| e)
            .collect()
    }

    /// The nftables rules and set/map elements that mention `id`.
    pub fn nft_mentioning(&self, id: &str) -> Vec<String> {
        let mut v = self.nft_rules_mentioning(id);
        v.extend(
            self.nft_elements()
                .into_iter()
                .filter(|(_, e)| e.contains(id))
                .map(|(s, e)| format!("{s}: {e}")),
        );
        v
    }

    /// Rules in chain `family table chain`, as JSON text.
    pub fn nft_chain_rules(&self, family: &str, table: &str, chain: &str) -> Vec<String> {
        self.nft_json()["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("rule"))
            .filter(|r| r["family"] == family && r["table"] == table && r["chain"] == chain)
            .map(Value::to_string)
            .collect()
    }

    /// The host-local store holds nothing but its lock and round-robin
    /// hints.
    #[track_caller]
    pub fn assert_store_empty(&self) {
        let files = self.store_files();
        assert!(
            files
                .iter()
                .all(|f| f == "lock" || f.starts_with("last_reserved_ip.")),
            "store not empty: {files:?}"
        );
    }

    /// Everything a native attachment of `ids` leaves is gone: `nbv` veths
    /// (`ip -j link`), IP files, records (temp files included), and
    /// nftables rules and hostPort map elements naming the ids.
    #[track_caller]
    pub fn assert_clean(&self, ids: &[&str]) {
        // A deleted pod netns takes its veth peer with it, asynchronously.
        let veths = retry(50, Duration::from_millis(100), || {
            let v = self.host_veths();
            v.is_empty().then_some(v)
        })
        .unwrap_or_else(|| self.host_veths());
        assert_eq!(veths, Vec::<String>::new(), "host veths left on node");
        self.assert_store_empty();
        assert_eq!(self.records(), Vec::<String>::new(), "records left");
        assert_eq!(self.scratch_files(), Vec::<String>::new(), "scratch left");
        for id in ids {
            let left = self.nft_mentioning(id);
            assert!(
                left.is_empty(),
                "nft rules or elements for {id} left: {left:#?}"
            );
        }
    }

    /// [`PluginNode::stable_snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        self.pn.stable_snapshot()
    }

    /// The node's bridge MAC (`cni0`).
    pub fn bridge_mac(&self) -> String {
        self.ip_json(&["link", "show", "cni0"])[0]["address"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

impl CniNode for NativeNode {
    fn plugin_node(&self) -> &PluginNode {
        &self.pn
    }
    fn conf(&self, version: &str) -> Value {
        NativeNode::conf(self, version)
    }
    fn call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall {
        NativeNode::call(self, command, pod, conf)
    }
    fn bare_call(&self, command: &str, conf: &Value) -> PluginCall {
        NativeNode::bare_call(self, command, conf)
    }
    fn snapshot(&self) -> Snapshot {
        NativeNode::snapshot(self)
    }
    #[track_caller]
    fn assert_clean(&self, ids: &[&str]) {
        NativeNode::assert_clean(self, ids)
    }
}

/// `env` with another FLANNEL_SUBNET (and FLANNEL_IPMASQ kept).
pub fn env_with_subnet(env: &SubnetEnv, subnet: &str) -> SubnetEnv {
    SubnetEnv {
        subnet: subnet.into(),
        ..env.clone()
    }
}

/// A namespace wired to `node` by a veth: `link` on the node side with
/// `node_addr`, `eth0` on the far side with `far_addr` (both `a.b.c.d/len`).
/// The far side gets no route to the pod network: replies to pods only get
/// back when the node masquerades. Dropped with the node's netns or its own.
#[derive(Debug)]
pub struct Wired {
    pub ns: Netns,
    pub node_ip: String,
    pub far_ip: String,
}

impl Wired {
    pub fn new(node: &PluginNode, tag: &str, link: &str, node_addr: &str, far_addr: &str) -> Self {
        let ns = Netns::new(tag);
        let far = ns.path().to_string_lossy().into_owned();
        node.exec(&[
            "ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", &far,
        ])
        .expect_ok();
        node.exec(&["ip", "addr", "add", node_addr, "dev", link])
            .expect_ok();
        node.exec(&["ip", "link", "set", link, "up"]).expect_ok();
        ns.exec(&["ip", "addr", "add", far_addr, "dev", "eth0"])
            .expect_ok();
        ns.exec(&["ip", "link", "set", "eth0", "up"]).expect_ok();
        let ip = |a: &str| a.split('/').next().unwrap_or_default().to_owned();
        Wired {
            ns,
            node_ip: ip(node_addr),
            far_ip: ip(far_addr),
        }
    }
}

impl Wired {
    /// The peer node most tests use: `vpeer` with 198.51.100.1 on the
    /// node, 198.51.100.2 in the peer (TEST-NET-2).
    pub fn peer(node: &PluginNode, tag: &str) -> Self {
        Wired::new(node, tag, "vpeer", "198.51.100.1/24", "198.51.100.2/24")
    }
}

impl Deref for Wired {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.ns
    }
}

/// A tiny deterministic PRNG (xorshift64*), seeded from the clock unless
/// `NETBOOT_TEST_SEED` is set; the seed is printed so a failure replays.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn from_env_or_clock() -> Self {
        let seed = std::env::var("NETBOOT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("[rng] NETBOOT_TEST_SEED={seed}");
        Rng(seed.max(1))
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}
