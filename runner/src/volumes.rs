//! Pod volumes on the node, as the kubelet keeps them: `hostPath`
//! checked (and created) against its `type` before anything of the pod
//! exists; `emptyDir` a directory under the pod's state,
//! `<pod dir>/volumes/<name>` (a tmpfs there for `medium: Memory`),
//! group-owned by `fsGroup`; the containers' `volumeMounts` as bind
//! mounts; and, on `rm`, every tmpfs unmounted before the state goes.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::spec::{ContainerSpec, HostPathType, MemorySize, PodSpec, SpecError, Volume};

/// A bind mount of a volume (or part of it) into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

/// The pod's volumes on the node, by name.
#[derive(Debug, Clone)]
pub struct PodVolumes {
    by_name: Vec<(String, PathBuf)>,
    /// `spec.` for a pod from a manifest, to name fields in its terms.
    prefix: &'static str,
}

/// `<pod dir>/volumes`: where the emptyDir volumes live.
pub fn dir(pod_dir: &Path) -> PathBuf {
    pod_dir.join("volumes")
}

/// A field path in the document's own terms: `spec.` before it for a
/// pod that came from a Kubernetes manifest.
fn field(spec: &PodSpec, path: String) -> String {
    if spec.kube.is_some() {
        format!("spec.{path}")
    } else {
        path
    }
}

/// What is at `p`, in words, following symlinks as the kubelet does.
fn what_is(p: &Path) -> &'static str {
    match fs::metadata(p) {
        Err(e) if e.kind() == ErrorKind::NotFound => "nothing",
        Err(_) => "something podrun cannot stat",
        Ok(m) => {
            let t = m.file_type();
            if t.is_dir() {
                "a directory"
            } else if t.is_file() {
                "a regular file"
            } else if t.is_socket() {
                "a socket"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_block_device() {
                "a block device"
            } else if t.is_fifo() {
                "a FIFO"
            } else {
                "something else"
            }
        }
    }
}

/// What a `type` wants to find, and whether it creates it when missing.
fn wanted(t: HostPathType) -> (&'static str, bool) {
    match t {
        HostPathType::DirectoryOrCreate => ("a directory", true),
        HostPathType::Directory => ("a directory", false),
        HostPathType::FileOrCreate => ("a regular file", true),
        HostPathType::File => ("a regular file", false),
        HostPathType::Socket => ("a socket", false),
        HostPathType::CharDevice => ("a character device", false),
        HostPathType::BlockDevice => ("a block device", false),
    }
}

/// Checks every hostPath against its `type`, then creates the missing
/// ones (`*OrCreate`, and an untyped missing path as a directory, as
/// containerd's CRI does for a bind source): a refusal leaves nothing
/// created. Created paths belong to the node and stay, as with the kubelet.
pub fn preflight(spec: &PodSpec) -> Result<()> {
    let mut create = Vec::new();
    for (i, v) in spec.volumes.iter().enumerate() {
        let Some(h) = &v.host_path else { continue };
        let there = what_is(&h.path);
        let Some(t) = h.kind else {
            if there == "nothing" {
                create.push((HostPathType::DirectoryOrCreate, &h.path));
            }
            continue;
        };
        let (want, creates) = wanted(t);
        if there == want || (creates && there == "nothing") {
            if there == "nothing" {
                create.push((t, &h.path));
            }
            continue;
        }
        bail!(SpecError::new(
            field(spec, format!("volumes[{i}].hostPath.type")),
            format!("{t:?} wants {want} at {}, found {there}", h.path.display()),
        ));
    }
    for (t, path) in create {
        if t == HostPathType::FileOrCreate {
            // Like the kubelet: the file, not its parents.
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .with_context(|| format!("create hostPath file {}", path.display()))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
        } else {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(path)
                .with_context(|| format!("create hostPath directory {}", path.display()))?;
        }
    }
    Ok(())
}

/// Makes the pod's emptyDir volumes (tmpfs mounted for `medium: Memory`)
/// and returns where every volume is. Mounts are undone by [`teardown`].
pub fn setup(spec: &PodSpec, pod_dir: &Path) -> Result<PodVolumes> {
    let fs_group = spec.security_context.as_ref().and_then(|s| s.fs_group);
    let mounted = mounts_under(&dir(pod_dir))?;
    for v in &spec.volumes {
        let Some(e) = &v.empty_dir else { continue };
        let d = dir(pod_dir).join(&v.name);
        fs::create_dir_all(&d).with_context(|| format!("create emptyDir {}", d.display()))?;
        if e.medium.as_deref() == Some("Memory") && !mounted.contains(&d) {
            let size = format!("size={}", tmpfs_size(spec, e.size_limit, mem_total()));
            mount(
                Some("tmpfs"),
                &d,
                Some("tmpfs"),
                MsFlags::empty(),
                Some(size.as_str()),
            )
            .map_err(|e| {
                anyhow!(
                    "mount tmpfs for emptyDir {:?} on {}: {e}",
                    v.name,
                    d.display()
                )
            })?;
        }
        // 0777 whatever the umask, as the kubelet's emptyDir; with an
        // fsGroup, group-owned and setgid so new files inherit the group
        // (the kubelet's SetVolumeOwnership: g+rwx, g+s on directories).
        let mut mode = 0o777;
        if let Some(g) = fs_group {
            nix::unistd::chown(&d, None, Some(nix::unistd::Gid::from_raw(g)))
                .map_err(|e| anyhow!("chown emptyDir {} to group {g}: {e}", d.display()))?;
            mode |= 0o2000;
        }
        fs::set_permissions(&d, fs::Permissions::from_mode(mode))?;
    }
    Ok(PodVolumes::of(spec, pod_dir))
}

