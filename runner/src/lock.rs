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
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::state::Store;

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

fn lock(file: File, arg: FlockArg) -> std::result::Result<Flock<File>, Errno> {
    Flock::lock(file, arg).map_err(|(_, e)| e)
}

impl PodLock {
    /// Blocks until this process holds the pod's lock; says so on stderr
    /// when it has to wait for another podrun.
    pub fn acquire(store: &Store, pod: &str) -> Result<PodLock> {
        let path = lock_path(store, pod)?;
        let dir = path.parent().context("lock dir")?;
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        loop {
            let open = || {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .with_context(|| format!("open {}", path.display()))
            };
            let held = match lock(open()?, FlockArg::LockExclusiveNonblock) {
                Ok(f) => f,
                Err(Errno::EWOULDBLOCK) => {
                    eprintln!("podrun: waiting for another podrun working on pod {pod:?}");
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

    /// Removes the lock file, then releases the lock (after a successful
    /// `rm`, so a removed pod leaves no file behind).
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }
}
