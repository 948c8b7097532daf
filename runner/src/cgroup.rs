//! What podrun reads from cgroups itself: the hierarchy version, whether
//! swap can be limited, and a container's OOM-kill counter. Limits are
//! set by runc from the OCI spec (cgroupfs driver: `cgroupsPath`
//! `/<ns>/<id>` is `<root>/<ns>/<id>` on v2, `<root>/<controller>/<ns>/<id>`
//! on v1).

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// The host's cgroup mount point.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The OCI `cgroupsPath` of container `id` in containerd namespace `ns`,
/// for runc's cgroupfs driver (the runc shim's default: podrun sets no
/// `SystemdCgroup` option): an absolute path, taken relative to each
/// hierarchy's root (`<root>/<ns>/<id>` on v2,
/// `<root>/<controller>/<ns>/<id>` on v1). The systemd driver would want
/// `slice:prefix:name` instead, which podrun does not use.
pub fn cgroups_path(ns: &str, id: &str) -> String {
    format!("/{ns}/{id}")
}

/// A cgroup hierarchy (the host's, or a fake one in tests).
#[derive(Debug, Clone)]
pub struct Cgroups {
    root: PathBuf,
    v2: bool,
    /// Where the namespace parent locks live (see [`ParentInUse`]).
    lock_dir: PathBuf,
}

/// Held while a task is created in a namespace. runc creates
/// `/<ns>/<id>` with a recursive mkdir, so a `rm` removing the empty
/// parent `/<ns>` between its two steps would fail the create; `rm`
/// leaves the parent while any holder exists (a shared `flock(2)`,
/// machine-wide like the cgroups themselves, dropped by the kernel when
/// its holder dies).
pub struct ParentInUse {
    _lock: Flock<File>,
}

/// Where [`Cgroups::host`] keeps its parent locks.
pub const LOCK_DIR: &str = "/run/podrun";

/// What the OCI spec generation needs to know about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// Unified hierarchy (cgroup v2).
    pub v2: bool,
    /// A memory+swap limit can be set.
    pub swap: bool,
}

impl Cgroups {
    /// The hierarchy mounted at `root`: v2 when `cgroup.controllers` is at
    /// its top (cgroup2fs), else v1 with one directory per controller.
    pub fn at(root: &Path) -> Cgroups {
        Cgroups {
            root: root.to_owned(),
            v2: root.join("cgroup.controllers").exists(),
            lock_dir: root.to_owned(),
        }
    }

    pub fn host() -> Cgroups {
        Cgroups {
            lock_dir: PathBuf::from(LOCK_DIR),
            ..Cgroups::at(Path::new(ROOT))
        }
    }

