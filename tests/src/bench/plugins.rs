//! The two implementations driven the way a runtime drives them: the
//! reference chain (Debian's `bridge` + `host-local` + `portmap`, called
//! directly with the config flannel renders) and `netboot-cni` in bridge or
//! native mode, one pod at a time, each pod with one port mapping.
//!
//! Every call is a child process of a thread that is inside the node netns
//! (see [`BenchNode::enter`]), so no `nsenter` is timed on either side.

use super::cleanup;
use super::probe::RssSample;
use netboot_tests::{Netns, Node, SubnetEnv, REFERENCE_CNI_PATH};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// CNI network name (flannel's default).
pub const NET: &str = "cbr0";
/// The node's pod subnet: a /21 so that 500+ pods fit (2046 addresses).
pub const POD_SUBNET: &str = "10.2.0.0/21";
/// Largest number of pods a node can hold (leaves room for the gateway
/// and the measured extra pods).
pub const MAX_PODS: usize = 2000;

/// Which implementation attaches the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impl {
    /// bridge + host-local + portmap, called directly.
    Reference,
    /// netboot-cni `mode: bridge` (it execs the reference plugins).
    Bridge,
    /// netboot-cni `mode: native`, CNI_PATH an empty directory.
    Native,
}

impl Impl {
    pub const ALL: [Impl; 3] = [Impl::Reference, Impl::Bridge, Impl::Native];

    pub fn label(self) -> &'static str {
        match self {
            Impl::Reference => "reference",
            Impl::Bridge => "netboot bridge",
            Impl::Native => "netboot native",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Impl::Reference => "reference",
            Impl::Bridge => "netboot_bridge",
            Impl::Native => "netboot_native",
        }
    }

    /// Short tag for container IDs.
    fn tag(self) -> char {
        match self {
            Impl::Reference => 'r',
            Impl::Bridge => 'b',
            Impl::Native => 'n',
        }
    }
}

/// How a plugin process is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instr {
    /// Directly (the timed runs).
    Plain,
    /// Under `strace -f -e trace=execve,fsync,fdatasync`, to count the
    /// processes it spawns and its disk flushes.
    Strace,
    /// Under the `--rss-probe` helper, to measure its peak RSS.
    Probe,
}

/// One plugin process's instrumented outcome.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    /// Basename of the plugin binary.
    pub plugin: String,
    /// With [`Instr::Strace`]: basenames of every successful execve in its
    /// process tree, the plugin's own first.
    pub execs: Vec<String>,
    /// With [`Instr::Strace`]: fsync/fdatasync calls in its process tree.
    pub syncs: usize,
    /// With [`Instr::Probe`].
    pub rss: Option<RssSample>,
}

/// What one ADD or DEL (all the plugin processes it takes) cost.
#[derive(Debug, Clone, Default)]
pub struct OpStats {
    pub elapsed: Duration,
    /// CPU time (user + system) of the plugin processes and every child
    /// they waited for: what the operation cost the machine, whatever else
    /// runs on it. Only meaningful when no other plugin call of this
    /// benchmark runs at the same time (it is the growth of this process's
    /// RUSAGE_CHILDREN).
    pub cpu: Duration,
    pub procs: Vec<ProcInfo>,
}

/// A pod: a bare network namespace (nothing runs in it), its container ID,
/// its hostPort, and the ADD result once attached (the reference DEL
/// passes it as prevResult, as a runtime does).
#[derive(Debug)]
pub struct Pod {
    pub ns: Netns,
    pub cid: String,
    pub host_port: u16,
    pub result: Option<Value>,
}

impl Pod {
    pub fn new(imp: Impl, name: &str, host_port: u16) -> Pod {
        Pod {
            ns: Netns::new(&format!("p{}", imp.tag())),
            cid: format!("{name}{}", imp.tag()),
            host_port,
            result: None,
        }
    }

    /// Give the same netns a new identity (sequential ADD/DEL rounds).
    pub fn rename(&mut self, imp: Impl, name: &str, host_port: u16) {
        assert!(self.result.is_none(), "rename of an attached pod");
        self.cid = format!("{name}{}", imp.tag());
        self.host_port = host_port;
    }
}

/// A node: its netns (held open for `setns`) and temp dir (subnet.env,
/// IPAM store, netboot's records, an empty CNI_PATH dir for native mode).
pub struct BenchNode {
    pub node: Node,
    ns_file: File,
    netboot: PathBuf,
    empty_cni_path: PathBuf,
    exe: PathBuf,
}

