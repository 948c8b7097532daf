//! Helpers for netboot-cni's own integration tests (`tests/tests/plugin_*.rs`):
//! a node prepared for the plugin (subnet.env, data dirs), calls of the
//! built `netboot-cni` binary inside that node, and snapshots of everything
//! an attachment can leave behind (links, addresses, routes, iptables, files).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::netns::Netns;
use crate::node::{Node, SubnetEnv};
use crate::plugin::{result_ips, run_plugin, PluginCall, PluginOutput};
use crate::{bin_path, retry};

/// The network name every plugin test uses (as in kube-flannel.yml).
pub const NET: &str = "cbr0";

/// The hostPort the plugin suites publish, and the pod port behind it.
pub const HOST_PORT: u16 = 8080;
pub const POD_PORT: u16 = 80;

/// A node set up for netboot-cni in bridge mode: `subnet.env`, the plugin's
/// `dataDir` (`<node>/flannel`) and host-local's store (`<node>/ipam/cbr0`).
#[derive(Debug)]
pub struct PluginNode {
    pub node: Node,
    pub env: SubnetEnv,
    pub subnet_file: PathBuf,
    pub data_dir: PathBuf,
    pub ipam_dir: PathBuf,
}

impl std::ops::Deref for PluginNode {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

impl PluginNode {
    /// A node whose subnet.env says `10.2.1.1/24` of `10.2.0.0/16`.
    pub fn new(tag: &str) -> Self {
        Self::with_env(tag, SubnetEnv::default())
    }

    pub fn with_env(tag: &str, env: SubnetEnv) -> Self {
        let node = Node::new(tag);
        let subnet_file = node.write_subnet_env(&env);
        let data_dir = node.dir().join("flannel");
        let ipam_dir = node.dir().join("ipam");
        PluginNode {
            node,
            env,
            subnet_file,
            data_dir,
            ipam_dir,
        }
    }

    /// The node's pod gateway (`.1` of FLANNEL_SUBNET), bridge's default.
    pub fn gateway(&self) -> String {
        let ip = self.env.subnet.split('/').next().unwrap_or_default();
        let mut octets: Vec<&str> = ip.split('.').collect();
        octets[3] = "1";
        octets.join(".")
    }

