//! A multi-node flannel cluster made of namespaces, for `netboot agent`
//! tests: an underlay bridge inside its own netns, nodes and etcd members
//! attached to it by veths (192.168.100.0/24, only inside our namespaces),
//! etcd started inside its member's netns, agents started inside their
//! node's netns, pods attached with netboot-cni in native mode.
//!
//! Nothing touches the root namespace: every `ip` command runs through
//! `nsenter --net=` into a namespace created here. Processes (etcd, agents)
//! are killed by PID on drop, then the namespaces are deleted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::exec::{nsenter, run, CmdOutput};
use crate::netns::Netns;
use crate::plugin::{run_plugin, PluginCall};

/// First three octets of the underlay (a private test range).
pub const UNDERLAY: &str = "192.168.100";
/// Key prefix (flanneld's default).
pub const PREFIX: &str = "/coreos.com/network";
/// The network config the tests store.
pub const CONFIG: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"vxlan"}}"#;

fn sigterm_then_kill(child: &mut Child, grace: Duration) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Poll `f` every 200 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The L2 segment: bridge `br0` inside a dedicated namespace.
pub struct Underlay {
    pub ns: Netns,
}

impl Default for Underlay {
    fn default() -> Self {
        Self::new()
    }
}

impl Underlay {
    pub fn new() -> Underlay {
        let ns = Netns::new("ul");
        ns.exec(&["ip", "link", "add", "br0", "type", "bridge"])
            .expect_ok();
        ns.exec(&["ip", "link", "set", "br0", "up"]).expect_ok();
        Underlay { ns }
    }

    /// A new namespace with `eth0` = 192.168.100.`host`/24 on the bridge.
    pub fn attach(&self, tag: &str, host: u8) -> Netns {
        let ns = Netns::new(tag);
        let port = format!("ul{host}");
        self.ns.add_veth_to(&port, &ns);
        self.ns
            .exec(&["ip", "link", "set", &port, "master", "br0", "up"])
            .expect_ok();
        let addr = format!("{UNDERLAY}.{host}/24");
        ns.exec(&["ip", "addr", "add", &addr, "dev", "eth0"])
            .expect_ok();
        ns.exec(&["ip", "link", "set", "eth0", "up"]).expect_ok();
        ns
    }
}

/// One etcd member in its own namespace on the underlay.
pub struct Member {
    pub name: String,
    pub ip: String,
    pub ns: Netns,
    dir: tempfile::TempDir,
    child: Option<Child>,
    initial_cluster: String,
    /// Cut off the underlay by [`Member::cut_off`].
    cut: bool,
    /// Stopped by [`Member::pause`].
    paused: bool,
}

impl Member {
    pub fn url(&self) -> String {
        format!("http://{}:2379", self.ip)
    }

    fn start(&mut self, state: &str) {
        let peer = format!("http://{}:2380", self.ip);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let mut cmd = nsenter(self.ns.path(), &["etcd"]);
        cmd.arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={}", self.url()))
            .arg(format!("--advertise-client-urls={}", self.url()))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg(format!("--initial-cluster-state={state}"))
            .arg("--initial-cluster-token=nbt-agent")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(
            cmd.spawn()
                .expect("start etcd (apt-get install etcd-server)"),
        );
    }

    /// Freeze this member (SIGSTOP to its PID): its sockets stay open and
    /// the kernel still accepts and acknowledges what is sent to it, but
    /// nothing is answered, as with a process wedged or a VM paused.
    pub fn pause(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
        self.paused = true;
    }