    fn parent_lock(&self, ns: &str, arg: FlockArg) -> std::io::Result<Option<Flock<File>>> {
        fs::create_dir_all(&self.lock_dir)?;
        let path = self.lock_dir.join(format!("cgroup-parent-{ns}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match Flock::lock(file, arg) {
            Ok(held) => Ok(Some(held)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(std::io::Error::from(e)),
        }
    }

    /// Keeps namespace `ns`'s parent cgroup from being removed until the
    /// guard drops (take it around a task create).
    pub fn parent_in_use(&self, ns: &str) -> anyhow::Result<ParentInUse> {
        use anyhow::Context;
        let held = self
            .parent_lock(ns, FlockArg::LockShared)
            .with_context(|| format!("lock the cgroup parent of namespace {ns:?}"))?;
        Ok(ParentInUse {
            _lock: held.context("a blocking lock always returns one")?,
        })
    }

    /// Where the hierarchy is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether the cgroup `path` (an OCI `cgroupsPath`) exists: runc
    /// creates it at task create and removes it at task delete (v1: look
    /// in the memory hierarchy, where every container has one).
    pub fn exists(&self, path: &str) -> bool {
        let rel = path.trim_start_matches('/');
        if self.v2 {
            self.root.join(rel).is_dir()
        } else {
            self.root.join("memory").join(rel).is_dir()
        }
    }

    /// Whether a memory+swap limit can be set, else runc refuses the spec.
    /// v1: only with swap accounting (`memory.memsw.*` at the memory
    /// root). v2: when cgroups have `memory.swap.max` (not the root one:
    /// look at its children, e.g. `init.scope`, `system.slice`).
    pub fn swap_limit_supported(&self) -> bool {
        if !self.v2 {
            return self
                .root
                .join("memory/memory.memsw.limit_in_bytes")
                .exists();
        }
        fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.path().join("memory.swap.max").exists())
            })
            .unwrap_or(false)
    }

    pub fn host_info(&self) -> Host {
        Host {
            v2: self.v2,
            swap: self.swap_limit_supported(),
        }
    }

    /// The file that counts OOM kills of cgroup `path` (an OCI
    /// `cgroupsPath`): v2 `memory.events`, v1 `memory.oom_control`.
    fn oom_file(&self, path: &str) -> PathBuf {
        let rel = path.trim_start_matches('/');
        if self.v2 {
            self.root.join(rel).join("memory.events")
        } else {
            self.root
                .join("memory")
                .join(rel)
                .join("memory.oom_control")
        }
    }

    /// OOM kills in the cgroup: the `oom_kill N` line both files have
    /// (v1 since kernel 4.13). `None` when the cgroup is gone.
    pub fn oom_kills(&self, path: &str) -> Option<u64> {
        let text = fs::read_to_string(self.oom_file(path)).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
    }

    /// Removes the namespace's parent cgroup (`/<ns>` in each hierarchy)
    /// that runc creates for `cgroupsPath` but never deletes, if no
    /// container is left in it and no task is being created in it
    /// ([`ParentInUse`]). Busy or missing directories are left.
    pub fn remove_parent_if_empty(&self, ns: &str) {
        let Ok(Some(_alone)) = self.parent_lock(ns, FlockArg::LockExclusiveNonblock) else {
            return;
        };
        let dirs: Vec<PathBuf> = if self.v2 {
            vec![self.root.join(ns)]
        } else {
            fs::read_dir(&self.root)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn v2_oom_from_memory_events_and_swap_from_children() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(
            &root.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        );
        let cg = Cgroups::at(root);
        assert!(cg.v2);
        assert!(!cg.swap_limit_supported());
        write(&root.join("init.scope/memory.swap.max"), "max\n");
        assert_eq!(
            cg.host_info(),
            Host {
                v2: true,
                swap: true
            }
        );

        assert_eq!(cg.oom_kills("/netboot/p-1.c"), None, "no cgroup");
        let events = root.join("netboot/p-1.c/memory.events");
        write(&events, "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\n");
        assert_eq!(cg.oom_kills("/netboot/p-1.c"), Some(0));
        write(&events, "low 0\nhigh 0\nmax 40\noom 2\noom_kill 1\n");
        assert_eq!(cg.oom_kills("/netboot/p-1.c"), Some(1));
        // A v1 file in the v2 tree is not read.
        write(
            &root.join("memory/netboot/x/memory.oom_control"),
            "oom_kill 3\n",
        );
        assert_eq!(cg.oom_kills("/netboot/x"), None);

        fs::remove_dir_all(root.join("netboot/p-1.c")).unwrap();
        // A task being created elsewhere keeps the empty parent.
        let creating = cg.parent_in_use("netboot").unwrap();
        cg.remove_parent_if_empty("netboot");
        assert!(root.join("netboot").is_dir());
        drop(creating);
        cg.remove_parent_if_empty("netboot");
        assert!(!root.join("netboot").exists());
    }

    #[test]
    fn v1_oom_from_oom_control_and_swap_from_memsw() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        fs::create_dir_all(root.join("memory")).unwrap();
        fs::create_dir_all(root.join("cpu/netboot")).unwrap();
        let cg = Cgroups::at(root);
        assert!(!cg.v2);
        assert_eq!(
            cg.host_info(),
            Host {
                v2: false,
                swap: false
            }
        );
        write(
            &root.join("memory/memory.memsw.limit_in_bytes"),
            "9223372036854771712\n",
        );
        assert!(cg.swap_limit_supported());
        write(
            &root.join("memory/netboot/p-1.c/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        assert_eq!(cg.oom_kills("netboot/p-1.c"), Some(2));
        // Busy (non-empty) parents stay; empty ones go.
        cg.remove_parent_if_empty("netboot");
        assert!(root.join("memory/netboot").exists());
        assert!(!root.join("cpu/netboot").exists());
    }

    /// The layout of this project's CI machine (hybrid, systemd-style):
    /// /sys/fs/cgroup a tmpfs with one v1 hierarchy per controller, plus
    /// a cgroup2 mount at `unified/` holding no controller podrun uses.
    /// runc sees v1 there (it checks the filesystem type of
    /// /sys/fs/cgroup), and so must podrun: `cgroup.controllers` is only
    /// under `unified/`, not at the top.
    #[test]
    fn cgroups_path_is_cgroupfs_and_found_where_runc_puts_it() {
        let p = cgroups_path("netboot", "web-0a1b2c3d.httpd");
        assert_eq!(p, "/netboot/web-0a1b2c3d.httpd");
        assert!(
            !p.contains(':'),
            "a systemd-driver path (slice:prefix:name)"
        );
        let d = tempfile::tempdir().unwrap();
        let v1 = Cgroups::at(d.path());
        write(
            &d.path()
                .join("memory/netboot/web-0a1b2c3d.httpd/memory.oom_control"),
            "oom_kill 0\n",
        );
        assert!(v1.exists(&p));
        let d2 = tempfile::tempdir().unwrap();
        write(&d2.path().join("cgroup.controllers"), "memory\n");
        write(
            &d2.path().join("netboot/web-0a1b2c3d.httpd/memory.events"),
            "oom_kill 0\n",
        );
        assert!(Cgroups::at(d2.path()).exists(&p));
    }

    #[test]
    fn hybrid_layout_is_v1() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for ctrl in [
            "cpu", "cpuacct", "cpuset", "memory", "devices", "pids", "systemd",
        ] {
            fs::create_dir_all(root.join(ctrl)).unwrap();
        }
        write(&root.join("unified/cgroup.controllers"), "hugetlb\n");
        write(&root.join("unified/cgroup.subtree_control"), "\n");
        let cg = Cgroups::at(root);
        assert!(!cg.v2);
        // The kernel's v1 file, as this machine shows it.
        write(
            &root.join("memory/netboot/p-1.c/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        );
        assert!(cg.exists("/netboot/p-1.c"));
        assert!(!cg.exists("/netboot/p-2.c"));
        assert_eq!(cg.oom_kills("/netboot/p-1.c"), Some(1));
        // runc leaves `/<ns>` in every hierarchy, the unified one too.
        fs::create_dir_all(root.join("unified/netboot")).unwrap();
        fs::create_dir_all(root.join("cpu/netboot")).unwrap();
        fs::remove_dir_all(root.join("memory/netboot/p-1.c")).unwrap();
        cg.remove_parent_if_empty("netboot");
        for ctrl in ["unified", "cpu", "memory"] {
            assert!(!root.join(ctrl).join("netboot").exists(), "{ctrl}");
        }
    }

    /// memory.events as kernels since 5.19 write it (with
    /// `oom_group_kill`), and a container cgroup on v2 found directly
    /// under the root.
    #[test]
    fn v2_memory_events_of_newer_kernels() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        write(
            &root.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        );
        let events = root.join("netboot/p-1.c/memory.events");
        write(
            &events,
            "low 0\nhigh 0\nmax 57\noom 1\noom_kill 1\noom_group_kill 0\n",
        );
        let cg = Cgroups::at(root);
        assert!(cg.exists("/netboot/p-1.c"));
        assert_eq!(cg.oom_kills("/netboot/p-1.c"), Some(1));
        // memory.events.local (no descendants) is not what is read.
        write(
            &root.join("netboot/p-1.c/memory.events.local"),
            "oom_kill 9\n",
        );
        assert_eq!(cg.oom_kills("/netboot/p-1.c"), Some(1));
    }
}