    /// A bridge-mode config of version `version`, as in the brief.
    pub fn conf(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": NET,
            "type": "netboot-cni",
            "mode": "bridge",
            "subnetFile": self.subnet_file,
            "dataDir": self.data_dir,
            "ipam": {"dataDir": self.ipam_dir},
            "delegate": {"isDefaultGateway": true, "hairpinMode": true},
        })
    }

    /// A call of netboot-cni for `pod` inside this node.
    pub fn call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall {
        self.node.plugin_call(command, pod, conf)
    }

    /// A call with no pod (STATUS, GC): no container id, netns or ifname.
    pub fn bare_call(&self, command: &str, conf: &Value) -> PluginCall {
        PluginCall {
            command: command.into(),
            stdin: conf.to_string(),
            host_netns: Some(self.path().to_owned()),
            ifname: String::new(),
            ..PluginCall::default()
        }
    }

    /// Run netboot-cni as described by `call` (which must run in the node).
    pub fn run(&self, call: &PluginCall) -> PluginOutput {
        assert!(
            call.host_netns.is_some(),
            "netboot-cni must run inside a node netns"
        );
        run_plugin(&plugin_bin(), call)
    }

    /// ADD `pod` and return the result; panics on failure.
    #[track_caller]
    pub fn add(&self, pod: &Netns, conf: &Value) -> Value {
        self.run(&self.call("ADD", pod, conf)).expect_ok()
    }

    /// DEL `pod`; panics on failure.
    #[track_caller]
    pub fn del(&self, pod: &Netns, conf: &Value) {
        self.run(&self.call("DEL", pod, conf)).expect_ok();
    }

    /// IP files in host-local's store for [`NET`].
    pub fn allocations(&self) -> Vec<String> {
        list_names(&self.ipam_dir.join(NET))
            .into_iter()
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// netboot's record files (`<dataDir>/.netboot/*`, temp files
    /// included), without native mode's node-wide `node.lock` and
    /// `node-setup.json` (they belong to the node, not to an attachment).
    pub fn records(&self) -> Vec<String> {
        list_names(&self.data_dir.join(".netboot"))
            .into_iter()
            .filter(|n| n != "node.lock" && n != "node-setup.json")
            .collect()
    }

    /// flannel scratch files (regular files directly in `dataDir`).
    pub fn scratch_files(&self) -> Vec<String> {
        list_names(&self.data_dir)
            .into_iter()
            .filter(|n| self.data_dir.join(n).is_file())
            .collect()
    }

    /// The record of `pod`'s attachment (on eth0), parsed.
    #[track_caller]
    pub fn record(&self, pod: &Netns) -> Value {
        let path = self.record_path(&cid(pod));
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn record_path(&self, cid: &str) -> PathBuf {
        self.data_dir
            .join(".netboot")
            .join(format!("{cid}@eth0.json"))
    }

    /// Everything that must be gone once `ids` are detached: veths, IP
    /// files, scratch files, records and iptables rules naming the ids
    /// (per-container `CNI-DN-` chains included).
    #[track_caller]
    pub fn assert_clean(&self, ids: &[&str]) {
        // A deleted pod netns takes its veth peer with it, asynchronously.
        let veths = retry(50, Duration::from_millis(100), || {
            let v = self.veths();
            v.is_empty().then_some(v)
        })
        .unwrap_or_else(|| self.veths());
        assert_eq!(veths, Vec::<String>::new(), "veths left on node");
        assert_eq!(self.allocations(), Vec::<String>::new(), "IPs left");
        assert_eq!(self.records(), Vec::<String>::new(), "records left");
        assert_eq!(self.scratch_files(), Vec::<String>::new(), "scratch left");
        let rules = self.iptables_save();
        for id in ids {
            assert!(
                !rules.contains(id),
                "iptables rules for {id} left:\n{rules}"
            );
        }
        assert!(!rules.contains("CNI-DN-"), "DNAT chain left:\n{rules}");
    }

    /// Everything observable about the node: links, addresses, routes,
    /// iptables and every file under its temp dir (path → content).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            links: strip_volatile(self.ip_json(&["link", "show"])),
            addrs: strip_volatile(self.ip_json(&["addr", "show"])),
            routes: self.ip_json(&["route", "show", "table", "all"]),
            neigh: configured_neighbours(self.ip_json(&["neigh", "show"])),
            iptables: filter_iptables(&self.iptables_save()),
            nft: filter_nft(&self.node.nft_ruleset()),
            files: tree(self.dir())
                .into_iter()
                .map(|(p, b)| (p, String::from_utf8_lossy(&b).into_owned()))
                .collect(),
        }
    }

    /// [`PluginNode::snapshot`] without the round-robin hints
    /// (`last_reserved_ip.*`), which a rolled-back or undone allocation
    /// legitimately advances, as host-local's does.
    /// Carrier state is dropped as well: the bridge loses its carrier
    /// (and its routes get `linkdown`) some time after its last port went,
    /// and IPv6 DAD on it finishes on its own (link-local routes).
    pub fn stable_snapshot(&self) -> Snapshot {
        let mut s = self.snapshot();
        s.files
            .retain(|p, _| !p.to_string_lossy().contains("last_reserved_ip."));
        for v in [&mut s.links, &mut s.addrs, &mut s.routes] {
            strip_carrier(v);
        }
        // The local route of the bridge's IPv6 link-local address appears
        // when DAD completes, which needs carrier.
        if let Value::Array(routes) = &mut s.routes {
            routes.retain(|r| !r["dst"].as_str().is_some_and(|d| d.starts_with("fe80::")));
        }
        s
    }

    /// The diff of the node's [`PluginNode::stable_snapshot`] against
    /// `baseline`, empty when they agree. Waits up to 2 s for them to
    /// agree first: a deleted netns takes its veth peer with it
    /// asynchronously.
    pub fn settled_diff(&self, baseline: &Snapshot) -> String {
        retry(20, Duration::from_millis(100), || {
            baseline
                .diff(&self.stable_snapshot())
                .is_empty()
                .then_some(())
        })
        .map(|()| String::new())
        .unwrap_or_else(|| baseline.diff(&self.stable_snapshot()))
    }
}

fn strip_carrier(v: &mut Value) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(strip_carrier),
        Value::Object(m) => {
            m.remove("operstate");
            m.remove("tentative");
            if let Some(Value::Array(flags)) = m.get_mut("flags") {
                flags.retain(|f| {
                    !matches!(f.as_str(), Some("NO-CARRIER" | "LOWER_UP" | "linkdown"))
                });
            }
            m.values_mut().for_each(strip_carrier);
        }
        _ => {}
    }
}

