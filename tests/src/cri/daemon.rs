//! A private containerd with its CRI plugin enabled, running inside a node
//! netns, so that the CNI plugins it execs build cni0, veths and firewall
//! rules in that node and never in the root netns.
//!
//! Config (containerd 1.6, config version 2): own root, state and gRPC
//! socket in a temp dir; `sandbox_image` = the locally built pause image
//! (no registry is reachable); CNI `bin_dir`/`conf_dir` given by the test;
//! overlayfs and runc v2; apparmor off (the test images carry no
//! profile); the stream server on loopback of the node netns;
//! `restrict_oom_score_adj` (CRI gives the sandbox -998, and this machine
//! refuses a negative oom_score_adj with EIO: runc's init then dies with
//! "can't get final child's PID from pipe"; restricted, CRI never goes
//! below containerd's own score).
//!
//! Drop: every sandbox is stopped and removed through CRI (netns paths
//! noted first), leftover tasks are killed with `ctr`, containerd is
//! killed by its PID, the shims are reaped, then whatever CRI could not
//! remove is removed here: the pod netns it made (`/run/netns/cni-*`,
//! known from the sandboxes' status) and any mount left under the temp dir
//! (overlay rootfs, sandbox shm).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::client::{Cri, SharedSeen};
use crate::exec::{self, CmdOutput};

/// The containerd namespace CRI works in.
pub const K8S_NAMESPACE: &str = "k8s.io";
/// The sandbox image reference (built locally, see [`pause_image`]).
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:netboot";

/// libcni's result cache, where containerd's CRI keeps every ADD result.
pub const CNI_RESULTS: &str = "/var/lib/cni/results";

/// Where a CRI containerd finds its CNI plugins and configs.
#[derive(Debug, Clone)]
pub struct CniDirs {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
}

/// containerd with CRI, in a node netns. See the module doc.
pub struct CriContainerd {
    child: Child,
    dir: TempDir,
    /// What every client made by [`CriContainerd::client`] learnt.
    seen: SharedSeen,
    node_netns: PathBuf,
}

impl CriContainerd {
    /// Starts containerd inside `node_netns` (`nsenter --net`, keeping the
    /// root mount namespace so its netns bind mounts and overlay mounts
    /// are visible to the test) and imports the pause image into `k8s.io`.
    pub fn start(node_netns: &Path, cni: &CniDirs) -> CriContainerd {
        let dir = tempfile::Builder::new()
            .prefix("netboot-cri-")
            .tempdir()
            .expect("temp dir");
        fs::write(dir.path().join("config.toml"), config(dir.path(), cni)).expect("config");
        crate::reaper::adopt_orphans();
        let child = spawn(node_netns, dir.path());
        let c = CriContainerd {
            child,
            dir,
            node_netns: node_netns.to_owned(),
            seen: SharedSeen::default(),
        };
        if let Err(e) = c.wait_ready() {
            panic!("{e}");
        }
        // The plugins containerd execs build in its netns: it must be the
        // node's, never the root netns.
        let ino = |p: &Path| fs::metadata(p).map(|m| m.ino()).ok();
        let own = ino(&Path::new("/proc").join(c.pid().to_string()).join("ns/net"));
        assert_eq!(own, ino(node_netns), "containerd is not in the node netns");
        c.ctr(&["images", "import", path_str(&pause_image())])
            .expect_ok();
        c
    }