    /// Undo [`Member::pause`] (SIGCONT).
    pub fn resume(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
        self.paused = false;
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let c = self.child.as_ref().expect("etcd member running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig)
            .expect("signal etcd");
    }

    /// Kill this member (SIGKILL to its PID): no goodbye to its clients or
    /// peers, as when its machine dies.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop this member (SIGTERM to its PID).
    pub fn stop(&mut self) {
        if self.paused {
            self.resume();
        }
        if let Some(mut c) = self.child.take() {
            sigterm_then_kill(&mut c, Duration::from_secs(5));
        }
    }

    /// Start it again with its data dir.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "member {} is running", self.name);
        self.start("existing");
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Cut this member off the network (its `eth0` down, in its own
    /// namespace): it keeps running, but packets to and from it vanish
    /// without a reset, as when its machine or switch port dies.
    pub fn cut_off(&mut self) {
        self.ns
            .exec(&["ip", "link", "set", "eth0", "down"])
            .expect_ok();
        self.cut = true;
    }

    /// Undo [`Member::cut_off`].
    pub fn reconnect(&mut self) {
        self.ns
            .exec(&["ip", "link", "set", "eth0", "up"])
            .expect_ok();
        self.cut = false;
    }

    /// Running, reachable and not paused: `etcdctl` can use it.
    pub fn serving(&self) -> bool {
        self.running() && !self.cut && !self.paused
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop();
    }
}

/// etcd with 1 or 3 members, each in its own namespace (192.168.100.201+).
pub struct EtcdCluster {
    pub members: Vec<Member>,
}

impl EtcdCluster {
    pub fn start(ul: &Underlay, n: usize) -> EtcdCluster {
        let ips: Vec<String> = (0..n).map(|i| format!("{UNDERLAY}.{}", 201 + i)).collect();
        let initial: Vec<String> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| format!("m{i}=http://{ip}:2380"))
            .collect();
        let mut members = Vec::new();
        for (i, ip) in ips.iter().enumerate() {
            members.push(Member {
                name: format!("m{i}"),
                ip: ip.clone(),
                ns: ul.attach(&format!("etcd{i}"), 201 + i as u8),
                dir: tempfile::tempdir().expect("tempdir"),
                child: None,
                initial_cluster: initial.join(","),
                cut: false,
                paused: false,
            });
        }
        for m in &mut members {
            m.start("new");
        }
        let c = EtcdCluster { members };
        c.wait_healthy();
        c
    }

    /// Every running member answers `endpoint health`.
    pub fn wait_healthy(&self) {
        let ok = wait_until(Duration::from_secs(30), || {
            self.members
                .iter()
                .filter(|m| m.serving())
                .all(|m| self.ctl_at(m, &["endpoint", "health"]).success())
        });
        if !ok {
            let logs: Vec<String> = self.members.iter().map(|m| m.log()).collect();
            panic!(
                "etcd not healthy after 30 s; logs:\n{}",
                logs.join("\n----\n")
            );
        }
    }

    /// Client URL of the member that leads now, if one does.
    pub fn leader(&self) -> Option<String> {
        let out = self.ctl(&["endpoint", "status", "--cluster", "-w", "json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v.as_array()?.iter().find_map(|e| {
            let st = &e["Status"];
            (st["leader"].as_u64().is_some() && st["leader"] == st["header"]["member_id"])
                .then(|| e["Endpoint"].as_str().map(str::to_string))
                .flatten()
        })
    }

    /// `--etcd` value: every member's client URL.
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(Member::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    fn ctl_at(&self, m: &Member, args: &[&str]) -> CmdOutput {
        let mut cmd = nsenter(m.ns.path(), &["etcdctl"]);
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", m.url()))
            .args(args);
        run(cmd, None, Duration::from_secs(15))
    }

    /// `etcdctl` against the first running, reachable member.
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        let m = self
            .members
            .iter()
            .find(|m| m.serving())
            .expect("a running etcd member");
        self.ctl_at(m, args)
    }

    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]).expect_ok();
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ctl(&["get", "--print-value-only", key]).expect_ok();
        let v = out.stdout.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_string())
    }

    pub fn delete(&self, key: &str) {
        self.ctl(&["del", key]).expect_ok();
    }

    /// Keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self
            .ctl(&["get", "--prefix", "--keys-only", prefix])
            .expect_ok();
        out.stdout
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Put with a fresh etcd lease of `ttl` seconds.
    pub fn put_with_lease(&self, key: &str, value: &str, ttl: u32) {
        crate::etcd::put_with_lease(|args| self.ctl(args), key, value, ttl);
    }

    /// Seconds left on the etcd lease attached to `key` (`None`: no key or
    /// no lease).
    pub fn key_ttl(&self, key: &str) -> Option<i64> {
        let out = self.ctl(&["get", key, "-w", "json"]).expect_ok();
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        let lease = v["kvs"][0]["lease"].as_i64()?;
        let out = self
            .ctl(&["lease", "timetolive", &format!("{lease:x}"), "-w", "json"])
            .expect_ok();
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["ttl"].as_i64()
    }
}

/// A node: a namespace on the underlay running `netboot agent`.
pub struct AgentNode {
    pub ns: Netns,
    pub ip: String,
    pub dir: tempfile::TempDir,
    agent: Option<Child>,
    pods: Vec<Netns>,
    /// CNI container ID of each pod.
    pod_ids: Vec<String>,
}

