//! The node's device nodes as OCI `linux.devices` entries, for a
//! privileged container (what containerd's `oci.HostDevices` lists).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::{json, Value};

/// Directories of /dev that are not device nodes of the node: the
/// container gets its own pts, shm and mqueue mounts (containerd skips
/// the same, plus LXC/LXD and udev bookkeeping).
const SKIP_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Every character and block device under `dir` (recursively), but
/// `console`, which runc sets up itself.
pub fn host_devices(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn walk(dir: &Path, out: &mut Vec<Value>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let path = e.path();
        // lstat: a symlink (e.g. /dev/core -> /proc/kcore) is no device.
        let Ok(md) = fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                walk(&path, out);
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = md.rdev();
        out.push(json!({
            "path": path,
            "type": kind,
            "major": libc::major(rdev),
            "minor": libc::minor(rdev),
            "fileMode": md.permissions().mode() & 0o7777,
            "uid": md.uid(),
            "gid": md.gid(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_device_nodes_but_not_skipped_dirs_or_links() {
        let devs = host_devices(Path::new("/dev"));
        let null = devs
            .iter()
            .find(|d| d["path"] == "/dev/null")
            .expect("/dev/null listed");
        assert_eq!(null["type"], "c");
        assert_eq!(
            (null["major"].as_u64(), null["minor"].as_u64()),
            (Some(1), Some(3))
        );
        assert!(!devs.iter().any(|d| {
            let p = d["path"].as_str().unwrap_or_default();
            p.starts_with("/dev/pts/") || p == "/dev/console" || p == "/dev/fd"
        }));
    }
}
