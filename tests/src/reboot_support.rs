//! The reboot simulation's node (`tests/tests/reboot_sim.rs`): a
//! [`Machine`] is an [`AgentNode`] whose directories stand for the real
//! node's `/run` (cleared at each power cycle), `/var/lib/cni` (kept),
//! `/etc/cni/net.d` and `/opt/cni/bin`, plus a boot id file the plugin,
//! doctor and GC read through `NETBOOT_BOOT_ID_FILE`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cluster::{ping_within, AgentNode, EtcdCluster, Underlay};
use crate::exec::{nsenter, run};
use crate::plugin::{first_ip, run_plugin, PluginCall, PluginOutput};
use crate::plugin_support::{err_code, err_text, merged, NET};
use crate::{bin_path, Netns};

/// Where netboot-cni and doctor read the boot id from in these tests.
pub const BOOT_ENV: &str = "NETBOOT_BOOT_ID_FILE";
/// host-local's (and native IPAM's) exhaustion message.
pub const EXHAUSTED: &str = "no IP addresses available in range set";

/// host-local's view: IP → owner line ("<id>\r\n<ifname>").
pub fn store(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.parse::<std::net::IpAddr>().ok()?;
                    Some((name, std::fs::read_to_string(e.path()).ok()?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A /28 per node: 13 pod IPs, so a few ghosts exhaust it.
pub const SMALL_CONFIG: &str =
    r#"{"Network":"10.2.0.0/16","SubnetLen":28,"Backend":{"Type":"vxlan"}}"#;
pub const CONVERGE: Duration = Duration::from_secs(30);

/// One simulated machine: `dir/run` stands for `/run` (subnet.env, the
/// agent's lock), `dir/var/lib/cni` for `/var/lib/cni` (records, host-local's
/// store), `dir/etc/cni/net.d` and `dir/opt/cni/bin` for the CNI config and
/// plugin, `dir/boot_id` for the kernel's boot id.
pub struct Machine {
    pub node: AgentNode,
    host: u8,
    tag: &'static str,
}

/// A pod of [`Machine::fill`].
pub struct Pod {
    pub id: String,
    pub ns: Netns,
    pub ip: String,
    pub native: bool,
}

impl Machine {
    pub fn new(ul: &Underlay, tag: &'static str, host: u8) -> Machine {
        let m = Machine {
            node: AgentNode::new(ul, tag, host),
            host,
            tag,
        };
        std::fs::write(m.boot_file(), "boot-1\n").unwrap();
        let bin = m.path("opt/cni/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(bin_path("netboot-cni"), bin.join("netboot-cni")).unwrap();
        let conflist = run(
            nsenter(
                m.node.ns.path(),
                &[
                    bin_path("netboot").to_str().unwrap(),
                    "conflist",
                    &format!("--subnet-file={}", m.node.subnet_file().display()),
                    &format!("--cni-data-dir={}", m.path("var/lib/cni").display()),
                ],
            ),
            None,
            Duration::from_secs(30),
        )
        .expect_ok()
        .stdout;
        std::fs::create_dir_all(m.path("etc/cni/net.d")).unwrap();
        std::fs::write(m.path("etc/cni/net.d/10-flannel.conflist"), conflist).unwrap();
        m
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.node.dir.path().join(rel)
    }
    pub fn boot_file(&self) -> PathBuf {
        self.path("boot_id")
    }
    pub fn ipam(&self) -> PathBuf {
        self.path("var/lib/cni/networks").join(NET)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.path("var/lib/cni/flannel")
    }

    /// The agent, with its lock under the node's own "/run".
    pub fn start_agent(&mut self, etcd: &EtcdCluster) -> String {
        let lock_dir = self.path("run/netboot");
        let lock_dir = lock_dir.to_str().unwrap().to_string();
        self.node.start_agent_with_env(
            &etcd.endpoints(),
            &[],
            &[("NETBOOT_LOCK_DIR", lock_dir.as_str())],
        );
        self.node.wait_subnet(CONVERGE)
    }

    /// The conflist's plugin config as a runtime sends it, in `mode`.
    pub fn conf(&self, mode: &str, version: &str) -> Value {
        let text = std::fs::read_to_string(self.path("etc/cni/net.d/10-flannel.conflist")).unwrap();
        let list: Value = serde_json::from_str(&text).unwrap();
        merged(
            &list["plugins"][0],
            json!({"name": list["name"], "cniVersion": version, "mode": mode}),
        )
    }

    pub fn call(
        &self,
        command: &str,
        id: &str,
        netns: Option<&Netns>,
        conf: &Value,
    ) -> PluginOutput {
        let call = PluginCall {
            command: command.into(),
            container_id: id.into(),
            netns: netns.map(|n| n.path().to_owned()),
            stdin: conf.to_string(),
            host_netns: Some(self.node.ns.path().to_owned()),
            ifname: if id.is_empty() {
                String::new()
            } else {
                "eth0".into()
            },
            env: vec![(BOOT_ENV.into(), self.boot_file().display().to_string())],
            ..PluginCall::default()
        };
        run_plugin(&bin_path("netboot-cni"), &call)
    }

    /// Fills the node's /28: 13 pods (every third in bridge mode through
    /// the reference plugins, the others native); a 14th is refused.
    pub fn fill(&self, round: usize) -> Vec<Pod> {
        let mut pods = Vec::new();
        for i in 0..13 {
            let native = i % 3 != 2;
            let id = format!("r{round}-{}{i}", if native { "n" } else { "b" });
            let ns = Netns::new("rbpod");
            let conf = self.conf(if native { "native" } else { "bridge" }, "1.0.0");
            let res = self.call("ADD", &id, Some(&ns), &conf).expect_ok();
            let ip = first_ip(&res);
            pods.push(Pod { id, ns, ip, native });
        }
        let extra = Netns::new("rbx");
        let out = self.call(
            "ADD",
            &format!("r{round}-x"),
            Some(&extra),
            &self.conf("native", "1.0.0"),
        );
        assert_eq!(err_code(&out), 11, "{}", out.output);
        assert!(err_text(&out).contains(EXHAUSTED), "{}", out.output);
        let ips: BTreeSet<&str> = pods.iter().map(|p| p.ip.as_str()).collect();
        assert_eq!(ips.len(), 13, "duplicate IPs");
        assert_eq!(store(&self.ipam()).len(), 13);
        pods
    }

    /// CNI GC keeping exactly `valid`.
    pub fn gc(&self, valid: &[&Pod]) {
        let list: Vec<Value> = valid
            .iter()
            .map(|p| json!({"containerID": p.id, "ifname": "eth0"}))
            .collect();
        let conf = merged(
            &self.conf("auto", "1.1.0"),
            json!({"cni.dev/valid-attachments": list}),
        );
        let out = self.call("GC", "", None, &conf);
        assert_eq!(out.expect_ok(), Value::Null, "GC prints nothing");
    }

    pub fn doctor(&self, etcd: &EtcdCluster) -> Value {
        let bin = bin_path("netboot");
        let mut cmd = nsenter(self.node.ns.path(), &[bin.to_str().unwrap(), "doctor"]);
        cmd.arg(format!("--etcd={}", etcd.endpoints()))
            .arg(format!(
                "--subnet-file={}",
                self.node.subnet_file().display()
            ))
            .arg(format!(
                "--cni-conf-dir={}",
                self.path("etc/cni/net.d").display()
            ))
            .arg(format!(
                "--cni-bin-dir={}",
                self.path("opt/cni/bin").display()
            ))
            .arg("--json")
            .env(BOOT_ENV, self.boot_file())
            .env_remove("CNI_PATH")
            .env_remove("NETBOOT_ETCD_PASSWORD");
        let out = run(cmd, None, Duration::from_secs(60));
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {out}"));
        assert_eq!(v["healthy"] == true, out.success(), "{out}");
        v
    }

    /// Power cut and boot: processes killed, pod and node namespaces gone,
    /// "/run" emptied, "/var/lib" kept; the agent started again.
    pub fn reboot(
        &mut self,
        ul: &Underlay,
        etcd: &EtcdCluster,
        pods: Vec<Pod>,
        new_boot: Option<&str>,
        expire_lease: bool,
    ) -> String {
        drop(pods);
        let lease = self.node.lease_key();
        self.node.power_cycle(ul, self.tag, self.host);
        if expire_lease {
            // Down longer than the lease TTL: etcd dropped the lease.
            etcd.delete(&lease);
        }
        std::fs::remove_dir_all(self.path("run")).unwrap();
        if let Some(b) = new_boot {
            std::fs::write(self.boot_file(), b).unwrap();
        }
        assert!(store(&self.ipam()).len() == 13, "/var/lib was not kept");
        self.start_agent(etcd)
    }

    /// Attachment records (`<id>@eth0.json`), by container ID.
    pub fn records(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.data_dir().join(".netboot"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        n.strip_suffix("@eth0.json").map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// flannel scratch files (bridge and native mode), by container ID.
    pub fn scratch(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.data_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Exactly `pods` hold IPs, records and scratch files; the node's
    /// firewall has the masquerade of exactly its bridge-mode pods (the
    /// reference plugin's per-container chains) and native mode's node rule.
    pub fn assert_exactly(&self, pods: &[Pod]) {
        let ids: BTreeSet<String> = pods.iter().map(|p| p.id.clone()).collect();
        let owners: BTreeSet<String> = store(&self.ipam())
            .values()
            .map(|o| o.split("\r\n").next().unwrap_or_default().to_string())
            .collect();
        assert_eq!(owners, ids, "IP owners");
        assert_eq!(self.records(), ids, "records");
        let bridged: BTreeSet<String> = pods
            .iter()
            .filter(|p| !p.native)
            .map(|p| p.id.clone())
            .collect();
        // Native mode writes one too, naming netboot-cni (hand-over to
        // the upstream flannel plugin).
        assert_eq!(self.scratch(), ids, "scratch files");
        let nat = self
            .node
            .exec(&["iptables-save", "-t", "nat"])
            .expect_ok()
            .stdout;
        let masq: BTreeSet<String> = nat
            .lines()
            .filter(|l| l.starts_with("-A POSTROUTING") && l.contains("CNI-"))
            .filter_map(|l| l.split("id: \\\"").nth(1))
            .filter_map(|r| r.split("\\\"").next())
            .map(str::to_string)
            .collect();
        assert_eq!(masq, bridged, "bridge masquerade rules:\n{nat}");
        let nft = self
            .node
            .exec(&["nft", "list", "table", "inet", "netboot"])
            .expect_ok()
            .stdout;
        let subnet = self.node.wait_subnet(Duration::from_secs(1));
        let (ip, _) = subnet.split_once('/').unwrap();
        let (base, last) = ip.rsplit_once('.').unwrap();
        let net = format!("{base}.{}/28", last.parse::<u8>().unwrap() & 0xf0);
        // Native mode installs it at its first ADD of this boot.
        if pods.iter().any(|p| p.native) {
            assert!(nft.contains(&net), "no node masquerade for {net}:\n{nft}");
        }
    }
}

/// The finding of check `name`.
pub fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no {name} check: {report}"))
}

/// The message of check `name`, whatever its status.
pub fn problem_or_ok<'a>(report: &'a Value, name: &str) -> &'a str {
    check(report, name)["message"].as_str().unwrap_or_default()
}

/// The message of `name`, which must be a problem whose fix says GC.
pub fn problem<'a>(report: &'a Value, name: &str) -> &'a str {
    let check = name;
    let f = self::check(report, name);
    assert_eq!(f["status"], "problem", "{check}: {f}");
    assert!(f["fix"].as_str().is_some_and(|s| s.contains("GC")), "{f}");
    f["message"].as_str().unwrap_or_default()
}

/// Traffic both ways between the first native and the first bridge pod of
/// `a` and the pod of `b`.
pub fn assert_cross_node(a: &[Pod], b: &AgentNode, b_ip: &str) {
    for p in [a.iter().find(|p| p.native), a.iter().find(|p| !p.native)] {
        let p = p.expect("both modes present");
        // After a new lease, node B's agent has to learn it first.
        assert!(
            ping_within(p.ns.path(), b_ip, CONVERGE),
            "{} -> {b_ip}",
            p.ip
        );
        assert!(ping_within(b.pod(0), &p.ip, CONVERGE), "{b_ip} -> {}", p.ip);
    }
}