impl AgentNode {
    /// The agent's `/metrics` text (empty if it does not answer), read
    /// from inside its node on `port` (its `--healthz-port`).
    pub fn metrics(&self, port: u16) -> String {
        let url = format!("http://127.0.0.1:{port}/metrics");
        let out = in_ns(self.ns.path(), &["curl", "-sf", "-m", "5", &url])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// One unlabelled sample of [`AgentNode::metrics`].
    pub fn metric(&self, port: u16, name: &str) -> Option<f64> {
        self.metrics(port)
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn new(ul: &Underlay, tag: &str, host: u8) -> AgentNode {
        AgentNode {
            ns: ul.attach(tag, host),
            ip: format!("{UNDERLAY}.{host}"),
            dir: tempfile::tempdir().expect("tempdir"),
            agent: None,
            pods: Vec::new(),
            pod_ids: Vec::new(),
        }
    }

    pub fn subnet_file(&self) -> PathBuf {
        self.dir.path().join("run/flannel/subnet.env")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `netboot agent --etcd <endpoints> --iface eth0 …` in the node netns,
    /// stderr appended to `agent.log` (several agents append to one log).
    pub fn agent_command(&self, endpoints: &str, extra: &[&str]) -> Command {
        let bin = crate::bin_path("netboot");
        let bin = bin.to_string_lossy();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let sf = self.subnet_file();
        let mut cmd = nsenter(self.ns.path(), &[&bin, "agent"]);
        cmd.arg(format!("--etcd={endpoints}"))
            .arg("--iface=eth0")
            .arg(format!("--subnet-file={}", sf.display()))
            .arg("--etcd-timeout=3")
            .args(extra)
            .env_remove("NETBOOT_ETCD_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// Start an agent process in the node netns that is not (yet) the
    /// node's agent: a duplicate, or one of two racing for the lock. It is
    /// killed when the returned guard drops, unless adopted.
    pub fn spawn_agent(&self, endpoints: &str, extra: &[&str]) -> AgentProcess {
        let child = self
            .agent_command(endpoints, extra)
            .spawn()
            .expect("start netboot agent");
        AgentProcess { child: Some(child) }
    }

    /// Start the node's agent (see [`AgentNode::agent_command`]). Returns
    /// its PID.
    pub fn start_agent(&mut self, endpoints: &str, extra: &[&str]) -> u32 {
        self.start_agent_with_env(endpoints, extra, &[])
    }

    /// [`AgentNode::start_agent`] with extra environment, e.g.
    /// `NETBOOT_LOCK_DIR` pointing at the node's own "/run".
    pub fn start_agent_with_env(
        &mut self,
        endpoints: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> u32 {
        assert!(self.agent.is_none(), "agent already running");
        let child = self
            .agent_command(endpoints, extra)
            .envs(env.iter().copied())
            .spawn()
            .expect("start netboot agent");
        self.adopt_agent(AgentProcess { child: Some(child) })
    }

    /// Make `p` the node's agent (stopped by [`AgentNode::stop_agent`],
    /// killed on drop). Returns its PID.
    pub fn adopt_agent(&mut self, mut p: AgentProcess) -> u32 {
        assert!(self.agent.is_none(), "agent already running");
        let child = p.child.take().expect("a process");
        let pid = child.id();
        self.agent = Some(child);
        pid
    }

    /// PID of the node's agent, if one runs.
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// Is the node's agent alive (started, and neither exited nor a
    /// zombie)?
    pub fn agent_alive(&self) -> bool {
        self.agent_pid().is_some_and(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|st| {
                    // "pid (comm) S …": the state follows the last ')'.
                    let rest = &st[st.rfind(')')? + 1..];
                    rest.split_whitespace().next().map(|s| s != "Z")
                })
                .unwrap_or(false)
        })
    }

    /// SIGKILL the agent (by PID) and reap it: no chance to clean up, as
    /// when it crashes or is OOM-killed.
    pub fn kill_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the agent (by PID) and wait for it.
    pub fn stop_agent(&mut self) {
        if let Some(mut c) = self.agent.take() {
            sigterm_then_kill(&mut c, Duration::from_secs(5));
        }
    }

    /// A power cut: SIGKILL the agent (by PID), delete the node's
    /// namespace (its links, routes, neighbours and firewall rules go with
    /// it; so does the underlay veth), and give the node a fresh namespace
    /// on the underlay with the same address, as the machine has after
    /// booting. The pods' namespaces are the caller's to delete first; the
    /// files in `dir` are left alone (the caller clears what stands for
    /// `/run`).
    pub fn power_cycle(&mut self, ul: &Underlay, tag: &str, host: u8) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.pods.clear();
        // A deleted namespace is torn down asynchronously and its underlay
        // port with it; the new one needs that name now: delete it first.
        ul.ns
            .exec(&["ip", "link", "del", &format!("ul{host}")])
            .expect_ok();
        drop(std::mem::replace(&mut self.ns, Netns::new("boot")));
        self.ns = ul.attach(tag, host);
        assert_eq!(self.ip, format!("{UNDERLAY}.{host}"), "same address");
    }

    /// Has the agent exited? Its status if so.
    pub fn agent_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.agent
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait for subnet.env; returns FLANNEL_SUBNET.
    #[track_caller]
    pub fn wait_subnet(&self, timeout: Duration) -> String {
        let mut subnet = None;
        let ok = wait_until(timeout, || {
            subnet = std::fs::read_to_string(self.subnet_file())
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
                        .map(str::to_string)
                });
            subnet.is_some()
        });
        assert!(
            ok,
            "no subnet.env from the agent on {}:\n{}",
            self.ip,
            self.log()
        );
        subnet.unwrap()
    }

    /// The lease key of this node's subnet (`10.2.3.1/24` → `…/10.2.3.0-24`).
    pub fn lease_key(&self) -> String {
        let s = self.wait_subnet(Duration::from_secs(1));
        let (ip, len) = s.split_once('/').unwrap();
        let mut o: Vec<u8> = ip.split('.').map(|p| p.parse().unwrap()).collect();
        o[3] -= 1;
        format!("{PREFIX}/subnets/{}.{}.{}.{}-{len}", o[0], o[1], o[2], o[3])
    }

    pub fn exec(&self, argv: &[&str]) -> CmdOutput {
        self.ns.exec(argv)
    }

    /// `netboot leave` in this node's netns.
    pub fn leave(&self, endpoints: &str) -> CmdOutput {
        let bin = crate::bin_path("netboot");
        let bin = bin.to_string_lossy();
        let sf = self.subnet_file();
        let mut cmd = nsenter(self.ns.path(), &[&bin, "leave"]);
        cmd.arg(format!("--etcd={endpoints}"))
            .arg(format!("--subnet-file={}", sf.display()))
            .arg("--iface=eth0")
            .arg("--etcd-timeout=5")
            .env_remove("NETBOOT_ETCD_PASSWORD");
        run(cmd, None, Duration::from_secs(60))
    }

    /// The netboot-cni native conf for this node.
    pub fn cni_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "cbr0",
            "type": "netboot-cni",
            "mode": "native",
            "subnetFile": self.subnet_file(),
            "dataDir": self.dir.path().join("cni-data"),
            "ipam": {"dataDir": self.dir.path().join("ipam")},
        })
    }

    /// A netboot-cni call for a pod on this node (native mode, empty
    /// CNI_PATH).
    fn pod_call(&self, command: &str, container_id: &str, pod: &Netns) -> PluginCall {
        let empty = self.dir.path().join("empty-cni-path");
        std::fs::create_dir_all(&empty).unwrap();
        PluginCall {
            command: command.into(),
            container_id: container_id.into(),
            netns: Some(pod.path().to_owned()),
            ifname: "eth0".into(),
            path: empty.display().to_string(),
            stdin: self.cni_conf().to_string(),
            host_netns: Some(self.ns.path().to_owned()),
            ..PluginCall::default()
        }
    }

    /// A pod (new netns) attached with netboot-cni (native mode, empty
    /// CNI_PATH); returns its index in [`AgentNode::pod`] and its first IP.
    #[track_caller]
    pub fn add_pod(&mut self, tag: &str) -> (usize, String) {
        let (i, ips) = self.add_pod_ips(tag);
        (i, ips[0].clone())
    }

    /// [`AgentNode::add_pod`] returning every IP of the ADD result, in its
    /// order (without prefix lengths).
    #[track_caller]
    pub fn add_pod_ips(&mut self, tag: &str) -> (usize, Vec<String>) {
        let pod = Netns::new(tag);
        let id = format!("{tag}-{}", self.pods.len());
        let call = self.pod_call("ADD", &id, &pod);
        let out = run_plugin(&crate::bin_path("netboot-cni"), &call);
        assert!(
            out.success(),
            "pod ADD on {} failed: {}",
            self.ip,
            out.output
        );
        let ips: Vec<String> = out
            .json
            .as_ref()
            .and_then(|j| j["ips"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|i| i["address"].as_str()?.split('/').next())
            .map(str::to_string)
            .collect();
        assert!(!ips.is_empty(), "no IP in ADD result: {}", out.output);
        self.pods.push(pod);
        self.pod_ids.push(id);
        (self.pods.len() - 1, ips)
    }

    /// CNI DEL of pod `i` (its namespace stays until the node is dropped).
    pub fn del_pod(&self, i: usize) -> Result<(), String> {
        let call = self.pod_call("DEL", &self.pod_ids[i], &self.pods[i]);
        let out = run_plugin(&crate::bin_path("netboot-cni"), &call);
        out.success()
            .then_some(())
            .ok_or_else(|| format!("pod DEL on {} failed: {}", self.ip, out.output))
    }

    pub fn pod(&self, i: usize) -> &Path {
        self.pods[i].path()
    }

    /// `ip -j <args>` in the node netns.
    pub fn ip_json(&self, args: &[&str]) -> Value {
        self.ns.ip_json(args)
    }

    /// MAC of flannel.1, if present.
    pub fn vtep_mac(&self) -> Option<String> {
        let v = self.ns.exec(&["ip", "-j", "link", "show", "flannel.1"]);
        if !v.success() {
            return None;
        }
        let j: Value = serde_json::from_str(&v.stdout).ok()?;
        j[0]["address"].as_str().map(str::to_string)
    }

    /// Routes via flannel.1, as `dst` strings.
    pub fn flannel_routes(&self) -> Vec<String> {
        gw_routes(self, "flannel.1")
            .into_iter()
            .map(|r| r.dst)
            .collect()
    }

    /// `ip neigh` / `bridge fdb` text for flannel.1.
    pub fn neigh_text(&self) -> String {
        self.exec(&["ip", "neigh", "show", "dev", "flannel.1"])
            .stdout
    }

    pub fn fdb_text(&self) -> String {
        self.exec(&["bridge", "fdb", "show", "dev", "flannel.1"])
            .stdout
    }
}

