//! Shared harness for netboot's integration tests.
//!
//! Every "node" and every pod is a network namespace the test creates and
//! deletes (`nbt-<pid>-<n>-<tag>`); nothing touches the root namespace.
//! Tests need root: call [`require_root`] first so they fail loudly instead
//! of passing vacuously.

pub mod agent_load;
pub mod agent_support;
pub mod bandwidth_support;
pub mod bins;
pub mod cluster;
pub mod cluster6;
pub mod cluster_opts;
pub mod cni_node;
pub mod containerd;
pub mod crash_support;
pub mod cri;
pub mod doctor_support;
pub mod etcd;
pub mod exec;
pub mod foreign;
pub mod image_archive;
pub mod lease_sim;
pub mod mode_suite;
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

use std::path::Path;
use std::thread;
use std::time::Duration;

pub use bins::bin_path;
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
