//! One agent per network namespace: a POSIX record lock on
//! `/run/netboot/agent-netns-<inode>.lock` (`$NETBOOT_LOCK_DIR` instead of
//! `/run/netboot` when set).
//!
//! Why keyed by the network namespace and not next to subnet.env: what two
//! agents would fight over is the namespace's kernel state (flannel.<VNI>,
//! its routes, ARP and FDB entries, the forward/masquerade rules) and the
//! node's lease, and two agents given *different* `--subnet-file`s in one
//! namespace would fight just the same. The inode of `/proc/self/ns/net`
//! names the namespace for as long as it exists, and is the same for every
//! process in it whatever its mount namespace or `--subnet-file`.
//!
//! Why `fcntl` locks: the kernel drops them when the holder dies (even by
//! SIGKILL), so a stale file never blocks a new agent, and `F_GETLK` lets
//! `netboot status`/`leave` ask who holds it without taking the lock
//! (a probing `flock` could make a starting agent fail).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

/// Directory of the lock files.
pub const LOCK_DIR: &str = "/run/netboot";

/// Environment variable overriding [`LOCK_DIR`] (an absolute path), for
/// nodes whose `/run` is elsewhere: the tests' simulated nodes, whose
/// "/run" is a directory they own and clear to simulate a reboot.
pub const LOCK_DIR_ENV: &str = "NETBOOT_LOCK_DIR";

fn lock_dir() -> Result<PathBuf> {
    match std::env::var_os(LOCK_DIR_ENV) {
        None => Ok(PathBuf::from(LOCK_DIR)),
        Some(d) if std::path::Path::new(&d).is_absolute() => Ok(PathBuf::from(d)),
        Some(d) => bail!(
            "{LOCK_DIR_ENV}={} is not an absolute path",
            std::path::Path::new(&d).display()
        ),
    }
}

/// The lock file of the calling process's network namespace.
pub fn lock_path() -> Result<PathBuf> {
    let ino = std::fs::metadata("/proc/self/ns/net")
        .context("stat /proc/self/ns/net")?
        .ino();
    Ok(lock_dir()?.join(format!("agent-netns-{ino}.lock")))
}

/// Held for the agent's whole life; released by the kernel when the
/// process ends.
pub struct AgentLock {
    _file: File,
    pub path: PathBuf,
}

fn whole_file(kind: libc::c_short) -> libc::flock {
    libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    }
}

/// Who holds the lock: `Some((pid, what the holder wrote))` while an agent
/// runs in this namespace. `pid` is 0 when the holder is in another PID
/// namespace.
pub fn holder() -> Option<(i32, String)> {
    let path = lock_path().ok()?;
    let mut f = File::open(&path).ok()?;
    let mut fl = whole_file(libc::F_WRLCK as libc::c_short);
    fcntl(&f, FcntlArg::F_GETLK(&mut fl)).ok()?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return None;
    }
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    Some((fl.l_pid, text))
}

/// A `key=value` field of the lock file's text.
pub fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

/// Take this namespace's agent lock, or fail naming the running agent.
pub fn acquire(subnet_file: &std::path::Path) -> Result<AgentLock> {
    let path = lock_path()?;
    let dir = lock_dir()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    let fl = whole_file(libc::F_WRLCK as libc::c_short);
    if let Err(errno) = fcntl(&file, FcntlArg::F_SETLK(&fl)) {
        if matches!(errno, Errno::EAGAIN | Errno::EACCES) {
            let (pid, text) = holder().unwrap_or((0, String::new()));
            let pid = match (pid, field(&text, "pid")) {
                (0, Some(p)) => p.to_string(),
                (p, _) => p.to_string(),
            };
            bail!(
                "another netboot agent (PID {pid}, subnet file {}) is already running in this \
                 network namespace; two agents would fight over flannel.<VNI>, the routes and \
                 the lease. Stop it first (it holds {})",
                field(&text, "subnet_file").unwrap_or("unknown"),
                path.display()
            );
        }
        return Err(std::io::Error::from(errno))
            .with_context(|| format!("lock {}", path.display()));
    }
    file.set_len(0).ok();
    let text = format!(
        "pid={}\nsubnet_file={}\n",
        std::process::id(),
        subnet_file.display()
    );
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(AgentLock { _file: file, path })
}