    /// Polls until CRI answers `Version` (the CRI plugin loads after the
    /// core services, so a bare socket is not enough).
    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(cri) = Cri::connect(&self.socket(), self.seen.clone()) {
                if cri.version().is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("containerd's CRI did not come up: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A CRI client on this containerd.
    pub fn client(&self) -> Cri {
        Cri::connect(&self.socket(), self.seen.clone())
            .unwrap_or_else(|e| panic!("connect to CRI: {e}\n{}", self.log()))
    }

    /// containerd's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs containerd (its own PID) and waits for it: the shims and
    /// sandboxes keep running, as on a containerd crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The temp dir holding its config, root, state, socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The gRPC socket (CRI and containerd's own services).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// A directory for pod logs (`log_directory`), outside the node dir
    /// that node snapshots compare.
    pub fn pod_log_dir(&self, pod: &str) -> PathBuf {
        let d = self.dir.path().join("pod-logs").join(pod);
        fs::create_dir_all(&d).expect("pod log dir");
        d
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr -n k8s.io ARGS` on this containerd (setup and cleanup only).
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        crate::containerd::ctr_at(&self.socket(), K8S_NAMESPACE, args)
    }

    /// Imports an OCI archive into `k8s.io` (e.g. the busybox test image).
    pub fn import(&self, archive: &Path) {
        self.ctr(&["images", "import", path_str(archive)])
            .expect_ok();
    }

    /// Stops and removes every sandbox CRI knows, noting their netns.
    fn remove_sandboxes(&self) {
        let Ok(cri) = Cri::connect(&self.socket(), self.seen.clone()) else {
            return;
        };
        for id in cri.sandbox_ids().unwrap_or_default() {
            let _ = cri.netns_of(&id);
            if let Err(e) = cri.stop_sandbox(&id) {
                eprintln!("[harness] CRI StopPodSandbox {id}: {e}");
            }
            if let Err(e) = cri.remove_sandbox(&id) {
                eprintln!("[harness] CRI RemovePodSandbox {id}: {e}");
            }
        }
    }

    /// Tasks CRI left (a failed stop): killed and deleted by ID.
    fn kill_tasks(&self) {
        let leaked = self.ctr(&["tasks", "ls", "-q"]).stdout;
        for id in leaked.lines().filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "delete", "-f", id]);
        }
    }
}

impl Drop for CriContainerd {
    fn drop(&mut self) {
        // A test that killed containerd (or saw it die) still has pods
        // running under shims: a new containerd on the same root and
        // state is what can stop and remove them.
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            self.child = spawn(&self.node_netns, self.dir.path());
            if let Err(e) = self.wait_ready() {
                eprintln!("[harness] restarting containerd for cleanup: {e}");
            }
        }
        self.remove_sandboxes();
        self.kill_tasks();
        // Our own PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::reaper::reap_shims();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for netns in seen.netns.iter().filter(|p| p.exists()) {
            eprintln!("[harness] removing leftover pod netns {}", netns.display());
            let _ = nix::mount::umount2(netns, nix::mount::MntFlags::MNT_DETACH);
            let _ = fs::remove_file(netns);
        }
        // libcni's result cache (containerd 1.6 cannot move it from
        // /var/lib/cni): the pod network's and the loopback's entries.
        for e in fs::read_dir(CNI_RESULTS).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if seen.sandboxes.iter().any(|id| name.contains(id.as_str())) {
                eprintln!("[harness] removing leftover CNI cache entry {name}");
                let _ = fs::remove_file(e.path());
            }
        }
        for m in mounts_under(self.dir.path()).iter().rev() {
            eprintln!("[harness] unmounting leftover {}", m.display());
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(K8S_NAMESPACE));
    }
}

/// containerd on `dir`'s config inside `node_netns`, appending to its
/// log. `nsenter --net` only: the root mount namespace is kept, so its
/// netns bind mounts and overlay mounts are the test's to see and undo.
fn spawn(node_netns: &Path, dir: &Path) -> Child {
    crate::containerd::spawn_containerd(exec::nsenter(node_netns, &["containerd"]), dir)
}

/// containerd's config.toml for a CRI containerd keeping everything in
/// `dir`.
fn config(dir: &Path, cni: &CniDirs) -> String {
    let cri = "plugins.\"io.containerd.grpc.v1.cri\"";
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"

[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_tls_streaming = false
[{cri}.cni]
  bin_dir = "{bin}"
  conf_dir = "{conf}"
  max_conf_num = 1
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
"#,
        root = dir.join("root").display(),
        state = dir.join("state").display(),
        sock = dir.join("containerd.sock").display(),
        bin = cni.bin_dir.display(),
        conf = cni.conf_dir.display(),
    )
}

/// Mount points at or under `dir`, in mount order (from mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The pause image as an OCI archive, built into the target dir from
/// [`crate::containerd::pause_bin`] once per build of it (atomically, so
/// parallel test processes share it).
pub fn pause_image() -> PathBuf {
    static IMAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let pause = crate::containerd::pause_bin();
            let dir = pause.parent().expect("pause dir").to_owned();
            let out = dir.join("pause-image.tar");
            let mtime = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
            // Rebuilt when the pause binary is newer (podrun's pause changed).
            if out.is_file() && mtime(&out) >= mtime(&pause) {
                return out;
            }
            crate::containerd::build_image(&out, &["--pause", path_str(&pause)], PAUSE_IMAGE);
            out
        })
        .clone()
}
