//! Reaping the shims of the containerds the tests start.
//!
//! containerd's `shim start` forks the shim daemon and exits, so the
//! daemon is re-parented: to PID 1, or to the nearest ancestor that is a
//! child subreaper. In this sandbox PID 1 is not an init that reaps
//! promptly, so every shim that exits would stay a zombie for a while. The
//! test process makes itself a subreaper (the shims of its containerds
//! become its children) and reaps the zombie shims: processes it started,
//! indirectly. Only zombies named `containerd-shim` (the kernel's 15-byte
//! comm of `containerd-shim-runc-v2`) are reaped, by PID: the test never
//! spawns a real shim itself, and the shim look-alikes it spawns are
//! registered with [`spawned_by_test`] and left alone, so no
//! `std::process::Child` handle can lose its exit status to this.

use std::collections::HashSet;
use std::fs;
use std::sync::{Mutex, Once};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Makes this process a child subreaper (once).
pub fn adopt_orphans() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("[harness] warning: PR_SET_CHILD_SUBREAPER: {e}");
        }
    });
}

/// `(pid, comm, state, ppid)` of every process, from /proc/<pid>/stat.
pub fn processes() -> Vec<(i32, String, char, i32)> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may contain spaces and ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, comm, state, ppid));
    }
    out
}

/// PIDs of shim look-alikes a test spawned itself and waits for through
/// its `Child` handle: never reaped here, or its `wait` would fail.
static OWN: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Marks `pid`, a process this test spawned as a shim look-alike, as
/// waited for by its spawner. Register before it can exit.
pub fn spawned_by_test(pid: u32) {
    let mut own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    own.get_or_insert_with(HashSet::new).insert(pid as i32);
}

fn spawned_here(pid: i32) -> bool {
    let own = OWN.lock().unwrap_or_else(|e| e.into_inner());
    own.as_ref().is_some_and(|s| s.contains(&pid))
}

/// Zombie shims whose parent is this process (not those a test spawned
/// itself).
pub fn zombie_shims() -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|(pid, comm, state, ppid)| {
            *state == 'Z' && *ppid == me && comm == "containerd-shim" && !spawned_here(*pid)
        })
        .map(|(pid, ..)| pid)
        .collect()
}

/// Reaps the zombie shims that are this process's children; returns how
/// many.
pub fn reap_shims() -> usize {
    reap(&zombie_shims()).0
}

/// Reaps `pids`: how many were reaped, and those still zombies after
/// (which would mean reaping does not work). Race-free against shims of
/// other tests exiting meanwhile: only the given PIDs are looked at.
pub fn reap(pids: &[i32]) -> (usize, Vec<i32>) {
    let mut n = 0;
    for &pid in pids {
        if let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))
        {
            n += 1;
        }
    }
    let still = zombie_shims();
    (
        n,
        pids.iter().copied().filter(|p| still.contains(p)).collect(),
    )
}

/// Zombies anywhere on the machine whose comm is `containerd-shim` and
/// whose parent is PID 1: shims nobody reaps (not necessarily ours).
pub fn unreaped_shims_of_init() -> usize {
    processes()
        .into_iter()
        .filter(|(_, comm, state, ppid)| *state == 'Z' && *ppid == 1 && comm == "containerd-shim")
        .count()
}
