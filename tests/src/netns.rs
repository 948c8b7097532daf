//! `Netns`: a named network namespace owned by one test, deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use crate::exec::{self, CmdOutput};

/// Every namespace the harness creates starts with this; `scripts/test.sh`
/// fails if any is left after the test run.
pub const NETNS_PREFIX: &str = "nbt-";

/// The prefix in use: [`NETNS_PREFIX`], unless `NETBOOT_TEST_NETNS_PREFIX`
/// names another, so that a second test run on the same machine (a
/// developer's while CI runs) neither sees nor trips over the first's
/// namespaces.
pub fn netns_prefix() -> &'static str {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| {
        std::env::var("NETBOOT_TEST_NETNS_PREFIX")
            .ok()
            .filter(|p| {
                !p.is_empty()
                    && p.len() <= 8
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
            .unwrap_or_else(|| NETNS_PREFIX.to_string())
    })
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `ip netns add` mounts /run/netns as shared on first use; concurrent first
/// calls can race on that mount, so creation is serialized.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// A network namespace at `/run/netns/<name>`. Dropping it kills the
/// processes started through [`Netns::spawn`] (by PID) and deletes it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    children: Mutex<Vec<Child>>,
}

impl Netns {
    /// Create `nbt-<pid>-<counter>-<tag>` with its loopback up.
    ///
    /// Keep `tag` short and free of `/`; it only makes names readable.
    pub fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{}{}-{n}-{tag}", netns_prefix(), std::process::id());
        {
            let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            exec::run_argv(&["ip", "netns", "add", &name]).expect_ok();
        }
        let ns = Netns {
            path: PathBuf::from("/run/netns").join(&name),
            name,
            children: Mutex::new(Vec::new()),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]).expect_ok();
        ns
    }

    /// The name as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/run/netns/<name>`: what CNI_NETNS and `nsenter --net=` take.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run `argv` inside this namespace (via nsenter) and wait for it.
    pub fn exec(&self, argv: &[&str]) -> CmdOutput {
        exec::run(exec::nsenter(&self.path, argv), None, exec::DEFAULT_TIMEOUT)
    }

    /// [`Netns::exec`] with the command written as one line, split on
    /// white space (`"ip route del 10.2.31.0/24"`).
    pub fn exec_line(&self, line: &str) -> CmdOutput {
        self.exec(&line.split_whitespace().collect::<Vec<_>>())
    }

    /// A veth `name` in this namespace whose peer is `eth0` in `peer`
    /// (`ip link add NAME type veth peer name eth0 netns PEER`); panics on
    /// failure.
    #[track_caller]
    pub fn add_veth_to(&self, name: &str, peer: &Netns) {
        let peer = peer.name();
        self.exec_line(&format!(
            "ip link add {name} type veth peer name eth0 netns {peer}"
        ))
        .expect_ok();
    }

    /// Start a long-running `argv` inside this namespace; it is killed when
    /// the namespace guard is dropped. Returns its PID.
    pub fn spawn(&self, argv: &[&str]) -> u32 {
        let child = exec::nsenter(&self.path, argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} in {}: {e}", self.name));
        let pid = child.id();
        self.children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
        pid
    }

    /// `ip -j <args>` inside this namespace, parsed. Empty output is `[]`.
    #[track_caller]
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["ip", "-j"];
        argv.extend_from_slice(args);
        let out = self.exec(&argv).expect_ok();
        if out.stdout.trim().is_empty() {
            return serde_json::Value::Array(Vec::new());
        }
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("bad JSON from `{}`: {e}\n{}", out.command, out.stdout))
    }

    /// Names of the links in this namespace.
    pub fn link_names(&self) -> Vec<String> {
        json_strings(&self.ip_json(&["link", "show"]), "ifname")
    }

    /// IPv4 addresses (`a.b.c.d/len`) on `dev` in this namespace.
    pub fn ipv4_addrs(&self, dev: &str) -> Vec<String> {
        let v = self.ip_json(&["-4", "addr", "show", "dev", dev]);
        let mut out = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if let (Some(ip), Some(len)) = (a["local"].as_str(), a["prefixlen"].as_u64()) {
                    out.push(format!("{ip}/{len}"));
                }
            }
        }
        out
    }

    /// `iptables-save` of this namespace.
    pub fn iptables_save(&self) -> String {
        self.exec(&["iptables-save"]).expect_ok().stdout
    }

    fn kill_children(&self) {
        let mut children = self.children.lock().unwrap_or_else(|e| e.into_inner());
        for child in children.iter_mut() {
            // Child::kill sends SIGKILL to exactly this PID.
            let _ = child.kill();
            let _ = child.wait();
        }
        children.clear();
    }
}

impl AsRef<Path> for Netns {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.kill_children();
        let out = exec::run_argv(&["ip", "netns", "delete", &self.name]);
        if !out.success() {
            // Never panic in drop (it would abort during an unwinding test).
            eprintln!("[harness] warning: could not delete netns: {out}");
        }
    }
}

/// Collect `key` from every object of a JSON array.
pub fn json_strings(v: &serde_json::Value, key: &str) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o[key].as_str().map(str::to_owned))
        .collect()
}

/// Names of existing namespaces created by the harness (any process).
pub fn leftover_namespaces() -> Vec<String> {
    let out = exec::run_argv(&["ip", "netns", "list"]);
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(netns_prefix()))
        .map(str::to_owned)
        .collect()
}
