//! podrun's test harness: a private containerd (own root, state, socket
//! and config in a temp dir, CRI disabled), the busybox test image built
//! from `busybox-static` and imported, and a [`PodNode`] that runs podrun
//! inside a node netns with netboot-cni in native mode.
//!
//! Everything is stopped and removed on drop: the containerd by PID, the
//! node netns with it. Nothing touches the root network namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::exec::{self, CmdOutput};
use crate::node::{Node, SubnetEnv};

/// The test image's reference.
pub const BUSYBOX: &str = "docker.io/library/busybox:netboot";
/// containerd namespace used by the tests.
pub const NAMESPACE: &str = "podrun-test";

/// A containerd of our own.
pub struct Containerd {
    child: Child,
    dir: TempDir,
}

impl Containerd {
    /// Starts containerd and waits for its socket; imports the test image.
    pub fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("podrun-ctd-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{r}\"\nstate = \"{s}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{a}\"\n[ttrpc]\n  address = \"{a}.ttrpc\"\n",
            r = d.join("root").display(),
            s = d.join("state").display(),
            a = d.join("containerd.sock").display(),
        );
        fs::write(d.join("config.toml"), config).expect("write config");
        let log = fs::File::create(d.join("containerd.log")).expect("log file");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("start containerd (install it with scripts/install-deps.sh)");
        let c = Containerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.ctr(&["version"]).success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c.ctr(&["images", "import", test_image().to_str().expect("utf-8")])
            .expect_ok();
        c
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// containerd's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// `ctr --address SOCK -n NAMESPACE ARGS` (test setup and assertions
    /// only; podrun itself speaks gRPC).
    pub fn ctr(&self, args: &[&str]) -> CmdOutput {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.socket())
            .args(["-n", NAMESPACE])
            .args(args);
        exec::run(cmd, None, Duration::from_secs(60))
    }

    /// Non-empty lines of `ctr ARGS -q`.
    pub fn ids(&self, what: &str) -> Vec<String> {
        let out = self.ctr(&[what, "ls", "-q"]).expect_ok().stdout;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    /// Keys of the active (non-committed) snapshots.
    pub fn active_snapshots(&self) -> Vec<String> {
        let out = self.ctr(&["snapshots", "ls"]).expect_ok().stdout;
        out.lines()
            .skip(1)
            .filter(|l| l.contains("Active"))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Our own PID only; the shims of removed tasks are gone already.
        let leaked = self.ctr(&["tasks", "ls", "-q"]).stdout;
        for id in leaked.lines().filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr(&["tasks", "delete", "-f", id]);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The runc root the shim made for our namespace, if empty.
        let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(NAMESPACE));
    }
}

/// The busybox OCI tarball, built once into the target dir (atomically,
/// so parallel test processes share it).
pub fn test_image() -> PathBuf {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let dir = target_dir().join("podrun-test-image");
            fs::create_dir_all(&dir).expect("image dir");
            let out = dir.join("busybox.tar");
            if out.is_file() {
                return out;
            }
            let tmp = dir.join(format!("busybox.tar.{}", std::process::id()));
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-image.sh");
            exec::run_argv(&[
                "bash",
                script.to_str().expect("utf-8"),
                tmp.to_str().expect("utf-8"),
                BUSYBOX,
            ])
            .expect_ok();
            fs::rename(&tmp, &out).expect("rename image");
            out
        })
        .clone()
}

