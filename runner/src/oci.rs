//! OCI runtime specs (opencontainers/runtime-spec `config.md`,
//! `config-linux.md`) for the pause container and the app containers,
//! with the defaults containerd's `oci.WithDefaultSpec` uses.

use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cgroup::Host;
use crate::image::ImageInfo;
use crate::security::{self, DEFAULT_CAPS};
use crate::spec::{ContainerSpec, PodSpec, Resources};
use crate::volumes::PodVolumes;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Namespaces a container joins by path; the others are new.
pub struct Namespaces<'a> {
    pub network: &'a str,
    /// IPC and UTS of the pause container, `None` for the pause itself.
    pub ipc: Option<&'a str>,
    pub uts: Option<&'a str>,
}

/// Files bind-mounted at `/etc/{resolv.conf,hosts,hostname}`.
pub struct EtcFiles<'a> {
    pub dir: &'a Path,
}

fn process(args: Vec<String>, env: Vec<String>, cwd: &str) -> Value {
    json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": args,
        "env": env,
        "cwd": if cwd.is_empty() { "/" } else { cwd },
        "capabilities": {
            "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS, "permitted": DEFAULT_CAPS,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": true,
    })
}

/// The mounts every container gets (containerd's defaults plus a
/// read-only cgroup view).
fn default_mounts() -> Vec<Value> {
    let m = |dst: &str, typ: &str, src: &str, opts: &[&str]| json!({"destination": dst, "type": typ, "source": src, "options": opts});
    vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ]
}

/// A bind mount: it needs both `type: bind` and the `rbind` option, or
/// runc fails with "no such device" (seed notes).
fn bind(src: &Path, dst: &Path, read_only: bool) -> Value {
    let opts = ["rbind", if read_only { "ro" } else { "rw" }, "rprivate"];
    json!({"destination": dst, "type": "bind", "source": src, "options": opts})
}

/// On v2 every container also gets its own cgroup namespace, as
/// containerd's default spec does there: `/sys/fs/cgroup` inside shows
/// the container's own cgroup as its root (on v1 the mount of each
/// controller hierarchy already does).
fn namespaces(ns: &Namespaces, host: Host) -> Vec<Value> {
    let join = |t: &str, p: Option<&str>| match p {
        Some(path) => json!({"type": t, "path": path}),
        None => json!({"type": t}),
    };
    let mut out = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        join("network", Some(ns.network)),
        join("ipc", ns.ipc),
        join("uts", ns.uts),
    ];
    if host.v2 {
        out.push(json!({"type": "cgroup"}));
    }
    out
}

