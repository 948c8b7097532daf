//! One podrun at a time per pod: `run`, `stop` and `rm` of a pod hold an
//! exclusive `flock(2)` on `<state-dir>/namespaces/<ns>/locks/<pod>.lock` for their whole
//! duration, so a `rm` racing a `run` waits for it, and two `run`s of the
//! same pod cannot both create it. The kernel drops the lock when its
//! holder dies, so a SIGKILLed `run` never blocks a later `rm`.
//!
//! `rm` unlinks the lock file while holding it. A waiter that then gets
//! the lock holds it on an unlinked inode; it notices (the path no longer
//! names the inode it locked) and locks the new file instead.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::state::Store;

/// CNI GC must not overlap an ADD (SPEC.md "GC": no ADD or DEL in flight).
/// `run` holds this lock shared for its whole duration and `gc`
/// exclusively. It lives in the CNI cache dir, so it spans every podrun
/// instance that shares that cache (all of them with the default
/// `/var/lib/cni`), not only this one. Other runtimes do not take it.
pub struct GcLock {
    _file: Flock<File>,
}

impl GcLock {
    fn take(cache_root: &std::path::Path, arg: FlockArg) -> Result<GcLock> {
        fs::create_dir_all(cache_root)
            .with_context(|| format!("create {}", cache_root.display()))?;
        let path = cache_root.join("podrun-gc.lock");
        let held = lock(open_lock_file(&path)?, arg)
            .with_context(|| format!("lock {}", path.display()))?;
        Ok(GcLock { _file: held })
    }

    /// For `run`: waits only while a `gc` runs.
    pub fn shared(cache_root: &std::path::Path) -> Result<GcLock> {
        GcLock::take(cache_root, FlockArg::LockShared)
    }

    /// For `gc`: waits until no `run` is in flight.
    pub fn exclusive(cache_root: &std::path::Path) -> Result<GcLock> {
        GcLock::take(cache_root, FlockArg::LockExclusive)
    }
}

/// A held pod lock; released on drop.
pub struct PodLock {
    _file: Flock<File>,
    path: PathBuf,
}

fn lock_path(store: &Store, pod: &str) -> Result<PathBuf> {
    // Names from the command line, not only from validated specs.
    if pod.is_empty() || pod.starts_with('.') || pod.contains('/') {
        bail!("invalid pod name {pod:?}");
    }
    Ok(store.dir.join("locks").join(format!("{pod}.lock")))
}

/// A lock file, created if missing; never truncated (a holder may be
/// using it).
fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

fn lock(file: File, arg: FlockArg) -> std::result::Result<Flock<File>, Errno> {
    Flock::lock(file, arg).map_err(|(_, e)| e)
}

impl PodLock {
    /// Blocks until this process holds the pod's lock; says so in the log
    /// when it has to wait for another podrun.
    pub fn acquire(store: &Store, pod: &str) -> Result<PodLock> {
        let path = lock_path(store, pod)?;
        let dir = path.parent().context("lock dir")?;
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        loop {
            let open = || open_lock_file(&path);
            let held = match lock(open()?, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err(Errno::EWOULDBLOCK) => {
                    tracing::info!("podrun: waiting for another podrun working on pod {pod:?}");
                    lock(open()?, FlockArg::LockExclusive)
                        .with_context(|| format!("lock {}", path.display()))?
                }
                Err(e) => return Err(e).with_context(|| format!("lock {}", path.display())),
            };
            let ino = held.metadata()?.ino();
            match fs::metadata(&path) {
                Ok(m) if m.ino() == ino => return Ok(PodLock { _file: held, path }),
                // Unlinked (or replaced) by the previous holder: retry.
                _ => continue,
            }
        }
    }

    /// The pod's lock if nobody holds it, without waiting (`gc` uses it
    /// to tell a dead `run` from a live one).
    pub fn try_acquire(store: &Store, pod: &str) -> Result<Option<PodLock>> {
        let path = lock_path(store, pod)?;
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            // No lock file: no podrun ever locked it, or rm removed it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("open {}", path.display())),
        };
        match lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(held) => Ok(Some(PodLock { _file: held, path })),
            Err(Errno::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("lock {}", path.display())),
        }
    }

    /// Removes the lock file, then releases the lock (after a successful
    /// `rm`, so a removed pod leaves no file behind).
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs share the GC lock; a GC cannot take it while one is held.
    #[test]
    fn gc_lock_is_shared_by_runs_and_exclusive_for_gc() {
        let d = tempfile::tempdir().unwrap();
        let r1 = GcLock::shared(d.path()).unwrap();
        let r2 = GcLock::shared(d.path()).unwrap();
        let try_gc = || {
            let f = File::open(d.path().join("podrun-gc.lock")).unwrap();
            lock(f, FlockArg::LockExclusiveNonblock).is_ok()
        };
        assert!(!try_gc());
        drop((r1, r2));
        assert!(try_gc());
        drop(GcLock::exclusive(d.path()).unwrap());
    }
}
