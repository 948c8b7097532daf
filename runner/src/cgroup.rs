//! What podrun reads from cgroups itself: the hierarchy version and a
//! container's OOM-kill counter. Limits are set by runc from the OCI spec.

use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// True on the unified (v2) hierarchy: `/sys/fs/cgroup` is cgroup2fs and
/// has `cgroup.controllers` at its root.
pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Whether a memory+swap limit can be set: always on v2, on v1 only with
/// swap accounting (`memory.memsw.*`), else runc refuses the spec.
pub fn swap_limit_supported() -> bool {
    is_v2()
        || Path::new(ROOT)
            .join("memory/memory.memsw.limit_in_bytes")
            .exists()
}

/// The file that counts OOM kills for cgroup `path` (an OCI
/// `cgroupsPath` as runc's cgroupfs driver uses it).
fn oom_file(path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    if is_v2() {
        Path::new(ROOT).join(rel).join("memory.events")
    } else {
        Path::new(ROOT)
            .join("memory")
            .join(rel)
            .join("memory.oom_control")
    }
}

/// OOM kills in the cgroup (`oom_kill N`, kernel 4.13+), `None` when
/// the cgroup is gone.
pub fn oom_kills(path: &str) -> Option<u64> {
    let text = fs::read_to_string(oom_file(path)).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// Removes the namespace's parent cgroup (`/<ns>` in each hierarchy) that
/// runc creates for `cgroupsPath` but never deletes, if no container is
/// left in it. Busy or missing directories are left alone.
pub fn remove_parent_if_empty(ns: &str) {
    let dirs: Vec<PathBuf> = if is_v2() {
        vec![Path::new(ROOT).join(ns)]
    } else {
        fs::read_dir(ROOT)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path().join(ns))
                    .collect()
            })
            .unwrap_or_default()
    };
    for d in dirs {
        let _ = fs::remove_dir(d);
    }
}
