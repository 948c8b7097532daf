//! Shared harness for netboot's integration tests.
//!
//! Every "node" and every pod is a network namespace the test creates and
//! deletes (`nbt-<pid>-<n>-<tag>`); nothing touches the root namespace.
//! Tests need root: call [`require_root`] first so they fail loudly instead
//! of passing vacuously.

pub mod agent_load;
pub mod agent_support;
pub mod bandwidth_support;
pub mod cluster;
pub mod cluster6;
pub mod cluster_opts;
pub mod containerd;
pub mod crash_support;
pub mod cri;
pub mod doctor_support;
pub mod etcd;
pub mod exec;
pub mod foreign;
pub mod image_archive;
pub mod lease_sim;
pub mod native6_support;
pub mod native_support;
pub mod netns;
pub mod node;
pub mod plugin;
pub mod plugin_support;
pub mod podfaults;
pub mod reaper;
pub mod reboot_support;
pub mod scale;
pub mod systemd;
pub mod unit_file;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

pub use exec::{nsenter, run, run_argv, CmdOutput};
pub use netns::{leftover_namespaces, netns_prefix, Netns, NETNS_PREFIX};
pub use node::{LibcniCall, Node, SubnetEnv};
pub use plugin::{
    first_gateway, first_ip, plugin_command, result_ips, run_plugin, PluginCall, PluginOutput,
    REFERENCE_CNI_PATH,
};

/// Panic unless running as root (uid 0): the tests create namespaces.
#[track_caller]
pub fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(
        euid, "0",
        "integration tests must run as root (they create network namespaces); \
         run `sudo scripts/test.sh`"
    );
}

/// Directories a built binary may be in: the profile dir this test binary
/// was built into (`<target>/<profile>`, parent of `deps/`), its target dir,
/// then `$CARGO_TARGET_DIR` and the workspace's `target/`.
fn bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // A binary target (e.g. the benchmark) lives in the profile dir itself.
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_owned());
        }
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            dirs.push(profile.to_owned());
            if let Some(target) = profile.parent() {
                dirs.push(target.to_owned());
            }
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    dirs.push(target.join("debug"));
    dirs.push(target.clone());
    // Built by scripts/build-libcni-client.sh into the default target dir
    // even when tests are built elsewhere.
    dirs.push(workspace.join("target"));
    dirs
}

/// Path of workspace binary `name` (`netboot-cni`, `netboot`, `podrun`) or
/// of `libcni-client`. Panics with a hint when it was not built.
#[track_caller]
pub fn bin_path(name: &str) -> PathBuf {
    let dirs = bin_dirs();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "binary `{name}` not found in {dirs:?}; run `cargo build --workspace` \
                 and `scripts/build-libcni-client.sh` (or `scripts/test.sh`)"
            )
        })
}

/// Ping `ip` once from inside namespace `from` (`ping -c1 -W2`), up to 3
/// attempts. True when a reply came back.
pub fn ping(from: impl AsRef<Path>, ip: &str) -> bool {
    for attempt in 0..3 {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(300));
        }
        let out = exec::run(
            exec::nsenter(from.as_ref(), &["ping", "-n", "-q", "-c1", "-W2", ip]),
            None,
            Duration::from_secs(10),
        );
        if out.success() {
            return true;
        }
    }
    false
}

/// Assert that `ip` answers pings from namespace `from`.
#[track_caller]
pub fn assert_ping(from: impl AsRef<Path>, ip: &str) {
    let from = from.as_ref();
    assert!(
        ping(from, ip),
        "no ping reply from {ip} in {}",
        from.display()
    );
}

/// Call `f` up to `attempts` times, `delay` apart, until it returns `Some`.
pub fn retry<T>(attempts: u32, delay: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for i in 0..attempts {
        if i > 0 {
            thread::sleep(delay);
        }
        if let Some(v) = f() {
            return Some(v);
        }
    }
    None
}
