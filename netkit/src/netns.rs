//! Network namespace handles.
//!
//! A [`Netns`] owns every `setns(2)` netkit does. Work inside a namespace
//! always runs on a short-lived dedicated thread that enters the namespace
//! and then exits, so the caller's thread never changes namespace and no `?`
//! can leave a thread in the wrong one (the bug in netavark's `exec_netns!`,
//! and the reason for rtnetlink issue #68; Go's `ns.Do` in
//! containernetworking/plugins `pkg/ns/ns_linux.go` does the same dance with
//! `LockOSThread`).
//!
//! [`Netns::netlink_here`] is the one exception, for short-lived
//! single-purpose processes (the CNI plugin) where a thread start is a
//! measurable part of the run: the calling thread enters the namespace,
//! opens a socket and goes back before returning, the way back guarded by a
//! `Drop` (also on `?` and unwinding); if going back ever fails, the
//! process aborts rather than go on in the wrong namespace.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC, PROC_SUPER_MAGIC};

use crate::error::{Error, Result};
use crate::socket::Netlink;

/// An open handle (fd) on a network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    /// Path it was opened from, for messages ("/run/netns/x", "current netns").
    label: String,
}

impl Netns {
    /// Open the namespace at `path` (`/var/run/netns/x`, `/proc/PID/ns/net`).
    ///
    /// A missing path gives [`Error::NotFound`] (`is_not_found()`), which
    /// CNI DEL treats as "already gone". A path that is not a namespace file
    /// gives [`Error::Invalid`].
    pub fn open(path: &Path) -> Result<Netns> {
        let label = path.display().to_string();
        let file = File::open(path).map_err(|e| Error::io(format!("open netns {label}"), e))?;
        let fs = fstatfs(&file).map_err(|e| Error::nix(format!("statfs netns {label}"), e))?;
        // nsfs for bind-mounted namespaces and /proc/PID/ns/net on modern
        // kernels; procfs on very old ones (same check as Go's ns.GetNS).
        let kind = fs.filesystem_type();
        if kind != NSFS_MAGIC && kind != PROC_SUPER_MAGIC {
            return Err(Error::invalid(
                format!("open netns {label}"),
                "not a network namespace file (not on nsfs)",
            ));
        }
        Ok(Netns {
            fd: file.into(),
            label,
        })
    }

    /// The namespace of the calling thread.
    pub fn current() -> Result<Netns> {
        let tid = nix::unistd::gettid();
        let mut ns = Self::open(Path::new(&format!("/proc/self/task/{tid}/ns/net")))?;
        ns.label = "current netns".into();
        Ok(ns)
    }

    /// The namespace fd, e.g. for `IFLA_NET_NS_FD`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Path (or "current netns") this handle was opened from.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Run `f` on a new thread that has entered this namespace; the thread
    /// exits afterwards, so its namespace never leaks to anything else.
    /// A panic in `f` is propagated to the caller.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let fd = self.fd.as_fd();
        let joined = std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("netkit-netns".into())
                .spawn_scoped(s, move || -> Result<T> {
                    // setns(2) needs CAP_SYS_ADMIN even into the namespace
                    // the thread is already in; skipping that no-op lets a
                    // process confined to CAP_NET_ADMIN (the agent's
                    // systemd unit) work on its own namespace.
                    if !self.is_current()? {
                        setns(fd, CloneFlags::CLONE_NEWNET)
                            .map_err(|e| Error::nix(format!("setns into {}", self.label), e))?;
                    }
                    Ok(f())
                })
                .map(|h| h.join())
        });
        match joined {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => Err(Error::io("spawn netns thread", e)),
        }
    }

    /// Is this the calling thread's namespace (same nsfs inode)?
    fn is_current(&self) -> Result<bool> {
        let ctx = || format!("compare {} with the current netns", self.label);
        let mine = nix::sys::stat::fstat(self.fd.as_fd()).map_err(|e| Error::nix(ctx(), e))?;
        let here =
            nix::sys::stat::stat("/proc/thread-self/ns/net").map_err(|e| Error::nix(ctx(), e))?;
        Ok(mine.st_dev == here.st_dev && mine.st_ino == here.st_ino)
    }

    /// A netlink socket opened inside this namespace. The socket stays bound
    /// to it for its whole life and can be driven from any thread.
    pub fn netlink(&self) -> Result<Netlink> {
        let label = self.label.clone();
        self.run(move || Netlink::open_labelled(label))?
    }

    /// [`Netns::run`] on the calling thread, without a thread start: the
    /// thread enters this namespace, runs `f` and returns to its own
    /// namespace before this returns (see the module docs). Going back
    /// cannot fail short of the kernel refusing `setns(2)` into a namespace
    /// the thread was just in; if it does, the process aborts.
    pub fn run_here<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        if self.is_current()? {
            return Ok(f());
        }
        let home = Self::current()?;
        setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::nix(format!("setns into {}", self.label), e))?;
        let _back = GoBack(home);
        Ok(f())
    }

    /// [`Netns::netlink`] without a thread start ([`Netns::run_here`]).
    pub fn netlink_here(&self) -> Result<Netlink> {
        let label = self.label.clone();
        self.run_here(move || Netlink::open_labelled(label))?
    }
}

/// Returns the calling thread to the namespace it holds when dropped.
struct GoBack(Netns);

impl Drop for GoBack {
    fn drop(&mut self) {
        if let Err(e) = setns(self.0.fd.as_fd(), CloneFlags::CLONE_NEWNET) {
            eprintln!("netkit: cannot return to the original network namespace ({e}); aborting");
            std::process::abort();
        }
    }
}
