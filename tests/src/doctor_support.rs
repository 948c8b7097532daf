//! `netboot doctor` test fixture: one node netns on an underlay with etcd,
//! a `netboot agent`, a conflist written by `netboot conflist` pointing at
//! the node's own subnet.env and state dirs, and netboot-cni in the node's
//! own bin dir. [`DoctorNode::doctor`] runs doctor inside the node netns
//! and returns its JSON report.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::{AgentNode, EtcdCluster, Underlay, CONFIG, PREFIX};
use crate::exec::{nsenter, run, CmdOutput};
use crate::netns::Netns;
use crate::plugin::{run_plugin, PluginCall};

/// What one doctor run said.
#[derive(Debug)]
pub struct Report {
    pub out: CmdOutput,
    pub json: Value,
}

impl Report {
    /// The finding of `check` (panics when doctor did not report it).
    #[track_caller]
    pub fn finding(&self, check: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["check"] == check))
            .unwrap_or_else(|| panic!("doctor reported no {check:?} check: {}", self.out))
    }

    /// `check` is a problem whose message contains every `needle`, doctor
    /// exited 1 and gave a fix.
    #[track_caller]
    pub fn assert_problem(&self, check: &str, needles: &[&str]) {
        let f = self.finding(check);
        let msg = f["message"].as_str().unwrap_or_default();
        assert_eq!(
            f["status"], "problem",
            "{check} should be a problem: {f}\n{}",
            self.out
        );
        for n in needles {
            assert!(msg.contains(n), "{check}: message lacks {n:?}: {msg}");
        }
        assert!(
            f["fix"].as_str().is_some_and(|s| !s.is_empty()),
            "{check}: no fix given: {f}"
        );
        assert_eq!(
            self.out.status.code(),
            Some(1),
            "doctor must exit 1: {}",
            self.out
        );
        eprintln!("[doctor] {check}: {msg}\n         fix: {}", f["fix"]);
    }

    /// Every check ok or skipped; exit 0.
    #[track_caller]
    pub fn assert_healthy(&self) {
        assert_eq!(
            self.json["healthy"], true,
            "doctor should find nothing: {}",
            self.out
        );
        assert!(self.out.success(), "{}", self.out);
    }
}

/// A node with etcd, an agent, a conflist and netboot-cni.
pub struct DoctorNode {
    pub node: AgentNode,
    pub etcd: EtcdCluster,
    pub ul: Underlay,
    pods: Vec<Option<Netns>>,
}

/// How [`DoctorNode::with`] sets the cluster up.
pub struct Setup<'a> {
    /// The network config stored in etcd.
    pub config: &'a str,
    /// Give the node (and its peers) IPv6 addresses on the underlay
    /// (`fd00:100::<host>/64`).
    pub ipv6: bool,
    /// Extra `netboot agent` arguments.
    pub agent_args: &'a [&'a str],
    /// Leases of other nodes (key under `subnets/`, value) written with a
    /// TTL before the agent starts: the agent programs routes to them.
    pub peers: &'a [(&'a str, &'a str)],
}

/// The node's IPv6 address on the underlay.
pub const NODE_IPV6: &str = "fd00:100::11";

impl Default for Setup<'_> {
    fn default() -> Self {
        Setup {
            config: CONFIG,
            ipv6: false,
            agent_args: &[],
            peers: &[],
        }
    }
}

impl DoctorNode {
    /// Underlay, one etcd member with the test network config, a node
    /// (192.168.100.`host`) whose agent has written subnet.env, the
    /// conflist and plugin. The agent keeps running until
    /// [`DoctorNode::stop_agent`].
    pub fn new(tag: &str) -> DoctorNode {
        DoctorNode::with(tag, &Setup::default())
    }

    /// [`DoctorNode::new`] with another config, IPv6 on the underlay,
    /// agent options and peer leases.
    pub fn with(tag: &str, s: &Setup) -> DoctorNode {
        let ul = Underlay::new();
        let etcd = EtcdCluster::start(&ul, 1);
        etcd.put(&format!("{PREFIX}/config"), s.config);
        for (key, value) in s.peers {
            etcd.put_with_lease(&format!("{PREFIX}/subnets/{key}"), value, 86_400);
        }
        let mut node = AgentNode::new(&ul, tag, 11);
        if s.ipv6 {
            let a = format!("{NODE_IPV6}/64");
            node.exec(&["ip", "-6", "addr", "add", &a, "dev", "eth0", "nodad"])
                .expect_ok();
        }
        node.start_agent(&etcd.endpoints(), s.agent_args);
        let d = DoctorNode {
            node,
            etcd,
            ul,
            pods: Vec::new(),
        };
        d.wait_env("FLANNEL_MTU");
        std::fs::create_dir_all(d.bin_dir()).expect("bin dir");
        std::fs::copy(
            crate::bin_path("netboot-cni"),
            d.bin_dir().join("netboot-cni"),
        )
        .expect("copy netboot-cni");
        d.write_conflist(&d.conflist_text(true));
        d
    }

