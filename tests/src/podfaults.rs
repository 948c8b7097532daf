//! Helpers of podrun's fault tests (`tests/podrun_faults.rs`): what a
//! pod left on a node, shims in /proc, busy-loop load, reproducible kill
//! points and a fake shim daemon.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::containerd::{PodNode, NAMESPACE};

/// Entries of `dir` (names), empty when it does not exist.
pub fn names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// IPs reserved in the node's IPAM store.
pub fn reserved_ips(n: &PodNode) -> Vec<String> {
    names(&n.node.dir().join("ipam/podnet"))
        .into_iter()
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .collect()
}

/// PIDs of live shims of pod `pod` (sandbox and app containers).
///
/// Read from /proc, not with `pgrep -f PATTERN`: a pattern starting with
/// `-` is taken for an option, pgrep fails, and finds nothing (which made
/// an earlier version of this check vacuous).
pub fn shims(n: &PodNode, pod: &str) -> Vec<String> {
    let prefix = format!("{pod}-{}", n.pr.instance());
    names(Path::new("/proc"))
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        .filter(|p| {
            let Ok(cmdline) = fs::read(format!("/proc/{p}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let flag = |f: &str| args.windows(2).find(|w| w[0] == f).map(|w| w[1].clone());
            args.first()
                .is_some_and(|a| a.ends_with("containerd-shim-runc-v2"))
                && flag("-namespace").as_deref() == Some(NAMESPACE)
                && flag("-id")
                    .is_some_and(|id| id == prefix || id.starts_with(&format!("{prefix}.")))
        })
        .collect()
}

/// Whether containerd is running a shim's `start` for one of `pod`'s
/// tasks right now.
pub fn shim_starting(n: &PodNode, pod: &str) -> bool {
    let id = format!("-id\0{pod}-{}", n.pr.instance());
    names(Path::new("/proc")).iter().any(|p| {
        p.bytes().all(|b| b.is_ascii_digit())
            && fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("containerd-shim-runc-v2") && c.contains(&id) && c.ends_with("start\0")
            })
    })
}

/// Everything of pod `pod` still on the node: containerd objects,
/// shims, CNI cache, IPAM reservations, netboot records, veths, port
/// rules, netns, state and lock. Empty when `rm` left nothing.
pub fn leftovers(n: &PodNode, pod: &str) -> Vec<String> {
    let id = format!("{pod}-{}", n.pr.instance());
    let mut left = Vec::new();
    let mut add = |what: &str, v: Vec<String>| {
        let v: Vec<String> = v.into_iter().filter(|x| x.contains(&id)).collect();
        if !v.is_empty() {
            left.push(format!("{what}: {v:?}"));
        }
    };
    add("containers", n.ctd.ids("containers"));
    add("tasks", n.ctd.ids("tasks"));
    add("snapshots", n.ctd.active_snapshots());
    add("CNI cache", names(&n.cache_dir().join("results")));
    add(
        "netboot records",
        names(&n.node.dir().join("data/.netboot")),
    );
    add("flannel scratch", names(&n.node.dir().join("data")));
    add("netns", n.pr.netns());
    if n.node.nft_ruleset().contains(&id) {
        left.push(format!("nft rules naming {id}"));
    }
    // `run`'s lease goes with the pod (a killed run's with its rm); one
    // left in the test namespace would pin snapshots or content.
    let leases = n.ctd.ids("leases");
    if !leases.is_empty() {
        left.push(format!("leases: {leases:?}"));
    }
    let s = shims(n, pod);
    if !s.is_empty() {
        left.push(format!("live shims {s:?}"));
    }
    let ips = reserved_ips(n);
    if !ips.is_empty() {
        left.push(format!("IPAM reservations {ips:?}"));
    }
    let veths = n.node.veths();
    if !veths.is_empty() {
        left.push(format!("veths {veths:?}"));
    }
    if n.pr.pod_dir(pod).exists() {
        left.push("pod state dir".into());
    }
    if n.pr.lock_path(pod).exists() {
        left.push("lock file".into());
    }
    left
}

/// xorshift64*: reproducible kill points from a printed seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Busy loops started by the test (killed by PID on drop): load beside
/// the kill rounds, as in the run that once orphaned a shim.
pub struct Load(Vec<Child>);

impl Load {
    pub fn start(n: u64) -> Load {
        let spawn = || {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn busy loop")
        };
        Load((0..n).map(|_| spawn()).collect())
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A fake shim daemon of `id` on `n`'s containerd, working directory
/// `bundle` (see `src/bin/fake_shim.rs`); a child of the test.
pub fn fake_shim(n: &PodNode, id: &str, bundle: &Path) -> Child {
    let exe = n.pr.dir().join("containerd-shim-runc-v2");
    if !exe.exists() {
        fs::copy(crate::bin_path("fake_shim"), &exe).expect("copy fake shim");
    }
    fs::create_dir_all(bundle).expect("bundle dir");
    let sock = n.ctd.socket();
    let child = Command::new(&exe)
        .args(["-namespace", NAMESPACE, "-id", id, "-address"])
        .arg(&sock)
        .current_dir(bundle)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn fake shim");
    // Its comm is containerd-shim: keep the other tests' reapers off it.
    crate::reaper::spawned_by_test(child.id());
    child
}
