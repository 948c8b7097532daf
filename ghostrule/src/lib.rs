//! Ghost attachments: recorded attachments whose pod can no longer exist,
//! because the node rebooted since (the record names an earlier kernel
//! boot id) or because every network namespace the ADD result names is
//! gone.
//!
//! netboot-cni acts on the rule (it frees a ghost's IPs when its range runs
//! out) and `netboot doctor` reports it; both call this crate, so the two
//! can never disagree on what a ghost is. The rule, from a record's
//! `bootId` and `result`:
//! - "earlier boot" needs a boot id in the record and a known current one
//!   of the same source: network namespaces never survive a reboot, while
//!   `/proc/<pid>/ns/net` paths of an earlier boot may name some new
//!   process today;
//! - "netns gone" needs a finished ADD (its result names the sandboxes),
//!   absolute sandbox paths, and every one of them holding no namespace.
//!   In doubt (an error other than "not found"), the pod is alive.

use std::fmt;
use std::path::Path;

use serde_json::Value;

/// Environment variable naming a file to read the boot id from instead of
/// the kernel's: for tests, and for nodes where `/proc` is not the host's.
pub const BOOT_ID_ENV: &str = "NETBOOT_BOOT_ID_FILE";
const KERNEL_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// Marks a boot id read from [`BOOT_ID_ENV`]'s file. Ids of different
/// sources are never compared: a caller that sets the variable and one that
/// does not would otherwise see each other's live pods as an earlier boot's.
pub const FILE_BOOT_ID_PREFIX: &str = "file:";

/// Why a recorded attachment cannot be live any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ghost {
    EarlierBoot,
    NetnsGone,
}

impl Ghost {
    pub fn as_str(self) -> &'static str {
        match self {
            Ghost::EarlierBoot => "made in an earlier boot",
            Ghost::NetnsGone => "its pod's netns is gone",
        }
    }
}

impl fmt::Display for Ghost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// [`BOOT_ID_ENV`] is set but does not name a usable boot id file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootIdError(String);

impl fmt::Display for BootIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BootIdError {}

/// This boot's id: the kernel's (`None` if unreadable, which turns the
/// earlier-boot rule off), or `file:<content>` of the file named by
/// [`BOOT_ID_ENV`] if set (it must be an absolute path to a file of one
/// non-empty line: anything else is an error, never a silent fallback).
pub fn boot_id() -> Result<Option<String>, BootIdError> {
    let Some(path) = std::env::var_os(BOOT_ID_ENV) else {
        return Ok(std::fs::read_to_string(KERNEL_BOOT_ID)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()));
    };
    let path = Path::new(&path);
    let bad = |why: String| BootIdError(format!("{BOOT_ID_ENV}={}: {why}", path.display()));
    if !path.is_absolute() {
        return Err(bad("not an absolute path".into()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let id = text.trim();
    if id.is_empty() || id.len() > 64 || id.chars().any(char::is_control) {
        return Err(bad("not a boot id (one non-empty line)".into()));
    }
    Ok(Some(format!("{FILE_BOOT_ID_PREFIX}{id}")))
}

/// Whether boot ids `then` (a record's) and `now` name different boots.
/// Ids from different sources (kernel, file) are not comparable.
pub fn other_boot(then: &str, now: &str) -> bool {
    let from_file = |id: &str| id.starts_with(FILE_BOOT_ID_PREFIX);
    from_file(then) == from_file(now) && then != now
}

/// Whether `path` is a network namespace (nsfs, or a `/proc/<pid>/ns/net`
/// link): a sandbox path that no longer exists, or is a leftover bind-mount
/// target with nothing mounted on it (such a file on persistent storage
/// survives a reboot), holds no namespace. Errors other than "not found"
/// count as a namespace: when in doubt, the pod is alive.
pub fn is_netns(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};
    match statfs(path) {
        Ok(fs) => [NSFS_MAGIC, PROC_SUPER_MAGIC].contains(&fs.filesystem_type()),
        Err(e) => e != nix::errno::Errno::ENOENT && e != nix::errno::Errno::ENOTDIR,
    }
}

/// Whether the attachment recorded with boot id `then` and ADD result
/// `result` is a ghost, and why. `now` is this boot's id; `exists` tells
/// whether a path holds a network namespace ([`is_netns`]; a seam for
/// tests).
pub fn reason(
    then: Option<&str>,
    result: Option<&Value>,
    now: Option<&str>,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<Ghost> {
    if let (Some(then), Some(now)) = (then, now) {
        if other_boot(then, now) {
            return Some(Ghost::EarlierBoot);
        }
    }
    // Without a result the ADD may be running right now.
    let sandboxes = sandboxes(result.filter(|r| !r.is_null())?);
    let gone = !sandboxes.is_empty() && sandboxes.iter().all(|s| s.is_absolute() && !exists(s));
    gone.then_some(Ghost::NetnsGone)
}

/// The non-empty `sandbox` paths of a result's interfaces.
fn sandboxes(result: &Value) -> Vec<&Path> {
    result["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["sandbox"].as_str())
        .filter(|s| !s.is_empty())
        .map(Path::new)
        .collect()
}

#[cfg(test)]
mod tests;
