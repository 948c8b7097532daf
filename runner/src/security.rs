//! A container's `securityContext` (over its pod's) applied to its OCI
//! spec the way the kubelet and containerd's CRI plugin do: user and
//! groups, capabilities, no_new_privs, read-only root, privileged.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::image::ImageInfo;
use crate::spec::caps::{self, Cap, CAPABILITIES};
use crate::spec::{ContainerSpec, PodSpec};

/// Capabilities of a default container (containerd's and Docker's set).
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What a container runs with, settled before its spec is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    pub uid: u32,
    pub gid: u32,
    /// Sorted, the primary group included (as containerd does).
    pub additional_gids: Vec<u32>,
    /// Bounding, effective and permitted set.
    pub caps: Vec<&'static str>,
    pub no_new_privs: bool,
    pub readonly_root: bool,
    pub privileged: bool,
}

/// The image's `User` as numbers: `""` is root, `uid` and `uid:gid`
/// are taken; a name cannot be resolved without reading the image's
/// `/etc/passwd`, which podrun does not do.
fn image_user(img: &ImageInfo, image: &str) -> Result<(u32, Option<u32>)> {
    if img.user.is_empty() {
        return Ok((0, None));
    }
    let (u, g) = match img.user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (img.user.as_str(), None),
    };
    let num = |s: &str| s.parse::<u32>().ok().filter(|&v| v <= i32::MAX as u32);
    match (num(u), g.map(num)) {
        (Some(uid), None) => Ok((uid, None)),
        (Some(uid), Some(Some(gid))) => Ok((uid, Some(gid))),
        _ => bail!(
            "image {image:?} runs as user {:?}: podrun resolves only numeric users \
             (uid or uid:gid); set securityContext.runAsUser and runAsGroup",
            img.user
        ),
    }
}

/// The capability set: the default one, then (as containerd's CRI
/// `WithCapabilities`) `add: [ALL]`, `drop: [ALL]`, the added names, the
/// dropped names; `privileged` takes every capability podrun has.
fn capabilities(c: &ContainerSpec, privileged: bool, all: &[&'static str]) -> Vec<&'static str> {
    if privileged {
        return all.to_vec();
    }
    let mut set: Vec<&'static str> = DEFAULT_CAPS.to_vec();
    let Some(cc) = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
    else {
        return set;
    };
    let parsed =
        |names: &[String]| -> Vec<Cap> { names.iter().filter_map(|n| caps::parse(n)).collect() };
    let (add, drop) = (parsed(&cc.add), parsed(&cc.drop));
    if add.contains(&Cap::All) {
        set = all.to_vec();
    }
    if drop.contains(&Cap::All) {
        set.clear();
    }
    for cap in &add {
        if let Cap::One(name) = cap {
            if !set.contains(name) {
                set.push(name);
            }
        }
    }
    set.retain(|have| !drop.contains(&Cap::One(have)));
    set
}

/// Settles container `c` of `pod`: its settings over the pod's, the
/// image's user when neither sets one. `all` is every capability a
/// privileged container gets (see [`current_caps`]). Refuses what the
/// kubelet refuses at start (`runAsNonRoot` with UID 0).
pub fn resolve(
    c: &ContainerSpec,
    pod: &PodSpec,
    img: &ImageInfo,
    all: &[&'static str],
) -> Result<Effective> {
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let non_root = sc.run_as_non_root.or(psc.run_as_non_root) == Some(true);
    let (uid, image_gid) = match run_as_user {
        Some(uid) => (uid, None),
        None => image_user(img, &c.image)?,
    };
    if non_root && uid == 0 {
        let why = if run_as_user.is_some() {
            "container's runAsUser breaks non-root policy"
        } else {
            "container has runAsNonRoot and image will run as root"
        };
        bail!("{why} (pod: {:?}, container: {})", pod.name, c.name);
    }
    // No /etc/passwd lookup: a UID without a group runs with GID 0, as
    // containerd does for a UID the image's passwd does not list.
    let gid = run_as_group.or(image_gid).unwrap_or(0);
    let mut groups = vec![gid];
    groups.extend(&psc.supplemental_groups);
    groups.extend(psc.fs_group);
    groups.sort_unstable();
    groups.dedup();
    let privileged = sc.privileged == Some(true);
    Ok(Effective {
        uid,
        gid,
        additional_gids: groups,
        caps: capabilities(c, privileged, all),
        // Kubernetes sets no_new_privs only for allowPrivilegeEscalation:
        // false (kubelet `AddNoNewPrivileges`), never when privileged.
        no_new_privs: !privileged && sc.allow_privilege_escalation == Some(false),
        readonly_root: sc.read_only_root_filesystem == Some(true),
        privileged,
    })
}

/// The capabilities this process has in effect (`CapEff` of
/// /proc/self/status): what a privileged container gets, as containerd's
/// `WithAllCurrentCapabilities` gives.
pub fn current_caps() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .unwrap_or(0);
    caps_of_mask(mask)
}

/// The names of the bits set in a capability mask.
pub fn caps_of_mask(mask: u64) -> Vec<&'static str> {
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// A pod with a privileged container has a privileged sandbox, as the
/// kubelet asks containerd's CRI for: its pause container mounts sysfs
/// read-write. It must, because every sysfs mount of one network
/// namespace shares one superblock, and the first (the pause's) decides
/// whether it is read-only for all.
pub fn sandbox(pause: &mut Value, pod: &PodSpec) {
    let privileged = pod.all_containers().any(|(_, _, c)| {
        c.security_context
            .as_ref()
            .is_some_and(|s| s.privileged == Some(true))
    });
    if privileged {
        writable(pause, "sysfs");
    }
}

/// Mounts of type `kind` made read-write.
fn writable(spec: &mut Value, kind: &str) {
    for m in spec["mounts"].as_array_mut().into_iter().flatten() {
        if m["type"] == kind {
            for o in m["options"].as_array_mut().into_iter().flatten() {
                if o == "ro" {
                    *o = json!("rw");
                }
            }
        }
    }
}

/// Writes `e` into a container spec built by `oci`. A privileged one
/// also gets what containerd's `WithPrivileged`, `WithHostDevices` and
/// `WithAllDevicesAllowed` give: no masked or read-only /proc paths,
/// writable /sys and cgroup mounts, every device allowed, the node's
/// device nodes (`devices`), and no cgroup namespace (as CRI on v2).
pub fn apply(spec: &mut Value, e: &Effective, devices: Vec<Value>) {
    let p = &mut spec["process"];
    p["user"] = json!({"uid": e.uid, "gid": e.gid, "additionalGids": e.additional_gids});
    p["capabilities"] = json!({
        "bounding": e.caps, "effective": e.caps, "permitted": e.caps,
    });
    p["noNewPrivileges"] = json!(e.no_new_privs);
    spec["root"]["readonly"] = json!(e.readonly_root);
    if !e.privileged {
        return;
    }
    let linux = &mut spec["linux"];
    if let Some(l) = linux.as_object_mut() {
        l.remove("maskedPaths");
        l.remove("readonlyPaths");
    }
    linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    linux["devices"] = Value::Array(devices);
    if let Some(ns) = linux["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "cgroup");
    }
    writable(spec, "sysfs");
    writable(spec, "cgroup");
}

#[cfg(test)]
#[path = "security_tests.rs"]
mod tests;