/// `linux.resources`: memory (swap off, so the limit OOM-kills), CFS
/// quota/period, cpuset and shares. The OCI fields are the same for both
/// hierarchies; runc writes them to v1 files (`memory.limit_in_bytes`,
/// `memory.memsw.limit_in_bytes`, `cpu.cfs_quota_us`/`cpu.cfs_period_us`,
/// `cpuset.cpus`, `cpu.shares`) or to v2 ones (`memory.max`,
/// `memory.swap.max` = swap − limit = 0, `cpu.max` "quota period",
/// `cpuset.cpus`, `cpu.weight` converted from shares). Swap is only set
/// where the host can limit it, else runc refuses the spec.
fn resources(r: &Resources, host: Host) -> Value {
    let mut res = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(m) = r.memory {
        res["memory"] = json!({"limit": m.0});
        if host.swap {
            res["memory"]["swap"] = json!(m.0);
        }
    }
    let mut cpu = serde_json::Map::new();
    if let Some(c) = r.cpus {
        cpu.insert("quota".into(), json!(c.quota_us()));
        cpu.insert("period".into(), json!(crate::spec::CFS_PERIOD_US));
    }
    if let Some(s) = &r.cpuset {
        cpu.insert("cpus".into(), json!(s.to_string()));
    }
    if let Some(s) = r.cpu_shares {
        cpu.insert("shares".into(), json!(s));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    res
}

fn base(process: Value, mounts: Vec<Value>, linux: Value, hostname: Option<&str>) -> Value {
    let mut spec = json!({
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": "rootfs", "readonly": false},
        "mounts": mounts,
        "linux": linux,
    });
    if let Some(h) = hostname {
        spec["hostname"] = json!(h);
    }
    spec
}

fn linux(cgroups_path: &str, ns: &Namespaces, res: Value, host: Host) -> Value {
    json!({
        "cgroupsPath": cgroups_path,
        "namespaces": namespaces(ns, host),
        "resources": res,
        "maskedPaths": [
            "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
            "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        ],
        "readonlyPaths": [
            "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
        ],
    })
}

/// The pause container: `/pause` in a read-only rootfs, in the pod netns,
/// owning the pod's IPC and UTS namespaces and its hostname. Without a
/// hostname (a hostNetwork pod) it stays in its runtime's UTS namespace,
/// the node's, as CRI's hostNetwork sandboxes do.
pub fn pause_spec(cgroups_path: &str, netns: &str, hostname: Option<&str>, host: Host) -> Value {
    let ns = Namespaces {
        network: netns,
        ipc: None,
        uts: None,
    };
    let mut s = base(
        process(vec!["/pause".into()], vec![DEFAULT_PATH.into()], "/"),
        default_mounts(),
        linux(
            cgroups_path,
            &ns,
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
            host,
        ),
        hostname,
    );
    s["root"]["readonly"] = json!(true);
    if hostname.is_none() {
        if let Some(nss) = s["linux"]["namespaces"].as_array_mut() {
            nss.retain(|n| n["type"] != "uts");
        }
    }
    s
}

/// argv from the spec's command/args and the image's Entrypoint/Cmd, with
/// Kubernetes' rules: `command` replaces Entrypoint and drops Cmd, `args`
/// replaces Cmd.
pub fn argv(c: &ContainerSpec, img: &ImageInfo) -> Result<Vec<String>> {
    let (entry, cmd) = match (&c.command, &c.args) {
        (Some(command), Some(args)) => (command.clone(), args.clone()),
        (Some(command), None) => (command.clone(), Vec::new()),
        (None, Some(args)) => (img.entrypoint.clone(), args.clone()),
        (None, None) => (img.entrypoint.clone(), img.cmd.clone()),
    };
    let out: Vec<String> = entry.into_iter().chain(cmd).collect();
    if out.is_empty() {
        bail!("no command: the image has no Entrypoint or Cmd and the spec sets none");
    }
    Ok(out)
}

/// Image env overridden by the spec's, in order; PATH defaulted.
pub fn env(c: &ContainerSpec, img: &ImageInfo, hostname: &str) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(ok, _)| ok == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    if let Some(p) = DEFAULT_PATH.strip_prefix("PATH=") {
        set("PATH", p);
    }
    set("HOSTNAME", hostname);
    for e in &img.env {
        if let Some((k, v)) = e.split_once('=') {
            set(k, v);
        }
    }
    for (k, v) in &c.env.0 {
        set(k, v);
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// What an app container's spec takes from its pod.
pub struct PodParts<'a> {
    pub pod: &'a PodSpec,
    /// `HOSTNAME` in the environment (the node's for hostNetwork).
    pub hostname: &'a str,
    pub ns: &'a Namespaces<'a>,
    pub etc: &'a EtcFiles<'a>,
    pub volumes: &'a PodVolumes,
    pub host: Host,
}

/// An app (or init) container: joins the pause container's net, IPC
/// and UTS namespaces, keeps its own mount and PID namespaces; its
/// volumes bind-mounted, its security settings applied
/// ([`security::resolve`], which refuses what the kubelet refuses).
/// `at` names it in errors (`containers[1]`).
pub fn container_spec(
    c: &ContainerSpec,
    at: &str,
    img: &ImageInfo,
    cgroups_path: &str,
    p: &PodParts,
) -> Result<Value> {
    let eff = security::resolve(c, p.pod, img, &security::current_caps())?;
    let cwd = c
        .working_dir
        .clone()
        .unwrap_or_else(|| img.working_dir.clone());
    let mut mounts = default_mounts();
    for f in ["resolv.conf", "hosts", "hostname"] {
        mounts.push(bind(&p.etc.dir.join(f), &Path::new("/etc").join(f), false));
    }
    for m in &c.mounts {
        mounts.push(bind(&m.host_path, &m.container_path, m.read_only));
    }
    for b in p.volumes.binds(c, at)? {
        mounts.push(bind(&b.source, &b.destination, b.read_only));
    }
    let res = resources(&c.resources, p.host);
    let mut spec = base(
        process(argv(c, img)?, env(c, img, p.hostname), &cwd),
        mounts,
        linux(cgroups_path, p.ns, res, p.host),
        None,
    );
    let devices = if eff.privileged {
        crate::devices::host_devices(Path::new("/dev"))
    } else {
        Vec::new()
    };
    security::apply(&mut spec, &eff, devices);
    Ok(spec)
}

/// An exec'd process in an app container: the container's own process
/// (user, groups, capabilities, no_new_privs, env, cwd) running `args`,
/// as containerd's CRI `ExecSync` does.
pub fn exec_process(container: &Value, args: &[String]) -> Value {
    let mut p = container.clone();
    p["args"] = json!(args);
    p["terminal"] = json!(false);
    p
}

#[cfg(test)]
#[path = "oci_tests.rs"]
mod tests;