impl BenchNode {
    pub fn new(tag: &str, netboot: &Path) -> BenchNode {
        let node = Node::new(tag);
        cleanup::register_dir(node.dir());
        node.write_subnet_env(&SubnetEnv {
            network: "10.2.0.0/16".into(),
            subnet: "10.2.0.1/21".into(),
            mtu: 1450,
            ipmasq: true,
            ..SubnetEnv::default()
        });
        let empty_cni_path = node.data_dir("empty-cni-path");
        let ns_file = File::open(node.path()).expect("open node netns");
        BenchNode {
            node,
            ns_file,
            netboot: netboot.to_owned(),
            empty_cni_path,
            exe: std::env::current_exe().expect("current exe"),
        }
    }

    /// Moves the calling thread into this node's netns. Plugins it spawns
    /// (and threads it creates) start there. The benchmark's threads only
    /// ever switch between node namespaces it created.
    pub fn enter(&self) {
        nix::sched::setns(&self.ns_file, nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("enter node netns");
    }

    fn ipam_dir(&self) -> PathBuf {
        self.node.dir().join("ipam")
    }

    /// The bridge config flannel (and netboot-cni) render from subnet.env.
    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "hairpinMode": true, "isDefaultGateway": true, "isGateway": true,
            "ipMasq": false, "mtu": 1450,
            "ipam": {"type": "host-local", "dataDir": self.ipam_dir(),
                     "ranges": [[{"subnet": POD_SUBNET}]], "routes": [{"dst": "10.2.0.0/16"}]},
        })
    }

    fn netboot_conf(&self, mode: &str, host_port: u16) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": NET, "type": "netboot-cni", "mode": mode,
            "subnetFile": self.node.dir().join("subnet.env"),
            "dataDir": self.node.dir().join("flannel"),
            "ipam": {"dataDir": self.ipam_dir()},
            "delegate": {"hairpinMode": true, "isDefaultGateway": true},
            "runtimeConfig": {"portMappings": mappings(host_port)},
        })
    }

    fn reference(&self, plugin: &str) -> PathBuf {
        Path::new(REFERENCE_CNI_PATH).join(plugin)
    }

    /// Attaches `pod` with `imp`; records the result in the pod.
    pub fn add(&self, imp: Impl, pod: &mut Pod, instr: Instr) -> OpStats {
        let mut st = OpStats::default();
        let netns = pod.ns.path().to_owned();
        let t = Instant::now();
        let result = match imp {
            Impl::Reference => {
                let bridge = self.reference("bridge");
                let out = self.call(
                    &bridge,
                    "ADD",
                    pod,
                    &netns,
                    &self.bridge_conf(),
                    instr,
                    &mut st,
                );
                let result: Value = serde_json::from_slice(&out).expect("bridge result");
                let pm = portmap_conf(pod.host_port, Some(result.clone()));
                self.call(
                    &self.reference("portmap"),
                    "ADD",
                    pod,
                    &netns,
                    &pm,
                    instr,
                    &mut st,
                );
                result
            }
            Impl::Bridge | Impl::Native => {
                let out = self.call_netboot(imp, "ADD", pod, &netns, instr, &mut st);
                serde_json::from_slice(&out).expect("netboot-cni result")
            }
        };
        st.elapsed = t.elapsed();
        pod.result = Some(result);
        st
    }

    /// Detaches `pod` (prevResult from its ADD, as a runtime passes it).
    pub fn del(&self, imp: Impl, pod: &mut Pod, instr: Instr) -> OpStats {
        let mut st = OpStats::default();
        let netns = pod.ns.path().to_owned();
        let prev = pod.result.take();
        let t = Instant::now();
        match imp {
            Impl::Reference => {
                let pm = portmap_conf(pod.host_port, prev.clone());
                self.call(
                    &self.reference("portmap"),
                    "DEL",
                    pod,
                    &netns,
                    &pm,
                    instr,
                    &mut st,
                );
                let mut conf = self.bridge_conf();
                if let Some(p) = prev {
                    conf["prevResult"] = p;
                }
                self.call(
                    &self.reference("bridge"),
                    "DEL",
                    pod,
                    &netns,
                    &conf,
                    instr,
                    &mut st,
                );
            }
            Impl::Bridge | Impl::Native => {
                self.call_netboot(imp, "DEL", pod, &netns, instr, &mut st);
            }
        }
        st.elapsed = t.elapsed();
        st
    }

    /// [`Self::call`] of netboot-cni in `imp`'s mode (bridge or native).
    fn call_netboot(
        &self,
        imp: Impl,
        cmd: &str,
        pod: &Pod,
        netns: &Path,
        instr: Instr,
        st: &mut OpStats,
    ) -> Vec<u8> {
        let mode = if imp == Impl::Bridge {
            "bridge"
        } else {
            "native"
        };
        let conf = self.netboot_conf(mode, pod.host_port);
        self.call(&self.netboot, cmd, pod, netns, &conf, instr, st)
    }

    /// Runs one plugin process; returns its stdout, panics on failure with
    /// everything it printed.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        plugin: &Path,
        cmd: &str,
        pod: &Pod,
        netns: &Path,
        conf: &Value,
        instr: Instr,
        st: &mut OpStats,
    ) -> Vec<u8> {
        let name = plugin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cni_path: &Path = if plugin == self.netboot
            && conf.get("mode").and_then(Value::as_str) == Some("native")
        {
            &self.empty_cni_path
        } else {
            Path::new(REFERENCE_CNI_PATH)
        };
        let strace_log = self
            .node
            .dir()
            .join(format!("strace-{}-{cmd}-{name}.log", pod.cid));
        let mut command = match instr {
            Instr::Plain => Command::new(plugin),
            Instr::Strace => {
                let mut c = Command::new("strace");
                c.args([
                    "-f",
                    "-qq",
                    "-e",
                    "trace=execve,fsync,fdatasync",
                    "-e",
                    "status=successful",
                    "-o",
                ])
                .arg(&strace_log)
                .arg("--")
                .arg(plugin);
                c
            }
            Instr::Probe => {
                let mut c = Command::new(&self.exe);
                c.arg("--rss-probe").arg(plugin);
                c
            }
        };
        command
            .env("CNI_COMMAND", cmd)
            .env("CNI_CONTAINERID", &pod.cid)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if instr == Instr::Plain {
                Stdio::null()
            } else {
                Stdio::piped()
            });
        let cpu_before = children_cpu();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {} ({instr:?}): {e}", plugin.display()));
        let stdin = serde_json::to_vec(conf).expect("encode conf");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&stdin)
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        st.cpu += children_cpu().saturating_sub(cpu_before);
        assert!(
            out.status.success(),
            "{} {cmd} ({}, {instr:?}) failed: {}{}",
            plugin.display(),
            pod.cid,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut info = ProcInfo {
            plugin: name,
            execs: Vec::new(),
            syncs: 0,
            rss: None,
        };
        match instr {
            Instr::Plain => {}
            Instr::Strace => {
                let log = std::fs::read_to_string(&strace_log).expect("read strace log");
                let _ = std::fs::remove_file(&strace_log);
                info.execs = parse_execs(&log);
                info.syncs = log
                    .lines()
                    .filter(|l| l.contains(" fsync(") || l.contains(" fdatasync("))
                    .count();
            }
            Instr::Probe => {
                let err = String::from_utf8_lossy(&out.stderr);
                info.rss = Some(
                    RssSample::parse(&err)
                        .unwrap_or_else(|| panic!("no RSS_PROBE line from the probe: {err}")),
                );
            }
        }
        st.procs.push(info);
        out.stdout
    }
}

