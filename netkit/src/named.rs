//! Named namespaces under /run/netns, like `ip netns add` / `ip netns del`.
//! Used by tests and by the agent to build netns "nodes".

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Error, Result};

/// Directory of named namespaces, as used by `ip netns`.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Path of the named namespace `name`: `/run/netns/<name>`.
pub fn named_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// `ip netns add <name>`: a new network namespace, kept alive by a bind
/// mount on `/run/netns/<name>`. Returns that path.
///
/// Fails with [`Error::Exists`] if the name is taken. Like iproute2, makes
/// `/run/netns` a shared mount first so the bind mount propagates to other
/// mount namespaces (containerd, `ip netns exec` ...).
pub fn create_named(name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let path = named_path(name);
    let ctx = format!("create netns {}", path.display());
    fs::create_dir_all(NETNS_RUN_DIR).map_err(|e| Error::io(&ctx, e))?;
    make_run_dir_shared()
        .map_err(|e| Error::nix(format!("{ctx}: make {NETNS_RUN_DIR} shared"), e))?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists { what: ctx });
        }
        Err(e) => return Err(Error::io(ctx, e)),
    }
    if let Err(e) = bind_new_netns(&path) {
        let _ = fs::remove_file(&path);
        return Err(Error::nix(ctx, e));
    }
    Ok(path)
}

/// `ip netns del <name>`: unmount and unlink `/run/netns/<name>`.
/// Idempotent: a missing name is success.
pub fn delete_named(name: &str) -> Result<()> {
    validate_name(name)?;
    let path = named_path(name);
    let ctx = format!("delete netns {}", path.display());
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(Error::nix(ctx, e)),
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(ctx, e)),
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid(
            format!("netns name {name:?}"),
            "invalid name",
        ));
    }
    Ok(())
}

/// iproute2 `netns_add`: try to make the run dir a shared mount; if it is
/// not a mount point yet (EINVAL), bind it onto itself and retry.
fn make_run_dir_shared() -> nix::Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    let shared = || {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Err(Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            shared()
        }
        other => other,
    }
}

/// On a throwaway thread: unshare a fresh netns and bind-mount the thread's
/// own `ns/net` onto `target`. The thread (and its namespace membership)
/// ends right after; the bind mount keeps the namespace alive.
fn bind_new_netns(target: &Path) -> nix::Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET)?;
            let tid = nix::unistd::gettid();
            let src = format!("/proc/self/task/{tid}/ns/net");
            mount(
                Some(src.as_str()),
                target,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or(Err(Errno::EIO))
    })
}