/// The target dir podrun was built into.
fn target_dir() -> PathBuf {
    crate::bin_path("podrun")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// The static pause binary: `pause` built with crt-static into
/// `<target>/pause-static`, once per test process.
pub fn pause_bin() -> PathBuf {
    static PAUSE: OnceLock<PathBuf> = OnceLock::new();
    PAUSE
        .get_or_init(|| {
            let target = target_dir().join("pause-static");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut cmd = Command::new(cargo);
            cmd.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
                .env("CARGO_TARGET_DIR", &target)
                .args(["rustc", "-q", "-p", "podrun", "--bin", "pause", "--", "-C"])
                .arg("target-feature=+crt-static");
            exec::run(cmd, None, Duration::from_secs(600)).expect_ok();
            target.join("debug").join("pause")
        })
        .clone()
}

/// A node netns with a conflist for netboot-cni (native mode), a CNI
/// cache and a podrun state dir of its own.
pub struct PodNode {
    pub node: Node,
    pub ctd: Containerd,
}

impl PodNode {
    /// A node whose pods get addresses from `subnet` (e.g. "10.88.1.1/24").
    pub fn new(tag: &str, subnet: &str) -> PodNode {
        let node = Node::new(tag);
        let env = SubnetEnv {
            network: "10.88.0.0/16".into(),
            subnet: subnet.into(),
            ..SubnetEnv::default()
        };
        let subnet_file = node.write_subnet_env(&env);
        let bin = node.data_dir("bin");
        fs::copy(crate::bin_path("netboot-cni"), bin.join("netboot-cni")).expect("copy plugin");
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "podnet",
            "plugins": [{
                "type": "netboot-cni",
                "mode": "native",
                "subnetFile": subnet_file,
                "dataDir": node.data_dir("data"),
                "ipam": {"dataDir": node.data_dir("ipam")},
                "delegate": {"isDefaultGateway": true, "hairpinMode": true},
                "capabilities": {"portMappings": true},
            }],
        });
        node.write_conf("10-podnet.conflist", &conf);
        PodNode {
            node,
            ctd: Containerd::start(),
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.node.dir().join("state")
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.node.dir().join("cni-cache")
    }

    /// `podrun ARGS` inside the node netns with this node's flags.
    pub fn podrun(&self, args: &[&str]) -> CmdOutput {
        exec::run(self.podrun_cmd(args), None, Duration::from_secs(120))
    }

    /// The command line of [`PodNode::podrun`], to spawn it yourself.
    pub fn podrun_cmd(&self, args: &[&str]) -> Command {
        let podrun = crate::bin_path("podrun");
        let mut argv: Vec<String> = vec![
            podrun.display().to_string(),
            "--address".into(),
            self.ctd.socket().display().to_string(),
            "--namespace".into(),
            NAMESPACE.into(),
            "--cni-conf-dir".into(),
            self.node.dir().join("net.d").display().to_string(),
            "--cni-bin-dir".into(),
            self.node.dir().join("bin").display().to_string(),
            "--cni-cache-dir".into(),
            self.cache_dir().display().to_string(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
            "--pause-bin".into(),
            pause_bin().display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        exec::nsenter(self.node.path(), &refs)
    }

    /// Writes a pod spec (JSON) into the node dir; returns its path.
    pub fn write_spec(&self, name: &str, spec: &Value) -> PathBuf {
        let p = self.node.dir().join(format!("{name}.json"));
        fs::write(&p, serde_json::to_string_pretty(spec).expect("json")).expect("write spec");
        p
    }

    /// `podrun run -f SPEC`, which must succeed.
    #[track_caller]
    pub fn run_pod(&self, spec: &Value) -> CmdOutput {
        let name = spec["name"].as_str().expect("spec name");
        let file = self.write_spec(name, spec);
        self.podrun(&["run", "-f", file.to_str().expect("utf-8")])
            .expect_ok()
    }

    /// Asserts that nothing of any pod is left: containerd containers,
    /// tasks and active snapshots, CNI cache entries, podrun netns and
    /// pod state.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert_eq!(
            self.ctd.ids("containers"),
            Vec::<String>::new(),
            "containers left"
        );
        assert_eq!(self.ctd.ids("tasks"), Vec::<String>::new(), "tasks left");
        assert_eq!(
            self.ctd.active_snapshots(),
            Vec::<String>::new(),
            "snapshots left"
        );
        let results = self.cache_dir().join("results");
        let cached: Vec<_> = fs::read_dir(&results)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(cached.is_empty(), "CNI cache left: {cached:?}");
        let pods: Vec<_> = fs::read_dir(self.state_dir().join("pods"))
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(pods.is_empty(), "pod state left: {pods:?}");
        assert_eq!(
            podrun_netns(&self.state_dir()),
            Vec::<String>::new(),
            "netns left"
        );
    }
}

impl Drop for PodNode {
    /// Removes whatever pods a failed test left, before containerd stops.
    fn drop(&mut self) {
        let pods: Vec<String> = fs::read_dir(self.state_dir().join("pods"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        for pod in pods {
            let out = self.podrun(&["rm", "--grace", "0", &pod]);
            if !out.success() {
                eprintln!("[harness] cleanup of pod {pod} failed: {out}");
            }
        }
    }
}

/// Named netns podrun made for the instance with `state_dir`: their names
/// carry the instance's hash, so look for any `podrun-*` whose pod state
/// is ours. Simpler and stricter: every `podrun-<hash>-*` for our hash.
pub fn podrun_netns(state_dir: &Path) -> Vec<String> {
    let Some(hash) = instance_hash(state_dir) else {
        return Vec::new();
    };
    let prefix = format!("podrun-{hash}-");
    fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// podrun's instance hash: first 4 bytes of sha256(canonical state dir),
/// computed with `sha256sum` to stay independent of podrun's code.
fn instance_hash(state_dir: &Path) -> Option<String> {
    let canon = state_dir.canonicalize().ok()?;
    let mut cmd = Command::new("sha256sum");
    cmd.stdin(Stdio::piped());
    let out = exec::run(
        cmd,
        Some(canon.as_os_str().as_encoded_bytes()),
        Duration::from_secs(10),
    );
    out.stdout.get(..8).map(String::from)
}

/// A pod spec with `containers` and the defaults the tests use.
pub fn pod_spec(name: &str, containers: Value) -> Value {
    json!({"name": name, "containers": containers})
}
