//! Side-by-side benchmark: the reference chain (Debian's `bridge` +
//! `host-local` + `portmap`, called directly as a runtime would) against
//! `netboot-cni` in bridge mode doing the same ADD+DEL work (one pod, one
//! port mapping), alternating A/B in one run on one node netns.
//!
//! Run as root: `cargo run --release -p netboot-tests --bin bench_plugin -- [ITERATIONS]`
//! (or `scripts/bench.sh`). Everything happens inside namespaces this
//! program creates and deletes.

use netboot_tests::{bin_path, require_root, Netns, REFERENCE_CNI_PATH};
use serde_json::{json, Value};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NET: &str = "cbr0";

struct Setup {
    dir: tempfile::TempDir,
    netboot: PathBuf,
}

impl Setup {
    fn ipam_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// The bridge config flannel (and netboot-cni) render from subnet.env.
    fn bridge_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": NET, "type": "bridge",
            "hairpinMode": true, "isDefaultGateway": true, "isGateway": true,
            "ipMasq": false, "mtu": 1450,
            "ipam": {"type": "host-local", "dataDir": self.ipam_dir(),
                     "ranges": [[{"subnet": "10.2.1.0/24"}]], "routes": [{"dst": "10.2.0.0/16"}]},
        })
    }

    fn netboot_conf(&self) -> Value {
        json!({
            "cniVersion": "1.0.0", "name": NET, "type": "netboot-cni", "mode": "bridge",
            "subnetFile": self.dir.path().join("subnet.env"),
            "dataDir": self.dir.path().join("flannel"),
            "ipam": {"dataDir": self.ipam_dir()},
            "delegate": {"hairpinMode": true, "isDefaultGateway": true},
            "runtimeConfig": {"portMappings": mappings()},
        })
    }
}

fn mappings() -> Value {
    json!([{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}])
}

fn portmap_conf(prev: Option<Value>) -> Value {
    let mut c = json!({
        "cniVersion": "1.0.0", "name": NET, "type": "portmap", "snat": true,
        "capabilities": {"portMappings": true},
        "runtimeConfig": {"portMappings": mappings()},
    });
    if let Some(prev) = prev {
        c["prevResult"] = prev;
    }
    c
}

/// Execs one plugin and returns its stdout; panics with its output on error.
fn exec(plugin: &Path, cmd: &str, cid: &str, netns: &Path, conf: &Value) -> Vec<u8> {
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", cid)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", REFERENCE_CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", plugin.display()));
    let stdin = serde_json::to_vec(conf).expect("encode conf");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{} {cmd} failed: {}",
        plugin.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    out.stdout
}

/// (ADD time, DEL time) of one pod through the reference chain.
fn reference_round(s: &Setup, cid: &str, pod: &Path) -> (Duration, Duration) {
    let bridge = Path::new(REFERENCE_CNI_PATH).join("bridge");
    let portmap = Path::new(REFERENCE_CNI_PATH).join("portmap");
    let t = Instant::now();
    let out = exec(&bridge, "ADD", cid, pod, &s.bridge_conf());
    let result: Value = serde_json::from_slice(&out).expect("bridge result");
    exec(
        &portmap,
        "ADD",
        cid,
        pod,
        &portmap_conf(Some(result.clone())),
    );
    let add = t.elapsed();
    let t = Instant::now();
    exec(
        &portmap,
        "DEL",
        cid,
        pod,
        &portmap_conf(Some(result.clone())),
    );
    let mut del_conf = s.bridge_conf();
    del_conf["prevResult"] = result;
    exec(&bridge, "DEL", cid, pod, &del_conf);
    (add, t.elapsed())
}

fn netboot_round(s: &Setup, cid: &str, pod: &Path) -> (Duration, Duration) {
    let t = Instant::now();
    exec(&s.netboot, "ADD", cid, pod, &s.netboot_conf());
    let add = t.elapsed();
    let t = Instant::now();
    exec(&s.netboot, "DEL", cid, pod, &s.netboot_conf());
    (add, t.elapsed())
}

struct Series(Vec<Duration>);

impl Series {
    fn quantile(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(idx).copied().unwrap_or(f64::NAN)
    }
}

fn main() {
    require_root();
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    let node = Netns::new("bench");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("subnet.env"),
        "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
    )
    .expect("write subnet.env");
    let setup = Setup {
        dir,
        netboot: bin_path("netboot-cni"),
    };
    println!("netboot-cni binary: {}", setup.netboot.display());
    // Everything below runs inside the node: plugins inherit our netns, so
    // no nsenter process is timed on either side.
    let ns = File::open(node.path()).expect("open node netns");
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter node netns");

    let (mut r_add, mut r_del, mut n_add, mut n_del) = (vec![], vec![], vec![], vec![]);
    let warmup = 2;
    for i in 0..iterations + warmup {
        let pod = Netns::new("bpod");
        let cid = format!("bench{i}");
        let (ra, rd, na, nd) = if i % 2 == 0 {
            let r = reference_round(&setup, &format!("{cid}r"), pod.path());
            let n = netboot_round(&setup, &format!("{cid}n"), pod.path());
            (r.0, r.1, n.0, n.1)
        } else {
            let n = netboot_round(&setup, &format!("{cid}n"), pod.path());
            let r = reference_round(&setup, &format!("{cid}r"), pod.path());
            (r.0, r.1, n.0, n.1)
        };
        if i >= warmup {
            r_add.push(ra);
            r_del.push(rd);
            n_add.push(na);
            n_del.push(nd);
        }
    }
    report(iterations, &[("ADD", r_add, n_add), ("DEL", r_del, n_del)]);
}

fn report(iterations: usize, rows: &[(&str, Vec<Duration>, Vec<Duration>)]) {
    println!("netboot-cni (bridge mode) vs reference chain (bridge+host-local+portmap), {iterations} alternating pods, one port mapping");
    println!(
        "{:<8} {:>14} {:>14} {:>14} {:>14} {:>8}",
        "op", "ref median ms", "ref p95 ms", "nb median ms", "nb p95 ms", "nb/ref"
    );
    let mut totals = (Vec::new(), Vec::new());
    for (op, r, n) in rows {
        let (r, n) = (Series(r.clone()), Series(n.clone()));
        println!(
            "{op:<8} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>8.3}",
            r.quantile(0.5),
            r.quantile(0.95),
            n.quantile(0.5),
            n.quantile(0.95),
            n.quantile(0.5) / r.quantile(0.5)
        );
        totals.0.push(r);
        totals.1.push(n);
    }
    let sum = |s: &[Series]| -> Series {
        Series(
            (0..s[0].0.len())
                .map(|i| s.iter().map(|x| x.0[i]).sum())
                .collect(),
        )
    };
    let (r, n) = (sum(&totals.0), sum(&totals.1));
    println!(
        "{:<8} {:>14.2} {:>14.2} {:>14.2} {:>14.2} {:>8.3}",
        "ADD+DEL",
        r.quantile(0.5),
        r.quantile(0.95),
        n.quantile(0.5),
        n.quantile(0.95),
        n.quantile(0.5) / r.quantile(0.5)
    );
}
