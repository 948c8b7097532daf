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
use crate::netns::Netns;
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
        crate::reaper::adopt_orphans();
        let child = spawn(d);
        let c = Containerd { child, dir };
        c.wait_ready();
        c.ctr(&["images", "import", test_image().to_str().expect("utf-8")])
            .expect_ok();
        c
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.ctr(&["version"]).success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// containerd's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops containerd with `signal` (our own PID only) and waits for it
    /// to exit; the shims and their tasks keep running.
    pub fn stop(&mut self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        let _ = self.child.wait();
    }

    /// Starts containerd again on the same root, state and socket (after
    /// [`Containerd::stop`]) and waits until it answers.
    pub fn start_again(&mut self) {
        self.child = spawn(self.dir.path());
        self.wait_ready();
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
        self.ctr_in(NAMESPACE, args)
    }

    /// `ctr` in containerd namespace `ns`.
    pub fn ctr_in(&self, ns: &str, args: &[&str]) -> CmdOutput {
        ctr_at(&self.socket(), ns, args)
    }

    /// Imports the test image into namespace `ns` as well (`start` does
    /// it for [`NAMESPACE`]).
    pub fn import_image(&self, ns: &str) {
        let image = test_image();
        self.ctr_in(ns, &["images", "import", image.to_str().expect("utf-8")])
            .expect_ok();
    }

    /// Non-empty lines of `ctr ARGS -q`.
    pub fn ids(&self, what: &str) -> Vec<String> {
        self.ids_in(NAMESPACE, what)
    }

    /// Non-empty lines of `ctr -n NS WHAT ls -q`.
    pub fn ids_in(&self, ns: &str, what: &str) -> Vec<String> {
        let out = self.ctr_in(ns, &[what, "ls", "-q"]).expect_ok().stdout;
        out.lines()
            .filter(|l| !l.trim().is_empty())
            .map(String::from)
            .collect()
    }

    /// Kills and deletes the tasks and containers `ids` of namespace `ns`
    /// (a test's own leftovers, e.g. of a pod whose state it removed).
    pub fn remove_containers(&self, ns: &str, ids: &[String]) {
        for id in ids {
            let _ = self.ctr_in(ns, &["tasks", "kill", "-s", "SIGKILL", id]);
            let _ = self.ctr_in(ns, &["tasks", "delete", "-f", id]);
            let _ = self.ctr_in(ns, &["containers", "delete", id]);
        }
    }

    /// Keys of the active (non-committed) snapshots.
    pub fn active_snapshots(&self) -> Vec<String> {
        self.active_snapshots_in(NAMESPACE)
    }

    /// Keys of the active snapshots of namespace `ns`.
    pub fn active_snapshots_in(&self, ns: &str) -> Vec<String> {
        let out = self.ctr_in(ns, &["snapshots", "ls"]).expect_ok().stdout;
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
        let namespaces = self.ctr(&["namespaces", "ls", "-q"]).stdout;
        let mut namespaces: Vec<&str> = namespaces.lines().filter(|l| !l.is_empty()).collect();
        if !namespaces.contains(&NAMESPACE) {
            namespaces.push(NAMESPACE);
        }
        for ns in &namespaces {
            let leaked = self.ctr_in(ns, &["tasks", "ls", "-q"]).stdout;
            for id in leaked.lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr_in(ns, &["tasks", "kill", "-s", "SIGKILL", id]);
                let _ = self.ctr_in(ns, &["tasks", "delete", "-f", id]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::reaper::reap_shims();
        // The runc roots the shims made for our namespaces, if empty.
        for ns in namespaces {
            let _ = fs::remove_dir(Path::new("/run/containerd/runc").join(ns));
        }
    }
}

/// containerd on the config in `dir`, its output appended to the log.
fn spawn(dir: &Path) -> Child {
    spawn_containerd(Command::new("containerd"), dir)
}

/// `containerd` (`cmd`, perhaps under nsenter) on the config in `dir`, its
/// output appended to `dir`/containerd.log.
pub(crate) fn spawn_containerd(mut containerd: Command, dir: &Path) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("containerd.log"))
        .expect("log file");
    containerd
        .arg("--config")
        .arg(dir.join("config.toml"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .spawn()
        .expect("start containerd (install it with scripts/install-deps.sh)")
}

/// `ctr --address SOCKET -n NS ARGS`, for any test containerd (setup,
/// cleanup and assertions only).
pub fn ctr_at(socket: &Path, ns: &str, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new("ctr");
    cmd.arg("--address").arg(socket).args(["-n", ns]).args(args);
    exec::run(cmd, None, Duration::from_secs(60))
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
            build_image(&out, &[], BUSYBOX);
            out
        })
        .clone()
}