/// The node's memory (`MemTotal` of /proc/meminfo) in bytes.
fn mem_total() -> u64 {
    let info = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb * 1024)
}

/// The size of a memory emptyDir, as the kubelet computes it
/// (`calculateEmptyDirMemorySize`): the node's memory, lowered to the
/// pod's memory limit when every container has one (the sum of the app
/// containers', or the largest init container's if larger), lowered to
/// `sizeLimit` when set; zeros do not count.
pub fn tmpfs_size(spec: &PodSpec, size_limit: Option<MemorySize>, node: u64) -> u64 {
    let limit = |c: &ContainerSpec| c.resources.memory.map(|m| m.0);
    let apps: Option<u64> = spec.containers.iter().map(limit).sum();
    let inits: Option<Vec<u64>> = spec.init_containers.iter().map(limit).collect();
    let pod = apps
        .zip(inits)
        .map(|(a, i)| i.into_iter().fold(a, u64::max));
    [pod, size_limit.map(|s| s.0)]
        .into_iter()
        .flatten()
        .filter(|&v| v > 0)
        .fold(node, u64::min)
}

impl PodVolumes {
    /// Where each volume of `spec` is (no side effects).
    pub fn of(spec: &PodSpec, pod_dir: &Path) -> PodVolumes {
        let at = |v: &Volume| match (&v.host_path, &v.empty_dir) {
            (Some(h), _) => h.path.clone(),
            _ => dir(pod_dir).join(&v.name),
        };
        PodVolumes {
            prefix: if spec.kube.is_some() { "spec." } else { "" },
            by_name: spec
                .volumes
                .iter()
                .map(|v| (v.name.clone(), at(v)))
                .collect(),
        }
    }

    /// Container `c`'s volume mounts as binds; `at` is its field path
    /// (`containers[1]`). A `subPath` is resolved now, just before the
    /// container is created, inside the volume: a missing one is made
    /// (a directory with the volume's mode, as the kubelet does), a
    /// symlink leading out of the volume is refused.
    pub fn binds(&self, c: &ContainerSpec, at: &str) -> Result<Vec<Bind>> {
        let mut out = Vec::new();
        for (j, m) in c.volume_mounts.iter().enumerate() {
            let root = self
                .by_name
                .iter()
                .find(|(n, _)| *n == m.name)
                .map(|(_, p)| p)
                .ok_or_else(|| {
                    anyhow!(
                        "{}{at}.volumeMounts[{j}].name: no volume {:?}",
                        self.prefix,
                        m.name
                    )
                })?;
            let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                None => root.clone(),
                Some(s) => sub_path(root, s).map_err(|e| {
                    anyhow!(SpecError::new(
                        format!("{}{at}.volumeMounts[{j}].subPath", self.prefix),
                        format!("{e:#}"),
                    ))
                })?,
            };
            out.push(Bind {
                source,
                destination: m.mount_path.clone(),
                read_only: m.read_only,
            });
        }
        Ok(out)
    }
}

/// `root/sub` with every symlink on the way resolved and kept inside
/// `root`; missing directories are created with `root`'s mode.
pub fn sub_path(root: &Path, sub: &str) -> Result<PathBuf> {
    let root = root
        .canonicalize()
        .with_context(|| format!("volume path {}", root.display()))?;
    let mode = fs::metadata(&root)?.permissions().mode() & 0o7777;
    let mut cur = root.clone();
    for comp in Path::new(sub).components() {
        let Component::Normal(name) = comp else {
            if comp == Component::CurDir {
                continue;
            }
            bail!("{sub:?} must be relative, without '..'");
        };
        cur.push(name);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                let real = cur
                    .canonicalize()
                    .with_context(|| format!("{sub:?}: {} is a dangling symlink", cur.display()))?;
                if !real.starts_with(&root) {
                    bail!(
                        "{sub:?} leads out of the volume: {} is a symlink to {}",
                        cur.display(),
                        real.display()
                    );
                }
                cur = real;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(mode)
                    .create(&cur)
                    .with_context(|| format!("create subPath {}", cur.display()))?;
                // The mode exactly (setgid included), whatever the umask.
                fs::set_permissions(&cur, fs::Permissions::from_mode(mode))?;
            }
            Err(e) => return Err(e).with_context(|| format!("stat {}", cur.display())),
        }
    }
    Ok(cur)
}

/// Mount points at or under `dir`, from /proc/self/mountinfo (field 5,
/// octal escapes undone), deepest first; a path mounted twice is listed
/// twice.
fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let info = fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(&dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(out)
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts every mount under `<pod dir>/volumes` (each memory emptyDir,
/// however many times it was mounted), so that removing the pod's state
/// deletes directories only. Idempotent; an error leaves the state alone.
pub fn teardown(pod_dir: &Path) -> Result<()> {
    let d = dir(pod_dir);
    if !d.exists() {
        return Ok(());
    }
    for m in mounts_under(&d)? {
        // Detached: a process still in it (an `exec` racing rm) does not
        // keep the pod from going; the memory is freed when it lets go.
        match umount2(&m, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => bail!("unmount emptyDir {}: {e}", m.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
