//! Fault trials of netboot-cni (`tests/tests/crash_trials.rs`,
//! `tests/tests/truncation_trials.rs`): a node set up for one mode, the
//! processes working for one attachment, and the ways a runtime (or the
//! machine) kills them.
//!
//! Modes: `native` (nothing on CNI_PATH), `bridge` (Debian's reference
//! `bridge`, `host-local` and `portmap`), `flannel` (the real upstream
//! flannel CNI plugin, built by [`crate::upstream::flannel_plugin`],
//! delegating to the reference `bridge` + `host-local`).

use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::netns::Netns;
use crate::node::SubnetEnv;
use crate::plugin::{PluginCall, PluginOutput};
use crate::plugin_support::{merged, with_ports, CniPathDir, PluginNode};
use crate::REFERENCE_CNI_PATH;

/// The host port every trial pod maps (so portmap / nft rules exist).
pub const HOST_PORT: u16 = 8080;

/// netboot-cni's modes, as the trials drive them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Native,
    Bridge,
    Flannel,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Bridge => "bridge",
            Mode::Flannel => "flannel",
        }
    }
}

/// A node running netboot-cni in one mode, with the CNI_PATH that mode
/// needs. FLANNEL_IPMASQ is false, so bridge and flannel mode also make
/// the reference bridge's per-container masquerade chain: more firewall
/// state for a killed plugin to leave behind.
#[derive(Debug)]
pub struct ModeNode {
    pub pn: PluginNode,
    pub mode: Mode,
    path: CniPathDir,
}

impl std::ops::Deref for ModeNode {
    type Target = PluginNode;
    fn deref(&self) -> &PluginNode {
        &self.pn
    }
}

impl ModeNode {
    pub fn new(tag: &str, mode: Mode) -> Self {
        let env = SubnetEnv {
            ipmasq: false,
            ..SubnetEnv::default()
        };
        let path = CniPathDir::new();
        match mode {
            Mode::Native => {}
            Mode::Bridge => {
                path.reference(&["bridge", "host-local", "portmap", "bandwidth"]);
            }
            Mode::Flannel => {
                path.reference(&["bridge", "host-local", "portmap", "bandwidth"]);
                path.link("flannel", &crate::upstream::flannel_plugin());
            }
        }
        ModeNode {
            pn: PluginNode::with_env(tag, env),
            mode,
            path,
        }
    }

    /// The CNI_PATH directory, to swap a plugin for a stand-in.
    pub fn cni_dir(&self) -> &CniPathDir {
        &self.path
    }

    /// The CNI_PATH of every call.
    pub fn cni_path(&self) -> String {
        self.path.cni_path()
    }

    /// A 1.1.0 config of this mode with one port mapping, and with
    /// bandwidth shaping both ways when `NETBOOT_CRASH_BANDWIDTH=1` (an ifb
    /// left behind then shows in the node's link snapshot).
    pub fn conf(&self) -> Value {
        let c = merged(&self.pn.conf("1.1.0"), json!({"mode": self.mode.name()}));
        let c = with_ports(&c, HOST_PORT, 80);
        if std::env::var("NETBOOT_CRASH_BANDWIDTH").as_deref() != Ok("1") {
            return c;
        }
        let shape = (8_000_000, 80_000);
        crate::bandwidth_support::with_bandwidth(
            &c,
            crate::bandwidth_support::go_entry(shape, shape),
        )
    }

    pub fn call(&self, command: &str, pod: &Netns) -> PluginCall {
        PluginCall {
            path: self.cni_path(),
            ..self.pn.call(command, pod, &self.conf())
        }
    }

    /// GC keeping only `valid` (container IDs, ifname eth0).
    pub fn gc(&self, valid: &[&str]) -> PluginOutput {
        let list: Vec<Value> = valid
            .iter()
            .map(|c| json!({"containerID": c, "ifname": "eth0"}))
            .collect();
        let conf = merged(&self.conf(), json!({"cni.dev/valid-attachments": list}));
        self.pn.run(&PluginCall {
            path: self.cni_path(),
            ..self.pn.bare_call("GC", &conf)
        })
    }
}