/// User + system CPU time of every child process reaped so far.
fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let Ok(u) = getrusage(UsageWho::RUSAGE_CHILDREN) else {
        return Duration::ZERO;
    };
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec().unsigned_abs())
            + Duration::from_micros(t.tv_usec().unsigned_abs())
    };
    tv(u.user_time()) + tv(u.system_time())
}

/// Basenames of the programs in `strace -e trace=execve` output lines
/// (`PID execve("/usr/sbin/nft", [...], ...) = 0`).
fn parse_execs(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let rest = &l[l.find("execve(\"")? + 8..];
            let path = &rest[..rest.find('"')?];
            Some(path.rsplit('/').next().unwrap_or(path).to_string())
        })
        .collect()
}

fn mappings(host_port: u16) -> Value {
    json!([{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}])
}

fn portmap_conf(host_port: u16, prev: Option<Value>) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0", "name": NET, "type": "portmap", "snat": true,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": mappings(host_port)},
    });
    if let Some(prev) = prev {
        c["prevResult"] = prev;
    }
    c
}

#[cfg(test)]
mod tests {
    use super::parse_execs;

    #[test]
    fn execs_from_strace() {
        let log = "12 execve(\"/x/netboot-cni\", [\"netboot-cni\"], 0x7ff /* 9 vars */) = 0\n\
                   13 execve(\"/usr/sbin/nft\", [\"nft\", \"-f\", \"-\"], 0x1 /* 10 vars */) = 0\n\
                   13 +++ exited with 0 +++\n";
        assert_eq!(parse_execs(log), ["netboot-cni", "nft"]);
    }
}