impl Drop for AgentNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.agent.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An agent process started by [`AgentNode::spawn_agent`]; killed (by
/// PID) and reaped on drop unless adopted by its node.
pub struct AgentProcess {
    child: Option<Child>,
}

impl AgentProcess {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Its exit status once it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Ping `ip` from namespace `from` until it answers or `timeout` passes.
pub fn ping_within(from: &Path, ip: &str, timeout: Duration) -> bool {
    wait_until(timeout, || {
        run(
            nsenter(from, &["ping", "-n", "-q", "-c1", "-W1", ip]),
            None,
            Duration::from_secs(5),
        )
        .success()
    })
}

/// Send `payload` over TCP from `client` to a socat listener in `server`
/// (on `server_ip:port`); returns what the server received.
pub fn tcp_transfer(server: &Path, server_ip: &str, client: &Path, payload: &[u8]) -> Vec<u8> {
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("received");
    let mut listener = nsenter(
        server,
        &[
            "socat",
            "-u",
            "TCP-LISTEN:7777,reuseaddr",
            &format!("CREATE:{}", out_file.display()),
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start socat listener");
    std::thread::sleep(Duration::from_millis(300));
    let mut sent = None;
    for _ in 0..10 {
        let out = run(
            nsenter(
                client,
                &["socat", "-u", "STDIN", &format!("TCP:{server_ip}:7777")],
            ),
            Some(payload),
            Duration::from_secs(30),
        );
        if out.success() {
            sent = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let done = wait_until(Duration::from_secs(10), || {
        matches!(listener.try_wait(), Ok(Some(_)))
    });
    if !done {
        let _ = listener.kill();
        let _ = listener.wait();
    }
    assert!(
        sent.is_some(),
        "TCP client never connected to {server_ip}:7777"
    );
    std::fs::read(&out_file).unwrap_or_default()
}

/// `Command` for tests that want to run something in a namespace.
pub fn in_ns(ns: &Path, argv: &[&str]) -> Command {
    nsenter(ns, argv)
}

/// A route with a gateway: destination and gateway as `ip -j route` gives
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GwRoute {
    pub dst: String,
    pub gw: String,
    pub onlink: bool,
}

/// The gateway routes through `dev` in the main table.
pub fn gw_routes(node: &AgentNode, dev: &str) -> Vec<GwRoute> {
    let out = node.exec(&["ip", "-j", "route", "show", "dev", dev]);
    if !out.success() {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let gw = r["gateway"].as_str()?;
            let flags = r["flags"].as_array().cloned().unwrap_or_default();
            Some(GwRoute {
                dst: r["dst"].as_str()?.to_string(),
                gw: gw.to_string(),
                onlink: flags.iter().any(|f| f == "onlink"),
            })
        })
        .collect()
}