/// A process, identified across PID reuse by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    start: u64,
}

impl Proc {
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks).
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields after it do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Every live process working for container `cid`: netboot-cni and every
/// delegate below it (and their children, e.g. iptables) carry
/// `CNI_CONTAINERID=<cid>` in their environment. Test container IDs embed
/// the netns prefix and the test's PID, so this never matches a process
/// this test did not start (directly or through the plugin).
pub fn procs_of(cid: &str) -> Vec<Proc> {
    let needle = format!("CNI_CONTAINERID={cid}");
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Ok(env) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        let ours = env.split(|b| *b == 0).any(|v| v == needle.as_bytes());
        if let (true, Some(start)) = (ours, start_time(pid)) {
            out.push(Proc { pid, start });
        }
    }
    out
}

/// How the plugin is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kill {
    /// SIGKILL to the plugin's PID only: a runtime's timeout (libcni's
    /// `exec.CommandContext`). Delegates keep running, orphaned.
    Pid,
    /// SIGKILL to the plugin's process group (it was started as a group
    /// leader). netboot-cni starts each delegate in a group of its own,
    /// so delegates survive this too.
    Group,
    /// The plugin and every process working for the attachment are
    /// frozen (SIGSTOP until no new one appears) and then SIGKILLed: a
    /// cgroup kill (the runtime's unit stopped, the OOM killer), which can
    /// stop host-local or iptables halfway.
    Tree,
}

impl Kill {
    pub const ALL: [Kill; 3] = [Kill::Pid, Kill::Group, Kill::Tree];

    pub fn name(self) -> &'static str {
        match self {
            Kill::Pid => "pid",
            Kill::Group => "group",
            Kill::Tree => "tree",
        }
    }

    /// Kills `plugin` (a process started by the test as its own group
    /// leader) working for `cid` this way.
    pub fn apply(self, plugin: i32, cid: &str) {
        match self {
            Kill::Pid => {
                let _ = kill(Pid::from_raw(plugin), Signal::SIGKILL);
            }
            Kill::Group => {
                let _ = killpg(Pid::from_raw(plugin), Signal::SIGKILL);
            }
            Kill::Tree => {
                let mut stopped: Vec<Proc> = Vec::new();
                let _ = kill(Pid::from_raw(plugin), Signal::SIGSTOP);
                loop {
                    let new: Vec<Proc> = procs_of(cid)
                        .into_iter()
                        .filter(|p| !stopped.contains(p))
                        .collect();
                    if new.is_empty() {
                        break;
                    }
                    for p in new {
                        let _ = kill(Pid::from_raw(p.pid), Signal::SIGSTOP);
                        stopped.push(p);
                    }
                }
                let _ = kill(Pid::from_raw(plugin), Signal::SIGKILL);
                for p in stopped.iter().filter(|p| p.alive()) {
                    let _ = kill(Pid::from_raw(p.pid), Signal::SIGKILL);
                }
            }
        }
    }
}

/// Waits until none of `procs` is alive; false after `limit`.
pub fn wait_gone(procs: &[Proc], limit: Duration) -> bool {
    let start = Instant::now();
    while procs.iter().any(Proc::alive) {
        if start.elapsed() > limit {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A count from the environment (`NETBOOT_CRASH_ROUNDS`, ...) or `default`.
pub fn env_count(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The host-local store of the trials' network, for the truncation trials.
pub fn store_dir(node: &PluginNode) -> std::path::PathBuf {
    node.ipam_dir.join(crate::plugin_support::NET)
}

/// Median of some durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Whether the reference plugins this module needs are installed.
pub fn reference_plugins_present() -> bool {
    ["bridge", "host-local", "portmap"]
        .iter()
        .all(|p| Path::new(REFERENCE_CNI_PATH).join(p).is_file())
}