    /// Wait (30 s at most) for the agent's subnet.env to hold `key`;
    /// returns its value.
    #[track_caller]
    pub fn wait_env(&self, key: &str) -> String {
        let mut value = None;
        let prefix = format!("{key}=");
        let ok = crate::cluster::wait_until(Duration::from_secs(30), || {
            value = std::fs::read_to_string(self.node.subnet_file())
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix(&prefix))
                        .map(str::to_string)
                });
            value.is_some()
        });
        assert!(ok, "no {key} in subnet.env:\n{}", self.node.log());
        value.expect("found")
    }

    /// This node's lease key: the one naming its public address.
    pub fn own_lease_key(&self) -> String {
        let me = [
            format!("\"PublicIP\":\"{}\"", self.node.ip),
            format!("\"PublicIPv6\":\"{NODE_IPV6}\""),
        ];
        self.etcd
            .keys(&format!("{PREFIX}/subnets/"))
            .into_iter()
            .find(|k| {
                self.etcd
                    .get(k)
                    .is_some_and(|v| me.iter().any(|m| v.contains(m)))
            })
            .unwrap_or_else(|| panic!("no lease of this node:\n{}", self.node.log()))
    }

    /// Rewrite subnet.env with `from` replaced by `to` (a mangled copy);
    /// returns the original text.
    pub fn edit_env(&self, from: &str, to: &str) -> String {
        let sf = self.node.subnet_file();
        let env = std::fs::read_to_string(&sf).expect("subnet.env");
        assert!(env.contains(from), "subnet.env lacks {from:?}: {env}");
        std::fs::write(&sf, env.replace(from, to)).expect("write subnet.env");
        env
    }

    /// Put subnet.env back as `text`.
    pub fn restore_env(&self, text: &str) {
        std::fs::write(self.node.subnet_file(), text).expect("write subnet.env");
    }

    /// `netboot status` (text) in the node netns.
    pub fn status(&self) -> CmdOutput {
        let bin = crate::bin_path("netboot");
        let mut cmd = nsenter(
            self.node.ns.path(),
            &[bin.to_str().expect("utf-8"), "status"],
        );
        cmd.arg(format!("--etcd={}", self.etcd.endpoints()))
            .arg("--etcd-timeout=2")
            .arg(format!(
                "--subnet-file={}",
                self.node.subnet_file().display()
            ))
            .arg(format!("--cni-bin-dir={}", self.bin_dir().display()))
            .env_remove("CNI_PATH")
            .env_remove("NETBOOT_ETCD_PASSWORD");
        run(cmd, None, Duration::from_secs(60)).expect_ok()
    }

    pub fn dir(&self) -> PathBuf {
        self.node.dir.path().to_owned()
    }
    pub fn bin_dir(&self) -> PathBuf {
        self.dir().join("cni-bin")
    }
    pub fn conf_dir(&self) -> PathBuf {
        self.dir().join("net.d")
    }
    pub fn conflist_path(&self) -> PathBuf {
        self.conf_dir().join("10-flannel.conflist")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir().join("cni")
    }
    /// host-local's store of network "cbr0".
    pub fn ipam_store(&self) -> PathBuf {
        self.data_dir().join("networks").join("cbr0")
    }

    /// `netboot conflist` output: pointed at this node's files when `own`,
    /// else the standard paths.
    pub fn conflist_text(&self, own: bool) -> String {
        let mut argv = vec![
            crate::bin_path("netboot").display().to_string(),
            "conflist".into(),
        ];
        if own {
            argv.push(format!(
                "--subnet-file={}",
                self.node.subnet_file().display()
            ));
            argv.push(format!("--cni-data-dir={}", self.data_dir().display()));
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        crate::exec::run_argv(&refs).expect_ok().stdout
    }

    pub fn write_conflist(&self, text: &str) {
        std::fs::create_dir_all(self.conf_dir()).expect("conf dir");
        std::fs::write(self.conflist_path(), text).expect("write conflist");
    }

    pub fn stop_agent(&mut self) {
        self.node.stop_agent();
    }

    /// `netboot doctor --json` in the node netns against `etcd` (default:
    /// the fixture's).
    pub fn doctor_at(&self, etcd: &str) -> Report {
        let bin = crate::bin_path("netboot");
        let mut cmd = nsenter(
            self.node.ns.path(),
            &[bin.to_str().expect("utf-8"), "doctor"],
        );
        cmd.arg(format!("--etcd={etcd}"))
            .arg("--etcd-timeout=2")
            .arg(format!(
                "--subnet-file={}",
                self.node.subnet_file().display()
            ))
            .arg(format!("--cni-conf-dir={}", self.conf_dir().display()))
            .arg(format!("--cni-bin-dir={}", self.bin_dir().display()))
            .arg("--json")
            .env_remove("CNI_PATH")
            .env_remove("NETBOOT_ETCD_PASSWORD");
        let out = run(cmd, None, Duration::from_secs(60));
        let json = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {out}"));
        Report { out, json }
    }

    pub fn doctor(&self) -> Report {
        self.doctor_at(&self.etcd.endpoints())
    }

    /// `ip ...` etc. in the node netns, which must succeed.
    #[track_caller]
    pub fn sh(&self, argv: &[&str]) -> CmdOutput {
        self.node.exec(argv).expect_ok()
    }

    /// [`DoctorNode::sh`] with the command written as one line, split on
    /// white space (`"ip route del 10.2.31.0/24"`).
    #[track_caller]
    pub fn sh_line(&self, line: &str) -> CmdOutput {
        self.node.ns.exec_line(line).expect_ok()
    }

    /// FLANNEL_SUBNET's network address (`10.2.7.1/24` → `10.2.7.0`).
    pub fn subnet_base(&self) -> String {
        let s = self.node.wait_subnet(Duration::from_secs(1));
        let ip = s.split('/').next().expect("ip");
        let mut o: Vec<&str> = ip.split('.').collect();
        o[3] = "0";
        o.join(".")
    }

    /// Address `host` of this node's subnet (`10.2.7.0/24`, 200 → `10.2.7.200`).
    pub fn host_ip(&self, host: u8) -> String {
        let base = self.subnet_base();
        let (net, _) = base.rsplit_once('.').expect("dotted quad");
        format!("{net}.{host}")
    }

    /// The plugin config of the conflist, as a runtime would send it.
    fn plugin_conf(&self) -> Value {
        let list: Value = serde_json::from_str(&self.conflist_text(true)).expect("conflist JSON");
        let mut conf = list["plugins"][0].clone();
        conf["name"] = json!("cbr0");
        conf["cniVersion"] = list["cniVersion"].clone();
        conf
    }

    fn call(&self, command: &str, id: &str, netns: Option<&Netns>) -> Value {
        self.call_with(command, id, netns, self.plugin_conf())
    }

    fn call_with(&self, command: &str, id: &str, netns: Option<&Netns>, conf: Value) -> Value {
        let empty = self.dir().join("empty-cni-path");
        std::fs::create_dir_all(&empty).expect("dir");
        let call = PluginCall {
            command: command.into(),
            container_id: id.into(),
            netns: netns.map(|n| n.path().to_owned()),
            ifname: "eth0".into(),
            path: empty.display().to_string(),
            stdin: conf.to_string(),
            host_netns: Some(self.node.ns.path().to_owned()),
            ..PluginCall::default()
        };
        let out = run_plugin(&crate::bin_path("netboot-cni"), &call);
        assert!(out.success(), "{command} {id} failed: {}", out.output);
        out.json.unwrap_or(Value::Null)
    }

    /// CNI ADD of a new pod netns through the conflist's plugin (auto mode
    /// with an empty CNI_PATH: native). Returns the pod's index.
    pub fn add_pod(&mut self, id: &str) -> usize {
        let pod = Netns::new("dpod");
        self.call("ADD", id, Some(&pod));
        self.pods.push(Some(pod));
        self.pods.len() - 1
    }

    /// [`DoctorNode::add_pod`] with `host_port`/tcp mapped to its port 80.
    pub fn add_pod_mapped(&mut self, id: &str, host_port: u16) -> usize {
        let pod = Netns::new("dpod");
        let mut conf = self.plugin_conf();
        conf["runtimeConfig"] = json!({"portMappings": [
            {"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}
        ]});
        self.call_with("ADD", id, Some(&pod), conf);
        self.pods.push(Some(pod));
        self.pods.len() - 1
    }

    /// Delete pod `i`'s netns without CNI DEL (what a crashed runtime or a
    /// reboot leaves: the IP file stays).
    pub fn lose_pod(&mut self, i: usize) -> String {
        let pod = self.pods[i].take().expect("pod still there");
        let name = pod.name().to_string();
        let out = crate::exec::run_argv(&["ip", "netns", "delete", &name]);
        assert!(out.success(), "{out}");
        // Deleted already: nothing left for its drop to do.
        std::mem::forget(pod);
        name
    }

    /// CNI DEL of `id` (no netns needed).
    pub fn del_pod(&self, id: &str) {
        self.call("DEL", id, None);
    }
}