/// scripts/build-test-image.sh `args` TMP `image`, then TMP renamed to
/// `out` (so a parallel test process never reads a half-written archive).
pub(crate) fn build_image(out: &Path, args: &[&str], image: &str) {
    let tmp = PathBuf::from(format!("{}.{}", out.display(), std::process::id()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-test-image.sh");
    let utf8 = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    let mut argv = vec!["bash".to_owned(), utf8(&script)];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend([utf8(&tmp), image.to_owned()]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    exec::run_argv(&argv).expect_ok();
    fs::rename(&tmp, out).expect("rename image");
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

/// One podrun instance: its flags (containerd socket and namespace,
/// `net.d`, CNI bin dir, CNI cache, state dir, by default all under `dir`)
/// and the netns it runs in (where the CNI plugins run). Several instances
/// may share a containerd, a network, a CNI cache, even a state dir (with
/// different namespaces): their containerd IDs and netns names differ.
///
/// Dropping it removes the pods it left (call it before its containerd
/// and its node netns go away: declare it after them).
pub struct Podrun {
    netns: PathBuf,
    dir: PathBuf,
    socket: PathBuf,
    namespace: String,
    state_dir: PathBuf,
    conf_dir: PathBuf,
    bin_dir: PathBuf,
    cache_dir: PathBuf,
    /// Pass `--pause-bin` with the static [`pause_bin`]; when false podrun
    /// runs its default, the `pause` beside it (the plain, dynamically
    /// linked build of `cargo build`).
    static_pause: bool,
}

impl Podrun {
    /// An instance in `netns` keeping its files in `dir`, talking to the
    /// containerd at `socket`, with `conflist` as its only network and
    /// netboot-cni on its CNI path.
    pub fn new(netns: &Path, dir: &Path, socket: &Path, conflist: &Value) -> Podrun {
        for sub in ["net.d", "bin", "state", "cni-cache"] {
            fs::create_dir_all(dir.join(sub)).expect("podrun dirs");
        }
        fs::copy(crate::bin_path("netboot-cni"), dir.join("bin/netboot-cni")).expect("copy plugin");
        let name = conflist["name"].as_str().expect("conflist name");
        fs::write(
            dir.join("net.d").join(format!("10-{name}.conflist")),
            serde_json::to_string_pretty(conflist).expect("json"),
        )
        .expect("write conflist");
        Podrun {
            netns: netns.to_owned(),
            dir: dir.to_owned(),
            socket: socket.to_owned(),
            namespace: NAMESPACE.into(),
            state_dir: dir.join("state"),
            conf_dir: dir.join("net.d"),
            bin_dir: dir.join("bin"),
            cache_dir: dir.join("cni-cache"),
            static_pause: true,
        }
    }

    /// From now on, no `--pause-bin`: podrun runs the `pause` beside it.
    pub fn use_pause_beside_podrun(&mut self) {
        self.static_pause = false;
    }

    /// The same instance with `--namespace ns`.
    pub fn with_namespace(mut self, ns: &str) -> Podrun {
        self.namespace = ns.into();
        self
    }

    /// The same instance with `other`'s `--state-dir`.
    pub fn with_state_dir_of(mut self, other: &Podrun) -> Podrun {
        self.state_dir = other.state_dir.clone();
        self
    }

    /// The same instance with `other`'s `--cni-conf-dir`, `--cni-bin-dir`
    /// and `--cni-cache-dir` (as two podruns with default flags share
    /// `/etc/cni/net.d`, `/opt/cni/bin` and `/var/lib/cni`).
    pub fn with_cni_of(mut self, other: &Podrun) -> Podrun {
        self.conf_dir = other.conf_dir.clone();
        self.bin_dir = other.bin_dir.clone();
        self.cache_dir = other.cache_dir.clone();
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// podrun's instance hash for this state dir and namespace: part of
    /// every containerd ID, CNI container ID and netns name it makes.
    pub fn instance(&self) -> String {
        instance_hash(&self.state_dir, &self.namespace).expect("instance hash")
    }

    /// The CNI container ID (pause container ID) of `pod`.
    pub fn sandbox_id(&self, pod: &str) -> String {
        format!("{pod}-{}", self.instance())
    }

    pub fn conf_dir(&self) -> PathBuf {
        self.conf_dir.clone()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.state_dir.clone()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone()
    }

    /// `<state-dir>/namespaces/<ns>/pods`: this instance's pods.
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir
            .join("namespaces")
            .join(&self.namespace)
            .join("pods")
    }

    /// The state directory of `pod`.
    pub fn pod_dir(&self, pod: &str) -> PathBuf {
        self.pods_dir().join(pod)
    }

    /// The lock file `run`/`stop`/`rm` of `pod` hold.
    pub fn lock_path(&self, pod: &str) -> PathBuf {
        self.state_dir
            .join("namespaces")
            .join(&self.namespace)
            .join("locks")
            .join(format!("{pod}.lock"))
    }

    /// Names of the pods with a state directory.
    pub fn pods(&self) -> Vec<String> {
        let mut pods: Vec<String> = fs::read_dir(self.pods_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        pods.sort();
        pods
    }

    /// `podrun ARGS` inside the netns with this instance's flags.
    pub fn podrun(&self, args: &[&str]) -> CmdOutput {
        exec::run(self.podrun_cmd(args), None, Duration::from_secs(120))
    }

    /// The command line of [`Podrun::podrun`], to spawn it yourself.
    pub fn podrun_cmd(&self, args: &[&str]) -> Command {
        let podrun = crate::bin_path("podrun");
        let mut argv: Vec<String> = vec![
            podrun.display().to_string(),
            "--address".into(),
            self.socket.display().to_string(),
            "--namespace".into(),
            self.namespace.clone(),
            "--cni-conf-dir".into(),
            self.conf_dir().display().to_string(),
            "--cni-bin-dir".into(),
            self.bin_dir.display().to_string(),
            "--cni-cache-dir".into(),
            self.cache_dir().display().to_string(),
            "--state-dir".into(),
            self.state_dir().display().to_string(),
        ];
        if self.static_pause {
            argv.extend(["--pause-bin".into(), pause_bin().display().to_string()]);
        }
        argv.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let mut cmd = exec::nsenter(&self.netns, &refs);
        cmd.env_remove("PODRUN_PAUSE");
        cmd
    }

    /// Writes a pod spec (JSON) into the instance dir; returns its path.
    pub fn write_spec(&self, name: &str, spec: &Value) -> PathBuf {
        let p = self.dir.join(format!("{name}.json"));
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

    /// The pod IP `podrun run` printed (`NAME\tIP`).
    #[track_caller]
    pub fn run_pod_ip(&self, spec: &Value) -> String {
        printed_ip(&self.run_pod(spec))
    }

    /// Asserts that nothing of this instance's pods is left: containerd
    /// containers, tasks and active snapshots (IDs carry the instance
    /// hash), CNI cache entries, podrun netns and pod state.
    #[track_caller]
    pub fn assert_clean(&self, ctd: &Containerd) {
        let hash = self.instance();
        let ours = |v: Vec<String>| -> Vec<String> {
            v.into_iter().filter(|id| id.contains(&hash)).collect()
        };
        let none = Vec::<String>::new();
        let ns = &self.namespace;
        assert_eq!(ours(ctd.ids_in(ns, "containers")), none, "containers left");
        assert_eq!(ours(ctd.ids_in(ns, "tasks")), none, "tasks left");
        assert_eq!(ours(ctd.active_snapshots_in(ns)), none, "snapshots left");
        assert_eq!(ours(self.cached()), none, "CNI cache left");
        assert_eq!(self.pods(), none, "pod state left");
        assert_eq!(self.netns(), none, "netns left");
    }

    /// File names in the CNI cache's `results/` (every instance sharing
    /// the cache included).
    pub fn cached(&self) -> Vec<String> {
        fs::read_dir(self.cache_dir.join("results"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// This instance's named netns (`podrun-<hash>-<pod>`).
    pub fn netns(&self) -> Vec<String> {
        podrun_netns(&self.instance())
    }
}

impl Drop for Podrun {
    /// Removes whatever pods a failed test left.
    fn drop(&mut self) {
        for pod in self.pods() {
            let out = self.podrun(&["rm", "--grace", "0", &pod]);
            if !out.success() {
                eprintln!("[harness] cleanup of pod {pod} failed: {out}");
            }
        }
        // A failed rm must not leave a netns behind: the name carries this
        // instance's hash, so it is ours.
        for name in self.netns() {
            let _ = exec::run_argv(&["ip", "netns", "delete", &name]);
        }
    }
}

/// A node netns with a conflist for netboot-cni (native mode), a CNI
/// cache and a podrun state dir of its own, and a private containerd.
pub struct PodNode {
    /// First field: dropped (its pods removed) before the node netns and
    /// containerd.
    pub pr: Podrun,
    pub node: Node,
    pub ctd: Containerd,
}

impl PodNode {
    /// A node whose pods get addresses from `subnet` (e.g. "10.88.1.1/24").
    pub fn new(tag: &str, subnet: &str) -> PodNode {
        PodNode::with(tag, subnet, "native", &json!({}))
    }

    /// A node whose netboot-cni runs in `mode` (`native`, or `bridge`
    /// with the reference bridge, host-local and portmap of
    /// [`crate::REFERENCE_CNI_PATH`] beside it on the CNI path), with the
    /// keys of `delegate` added to the delegate config (e.g. `dns`).
    pub fn with(tag: &str, subnet: &str, mode: &str, delegate: &Value) -> PodNode {
        let node = Node::new(tag);
        let env = SubnetEnv {
            network: "10.88.0.0/16".into(),
            subnet: subnet.into(),
            ..SubnetEnv::default()
        };
        let subnet_file = node.write_subnet_env(&env);
        let mut delegate_conf = json!({"isDefaultGateway": true, "hairpinMode": true});
        for (k, v) in delegate.as_object().into_iter().flatten() {
            delegate_conf[k] = v.clone();
        }
        let conf = json!({
            "cniVersion": "1.0.0",
            "name": "podnet",
            "plugins": [{
                "type": "netboot-cni",
                "mode": mode,
                "subnetFile": subnet_file,
                "dataDir": node.data_dir("data"),
                "ipam": {"dataDir": node.data_dir("ipam")},
                "delegate": delegate_conf,
                "capabilities": {"portMappings": true},
            }],
        });
        let ctd = Containerd::start();
        let pr = Podrun::new(node.path(), node.dir(), &ctd.socket(), &conf);
        if mode != "native" {
            for plugin in ["bridge", "host-local", "portmap"] {
                let src = Path::new(crate::REFERENCE_CNI_PATH).join(plugin);
                std::os::unix::fs::symlink(&src, node.dir().join("bin").join(plugin))
                    .unwrap_or_else(|e| panic!("link {}: {e}", src.display()));
            }
        }
        PodNode { pr, node, ctd }
    }

    /// A LAN between this node and a new peer netns: see [`add_lan`].
    pub fn add_lan(&self, node_addrs: &[&str], peer_addr: &str) -> Netns {
        add_lan(&self.node, node_addrs, peer_addr)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.pr.state_dir()
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.pr.cache_dir()
    }

    /// `podrun ARGS` inside the node netns with this node's flags.
    pub fn podrun(&self, args: &[&str]) -> CmdOutput {
        self.pr.podrun(args)
    }

    /// The command line of [`PodNode::podrun`], to spawn it yourself.
    pub fn podrun_cmd(&self, args: &[&str]) -> Command {
        self.pr.podrun_cmd(args)
    }

    /// Writes a pod spec (JSON) into the node dir; returns its path.
    pub fn write_spec(&self, name: &str, spec: &Value) -> PathBuf {
        self.pr.write_spec(name, spec)
    }

    /// `podrun run -f SPEC`, which must succeed.
    #[track_caller]
    pub fn run_pod(&self, spec: &Value) -> CmdOutput {
        self.pr.run_pod(spec)
    }

    /// See [`Podrun::assert_clean`].
    #[track_caller]
    pub fn assert_clean(&self) {
        self.pr.assert_clean(&self.ctd)
    }

    /// Declares `extra` capabilities (`{"bandwidth": true}`) on the
    /// conflist's plugin.
    pub fn declare_capabilities(&self, extra: &Value) {
        let path = self.pr.conf_dir().join("10-podnet.conflist");
        let mut conf: Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("conflist")).expect("json");
        for (k, v) in extra.as_object().expect("object") {
            conf["plugins"][0]["capabilities"][k] = v.clone();
        }
        fs::write(&path, conf.to_string()).expect("write conflist");
    }
}

/// A LAN between this node and a new peer netns ("another machine"):
/// The pod IP in the output of `podrun run` (`NAME\tIP`).
#[track_caller]
pub fn printed_ip(out: &CmdOutput) -> String {
    out.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no IP from podrun run: {out}"))
        .to_string()
}

/// veth `lan0` on the node with `node_addrs` (CIDRs), `eth0` in the
/// peer with `peer_addr`. Both ends are in namespaces the test owns;
/// the peer netns is deleted when the returned guard drops.
pub fn add_lan(node: &Node, node_addrs: &[&str], peer_addr: &str) -> Netns {
    let peer = Netns::new("peer");
    node.ns.add_veth_to("lan0", &peer);
    for a in node_addrs {
        node.exec(&["ip", "addr", "add", a, "dev", "lan0"])
            .expect_ok();
    }
    node.exec(&["ip", "link", "set", "lan0", "up"]).expect_ok();
    peer.exec(&["ip", "addr", "add", peer_addr, "dev", "eth0"])
        .expect_ok();
    peer.exec(&["ip", "link", "set", "eth0", "up"]).expect_ok();
    peer
}

/// Named netns podrun made for the instance with hash `hash`: every
/// `podrun-<hash>-*`.
pub fn podrun_netns(hash: &str) -> Vec<String> {
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

/// podrun's instance hash: first 4 bytes of sha256(canonical state dir,
/// NUL, namespace), computed with `sha256sum` to stay independent of
/// podrun's code.
fn instance_hash(state_dir: &Path, namespace: &str) -> Option<String> {
    let canon = state_dir.canonicalize().ok()?;
    let mut input = canon.as_os_str().as_encoded_bytes().to_vec();
    input.push(0);
    input.extend_from_slice(namespace.as_bytes());
    let mut cmd = Command::new("sha256sum");
    cmd.stdin(Stdio::piped());
    let out = exec::run(cmd, Some(&input), Duration::from_secs(10));
    out.stdout.get(..8).map(String::from)
}

/// A pod spec with `containers` and the defaults the tests use.
pub fn pod_spec(name: &str, containers: Value) -> Value {
    json!({"name": name, "containers": containers})
}
