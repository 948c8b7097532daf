//! The runc shims (`containerd-shim-runc-v2`) of a pod's containers, as
//! the kernel sees them in /proc. containerd's API only shows a shim once
//! its task exists; a shim it started for a Create that then failed is
//! invisible to it.
//!
//! containerd 1.6 runs `containerd-shim-runc-v2 … start` with
//! `exec.CommandContext` on the Create request's context
//! (`runtime/v2/shim/util.go` `Command`). When the client dies mid-Create,
//! that context is cancelled and the `start` process killed, possibly
//! after it spawned the shim daemon; containerd then deletes the task's
//! bundle directory and forgets the shim. The daemon lives on, holding its
//! socket (`<state>/s/<sha256(address/ns/id)>`), which a later Create of
//! the same ID would try to reuse. Such an *orphan* is recognisable: the
//! daemon's working directory is its bundle (`cmd.Dir` in the runc shim's
//! `newCommand`), and it has been deleted.

use std::fs;
use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// containerd's default state dir, where shim sockets live
/// (`defaults.DefaultStateDir`, `runtime/v2/shim/util_unix.go`).
const SOCKET_ROOT: &str = "/run/containerd/s";

/// One shim process (the daemon, or a `start` still running).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shim {
    pub pid: i32,
    pub id: String,
    /// Its `-address` (containerd's socket as containerd named it).
    pub address: String,
    /// Its working directory, the task bundle, still exists.
    pub bundle_exists: bool,
}

/// The value following `flag` in an argv.
fn flag(args: &[&[u8]], name: &[u8]) -> Option<String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| String::from_utf8_lossy(w[1]).into_owned())
}

/// Whether two containerd addresses name the same socket.
fn same_socket(a: &str, b: &Path) -> bool {
    let a = Path::new(a.strip_prefix("unix://").unwrap_or(a));
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Shims of containerd namespace `ns` on the containerd at `address`
/// whose container ID `want` accepts.
pub fn find(ns: &str, address: &Path, want: &dyn Fn(&str) -> bool) -> Vec<Shim> {
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(shim) = read(pid, ns, address, want) {
            out.push(shim);
        }
    }
    out
}

/// The shim with `pid`, if it is one of ours.
fn read(pid: i32, ns: &str, address: &Path, want: &dyn Fn(&str) -> bool) -> Option<Shim> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(dir.join("cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    if !args.first()?.ends_with(b"containerd-shim-runc-v2") {
        return None;
    }
    if flag(&args, b"-namespace").as_deref() != Some(ns) {
        return None;
    }
    let id = flag(&args, b"-id")?;
    let addr = flag(&args, b"-address")?;
    if !want(&id) || !same_socket(&addr, address) {
        return None;
    }
    // An unlinked cwd reads as "<path> (deleted)".
    let bundle_exists = fs::read_link(dir.join("cwd"))
        .map(|p| !p.to_string_lossy().ends_with(" (deleted)") && p.is_dir())
        .unwrap_or(false);
    Some(Shim {
        pid,
        id,
        address: addr,
        bundle_exists,
    })
}

/// Kills an orphaned shim (SIGKILL, after re-reading its identity so a
/// reused PID is never hit) and removes its socket. Returns whether it
/// was still there to kill.
pub fn kill_orphan(shim: &Shim, ns: &str, address: &Path) -> bool {
    match read(shim.pid, ns, address, &|id| id == shim.id) {
        Some(now) if !now.bundle_exists => {}
        _ => return false,
    }
    let killed = kill(Pid::from_raw(shim.pid), Signal::SIGKILL).is_ok();
    let _ = fs::remove_file(socket_path(&shim.address, ns, &shim.id));
    killed
}

/// The shim's socket, as `shim.SocketAddress` names it.
fn socket_path(address: &str, ns: &str, id: &str) -> PathBuf {
    let key = Path::new(address).join(ns).join(id);
    let digest = Sha256::digest(key.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Path::new(SOCKET_ROOT).join(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_is_sha256_of_address_ns_id() {
        // echo -n /run/containerd/containerd.sock/default/c1 | sha256sum
        let p = socket_path("/run/containerd/containerd.sock", "default", "c1");
        assert_eq!(
            p,
            Path::new("/run/containerd/s/d25aa4ef11a84e954e74a5bcff06557d0b6ea8d0c00243896f29826694bbd888")
        );
    }

    #[test]
    fn flags_are_read_from_argv() {
        let args: Vec<&[u8]> = vec![b"shim", b"-namespace", b"ns", b"-id", b"x"];
        assert_eq!(flag(&args, b"-id").as_deref(), Some("x"));
        assert_eq!(flag(&args, b"-address"), None);
    }

    #[test]
    fn no_shim_is_found_for_unknown_ids() {
        let want = |id: &str| id == "x";
        assert!(find("podrun-unit-test", Path::new("/nonexistent.sock"), &want).is_empty());
    }
}