/// See [`PluginNode::snapshot`].
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub links: Value,
    pub addrs: Value,
    pub routes: Value,
    /// `ip -j neigh` entries someone configured (PERMANENT, NOARP); the
    /// kernel's own cache entries (REACHABLE, STALE, FAILED, ...) come and
    /// go with traffic and are no plugin's state.
    pub neigh: Value,
    pub iptables: String,
    /// `nft list ruleset` without counters (native mode's rules live here).
    pub nft: String,
    /// path → content (lossy UTF-8, so a failed comparison is readable).
    pub files: BTreeMap<PathBuf, String>,
}

impl Snapshot {
    /// What differs from `after`, per part, as `-`/`+` lines (pretty JSON
    /// for the `ip -j` parts, lines for the rule listings, one line per
    /// file). Empty when the snapshots are equal.
    pub fn diff(&self, after: &Snapshot) -> String {
        let json = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let files = |s: &Snapshot| {
            s.files
                .iter()
                .map(|(p, c)| format!("{} = {c:?}", p.display()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let parts = [
            ("ip -j link", json(&self.links), json(&after.links)),
            ("ip -j addr", json(&self.addrs), json(&after.addrs)),
            ("ip -j route", json(&self.routes), json(&after.routes)),
            ("ip -j neigh", json(&self.neigh), json(&after.neigh)),
            (
                "iptables-save",
                self.iptables.clone(),
                after.iptables.clone(),
            ),
            ("nft list ruleset", self.nft.clone(), after.nft.clone()),
            ("files", files(self), files(after)),
        ];
        let mut out = String::new();
        for (name, a, b) in parts {
            if a != b {
                out.push_str(&format!("--- {name}\n{}", line_diff(&a, &b)));
            }
        }
        out
    }
}

/// Lines only in `a` (`-`) and only in `b` (`+`), as multisets, in order.
fn line_diff(a: &str, b: &str) -> String {
    let mut only_b: Vec<&str> = b.lines().collect();
    let mut out = String::new();
    for l in a.lines() {
        match only_b.iter().position(|x| *x == l) {
            Some(i) => {
                only_b.remove(i);
            }
            None => out.push_str(&format!("- {l}\n")),
        }
    }
    for l in only_b {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// The configured entries of `ip -j neigh` (see [`Snapshot::neigh`]).
fn configured_neighbours(mut v: Value) -> Value {
    if let Value::Array(entries) = &mut v {
        entries.retain(|e| {
            e["state"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| matches!(s.as_str(), Some("PERMANENT" | "NOARP")))
        });
    }
    v
}

/// Link statistics and timers change on their own; drop them.
fn strip_volatile(mut v: Value) -> Value {
    for o in v.as_array_mut().into_iter().flatten() {
        if let Value::Object(m) = o {
            m.remove("stats64");
            m.remove("stats");
            for a in m
                .get_mut("addr_info")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Value::Object(a) = a {
                    a.remove("valid_life_time");
                    a.remove("preferred_life_time");
                }
            }
        }
    }
    v
}

/// iptables-save without comments and packet counters.
fn filter_iptables(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            if l.starts_with(':') {
                l.split(" [").next().unwrap_or(l).to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `nft list ruleset` without packet/byte counters.
fn filter_nft(s: &str) -> String {
    s.lines()
        .map(|l| match l.find("counter packets ") {
            Some(i) => {
                let rest = &l[i..];
                // "counter packets N bytes M" is five words.
                let tail: Vec<&str> = rest.split_whitespace().skip(5).collect();
                format!("{}counter {}", &l[..i], tail.join(" "))
            }
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every file under `dir` (recursively) with its content; directories are
/// listed with empty content and a trailing `/`.
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.insert(p.join(""), Vec::new());
            out.extend(tree(&p));
        } else {
            out.insert(p.clone(), fs::read(&p).unwrap_or_default());
        }
    }
    out
}

/// File names in `dir` (empty when it does not exist), sorted.
pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// The per-version shape of an ADD result for `pod` on `node` (bridge
/// and native mode alike): the version echoed, 0.x `version` on IPs, the
/// gateway, `interface` pointing at the pod's eth0 with its sandbox, a MAC
/// on every interface, the cluster and default routes, and the addresses
/// really on the pod's eth0.
#[track_caller]
pub fn assert_result_shape(v: &str, res: &Value, pod: &Netns, node: &PluginNode) {
    assert_eq!(
        res["cniVersion"], v,
        "result version must echo the config's"
    );
    let ips = res["ips"].as_array().expect("ips");
    assert_eq!(ips.len(), 1, "{res}");
    if v.starts_with("0.") {
        assert_eq!(ips[0]["version"], "4", "{v} ips carry version: {res}");
    } else {
        assert!(
            ips[0].get("version").is_none(),
            "{v} ips have no version: {res}"
        );
    }
    assert_eq!(ips[0]["gateway"], node.gateway().as_str(), "{res}");
    let ifaces = res["interfaces"].as_array().expect("interfaces");
    let idx = ips[0]["interface"].as_u64().expect("ips[0].interface") as usize;
    assert_eq!(ifaces[idx]["name"], "eth0", "{res}");
    assert_eq!(
        ifaces[idx]["sandbox"],
        pod.path().to_str().unwrap(),
        "{res}"
    );
    for i in ifaces {
        let mac = i["mac"].as_str().unwrap_or_default();
        assert_eq!(mac.len(), 17, "every interface needs a MAC (podman): {res}");
    }
    let routes = res["routes"].to_string();
    assert!(routes.contains(&node.env.network), "cluster route: {res}");
    assert!(routes.contains("0.0.0.0/0"), "default route: {res}");
    assert_eq!(pod.ipv4_addrs("eth0"), result_ips(res));
}

/// The built netboot-cni binary.
pub fn plugin_bin() -> PathBuf {
    bin_path("netboot-cni")
}

/// The container id [`Node::plugin_call`] uses for `pod`.
pub fn cid(pod: &Netns) -> String {
    format!("ctr-{}", pod.name())
}

/// `conf` with `extra`'s top-level keys added or replaced.
pub fn merged(conf: &Value, extra: Value) -> Value {
    let mut c = conf.clone();
    if let (Value::Object(m), Value::Object(e)) = (&mut c, extra) {
        m.extend(e);
    }
    c
}

/// `conf` with `prevResult` set (for CHECK and DEL).
pub fn with_prev(conf: &Value, result: &Value) -> Value {
    merged(conf, json!({ "prevResult": result }))
}

/// `conf` asking for one port mapping `host_port` → `pod_port`/tcp.
pub fn with_ports(conf: &Value, host_port: u16, pod_port: u16) -> Value {
    with_mappings(conf, json!([mapping(host_port, pod_port, "tcp")]))
}

/// One `portMappings` entry, `host_port` → `pod_port`/`protocol` on any
/// host address (add `hostIP` with [`merged`]).
pub fn mapping(host_port: u16, pod_port: u16, protocol: &str) -> Value {
    json!({"hostPort": host_port, "containerPort": pod_port, "protocol": protocol})
}

/// `conf` asking for the port mappings `list` (a JSON array).
pub fn with_mappings(conf: &Value, list: Value) -> Value {
    merged(conf, json!({"runtimeConfig": {"portMappings": list}}))
}

/// The CNI error code of a failed call; panics if it succeeded.
#[track_caller]
pub fn err_code(out: &PluginOutput) -> u64 {
    let e = out.expect_err();
    e["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("error without code: {e}"))
}

/// `msg` and `details` of a failed call, joined, for "names the problem".
#[track_caller]
pub fn err_text(out: &PluginOutput) -> String {
    let e = out.expect_err();
    format!(
        "{} {}",
        e["msg"].as_str().unwrap_or_default(),
        e["details"].as_str().unwrap_or_default()
    )
}

/// Serve `text` on TCP `port` inside `pod` (killed with the pod guard).
pub fn serve(pod: &Netns, port: u16, text: &str) {
    let listen = format!("TCP-LISTEN:{port},fork,reuseaddr");
    pod.spawn(&["socat", &listen, &format!("SYSTEM:echo {text}")]);
}

/// Connect from `from` to `ip:port` and return what the service said,
/// retrying for ~5 s (the server may still be starting).
pub fn fetch(from: &Netns, ip: &str, port: u16) -> Option<String> {
    let target = format!("TCP:{ip}:{port},connect-timeout=2");
    retry(25, Duration::from_millis(200), || {
        let out = from.exec(&["socat", "-u", &target, "STDOUT"]);
        (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
    })
}

/// One connection attempt from `from` to `ip:port` (no retries): what
/// the service said, if anything.
pub fn fetch_once(from: &Netns, ip: &str, port: u16) -> Option<String> {
    let target = format!("TCP:{ip}:{port},connect-timeout=1");
    let out = from.exec(&["socat", "-u", &target, "STDOUT"]);
    (out.success() && !out.stdout.is_empty()).then(|| out.stdout.trim().to_owned())
}

/// A temp directory used as CNI_PATH, holding symlinks to chosen reference
/// plugins and stand-in scripts. Removed on drop.
#[derive(Debug)]
pub struct CniPathDir {
    dir: tempfile::TempDir,
}

impl Default for CniPathDir {
    fn default() -> Self {
        Self::new()
    }
}

impl CniPathDir {
    pub fn new() -> Self {
        CniPathDir {
            dir: tempfile::Builder::new()
                .prefix("netboot-cnipath-")
                .tempdir()
                .expect("create CNI_PATH temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The CNI_PATH string.
    pub fn cni_path(&self) -> String {
        self.path().to_string_lossy().into_owned()
    }

    /// Symlink `/usr/lib/cni/<name>` (or any absolute `target`) as `name`.
    pub fn link(&self, name: &str, target: &Path) -> &Self {
        std::os::unix::fs::symlink(target, self.path().join(name)).expect("symlink plugin");
        self
    }

    /// Symlink reference plugins by name.
    pub fn reference(&self, names: &[&str]) -> &Self {
        for n in names {
            self.link(n, &Path::new(crate::REFERENCE_CNI_PATH).join(n));
        }
        self
    }

    /// Write an executable shell script `name`.
    pub fn script(&self, name: &str, body: &str) -> &Self {
        let p = self.path().join(name);
        fs::write(&p, body).expect("write script");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod script");
        self
    }
}

/// A recorder plugin script: records every invocation under `log_dir`
/// as `<n>.argv`, `<n>.env` (sorted `env`), `<n>.stdin`, `<n>.cmd` (n = 1,
/// 2, ...). VERSION answers every version. For other commands, if
/// `<log_dir>/fail-<CMD>` exists its content is printed and the script
/// exits 1; otherwise `<log_dir>/result-<CMD>` is printed if it exists.
/// Every call writes `recorder stderr <CMD>` to stderr.
pub fn recording_script(log_dir: &Path) -> String {
    let log = log_dir.display();
    format!(
        r#"#!/bin/sh
LOG='{log}'
if [ "$CNI_COMMAND" = VERSION ]; then
  echo '{{"cniVersion":"1.1.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}}'
  exit 0
fi
n=$(( $(cat "$LOG/seq" 2>/dev/null || echo 0) + 1 ))
echo $n > "$LOG/seq"
echo "$0 $*" > "$LOG/$n.argv"
env | sort > "$LOG/$n.env"
cat > "$LOG/$n.stdin"
echo "$CNI_COMMAND" > "$LOG/$n.cmd"
echo "recorder stderr $CNI_COMMAND" >&2
if [ -f "$LOG/fail-$CNI_COMMAND" ]; then
  cat "$LOG/fail-$CNI_COMMAND"
  exit 1
fi
if [ -f "$LOG/result-$CNI_COMMAND" ]; then
  cat "$LOG/result-$CNI_COMMAND"
fi
exit 0
"#
    )
}

/// One invocation recorded by [`recording_script`].
#[derive(Debug, Clone)]
pub struct RecordedCall {
    pub command: String,
    pub argv: String,
    pub env: BTreeMap<String, String>,
    pub stdin: Value,
}

/// The invocations recorded in `log_dir`, in order.
pub fn recorded_calls(log_dir: &Path) -> Vec<RecordedCall> {
    let mut out = Vec::new();
    for n in 1.. {
        let f = |ext: &str| fs::read_to_string(log_dir.join(format!("{n}.{ext}")));
        let Ok(cmd) = f("cmd") else { break };
        let env = f("env")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let stdin = f("stdin").unwrap_or_default();
        out.push(RecordedCall {
            command: cmd.trim().to_owned(),
            argv: f("argv").unwrap_or_default().trim().to_owned(),
            env,
            stdin: serde_json::from_str(&stdin).unwrap_or(Value::String(stdin)),
        });
    }
    out
}

/// One route as `dst via gw` (`dst` alone without a gateway), from a JSON
/// object whose gateway key is `gw_key` (`ip -j`: "gateway"; a CNI
/// result: "gw").
pub fn route_line(r: &Value, gw_key: &str) -> String {
    let dst = r["dst"].as_str().unwrap_or("?");
    match r[gw_key].as_str() {
        Some(gw) => format!("{dst} via {gw}"),
        None => dst.to_owned(),
    }
}

/// The IPv4 routes in `ns` as `dst via gw` strings (`default via …`).
pub fn routes(ns: &Netns) -> Vec<String> {
    ns.ip_json(&["-4", "route", "show"])
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| route_line(r, "gateway"))
        .collect()
}
