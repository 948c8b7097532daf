//! Ghost attachments as doctor sees them: netboot-cni records
//! (`<dataDir>/.netboot/<containerID>@<ifname>.json`) of pods that cannot
//! exist any more, because they were made in an earlier boot (the record's
//! `bootId` is not this kernel's) or because every network namespace their
//! ADD result names is gone. The same rules as netboot-cni's own
//! (`plugin/src/ghost.rs`), which frees their IPs when a range runs out;
//! GC (or DEL) removes everything else they left.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::conflist::{main_plugin, records_dir, Loaded};
use super::ctx::Ctx;
use super::finding::Finding;

/// Same variable as netboot-cni: a file to read the boot id from.
pub const BOOT_ID_ENV: &str = "NETBOOT_BOOT_ID_FILE";
const KERNEL_BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// This boot's id (`Ok(None)`: unknown, the earlier-boot rule is off).
pub fn boot_id() -> Result<Option<String>, String> {
    let path = match std::env::var_os(BOOT_ID_ENV) {
        None => {
            return Ok(std::fs::read_to_string(KERNEL_BOOT_ID)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()))
        }
        Some(p) => PathBuf::from(p),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{BOOT_ID_ENV}={}: {e}", path.display()))?;
    let id = text.trim();
    if id.is_empty() {
        return Err(format!("{BOOT_ID_ENV}={} is empty", path.display()));
    }
    Ok(Some(format!("{FILE_PREFIX}{id}")))
}

/// netboot-cni's mark of a boot id read from [`BOOT_ID_ENV`]'s file; ids
/// of different sources are never compared.
const FILE_PREFIX: &str = "file:";

fn other_boot(then: &str, now: &str) -> bool {
    then.starts_with(FILE_PREFIX) == now.starts_with(FILE_PREFIX) && then != now
}

/// Whether `path` holds a network namespace (see netboot-cni's `is_netns`).
fn is_netns(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC, PROC_SUPER_MAGIC};
    match statfs(path) {
        Ok(fs) => [NSFS_MAGIC, PROC_SUPER_MAGIC].contains(&fs.filesystem_type()),
        Err(e) => e != nix::errno::Errno::ENOENT && e != nix::errno::Errno::ENOTDIR,
    }
}

/// Why the attachment recorded as `rec` no longer exists, if it does not.
pub fn reason(rec: &Value, boot: Option<&str>) -> Option<&'static str> {
    if let (Some(then), Some(now)) = (rec["bootId"].as_str(), boot) {
        if other_boot(then, now) {
            return Some("made in an earlier boot");
        }
    }
    if rec["result"].is_null() {
        // An ADD that is running now (or was killed in this boot).
        return None;
    }
    let sandboxes: Vec<&Path> = rec["result"]["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["sandbox"].as_str())
        .filter(|s| !s.is_empty())
        .map(Path::new)
        .collect();
    let gone = !sandboxes.is_empty() && sandboxes.iter().all(|s| s.is_absolute() && !is_netns(s));
    gone.then_some("its pod's netns is gone")
}

/// `(containerID@ifname, record)` of every readable record in `dir`.
pub fn records(dir: &Path) -> Vec<(String, Value)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Value)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name.strip_suffix(".json")?;
            if name.starts_with('.') || !key.contains('@') {
                return None;
            }
            let v = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((key.to_string(), v))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `records` check: attachment records of pods that are gone.
pub fn check(_ctx: &Ctx, loaded: &Loaded) -> Finding {
    const CHECK: &str = "records";
    let Loaded::Ok(_, list) = loaded else {
        return Finding::skipped(CHECK, "no usable conflist: the record directory is unknown");
    };
    let Some(main) = main_plugin(list).filter(|m| m["type"] == "netboot-cni") else {
        return Finding::skipped(CHECK, "the conflist does not use netboot-cni");
    };
    let dir = records_dir(main);
    let boot = match boot_id() {
        Ok(b) => b,
        Err(e) => {
            return Finding::problem(
                CHECK,
                e,
                format!("unset {BOOT_ID_ENV} or point it at a file holding the boot id"),
            )
        }
    };
    let all = records(&dir);
    let ghosts: Vec<String> = all
        .iter()
        .filter_map(|(key, rec)| reason(rec, boot.as_deref()).map(|why| format!("{key} ({why})")))
        .collect();
    if ghosts.is_empty() {
        return Finding::ok(
            CHECK,
            format!(
                "{} attachment record(s) in {}, none of a pod that is gone",
                all.len(),
                dir.display()
            ),
        );
    }
    let more = match ghosts.len() {
        n if n > 8 => format!(" and {} more", n - 8),
        _ => String::new(),
    };
    Finding::problem(
        CHECK,
        format!(
            "{} attachment record(s) in {} are of pods that no longer exist: {}{more}",
            ghosts.len(),
            dir.display(),
            ghosts[..ghosts.len().min(8)].join(", ")
        ),
        "run CNI GC with the live attachments (`podrun gc`, or the runtime's own GC): it undoes each as DEL would (IPs, port mappings, veths, records); or CNI DEL of each container ID. netboot-cni already frees their IPs by itself when the range runs out",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn earlier_boot_or_every_sandbox_gone() {
        let rec = |boot: &str, sandbox: Option<&str>| json!({"bootId": boot, "result": sandbox.map(|s| json!({"interfaces": [{"name": "eth0", "sandbox": s}]}))});
        let gone = "/nonexistent-netboot-test/netns/p1";
        assert_eq!(
            reason(&rec("a", Some("/proc/self/ns/net")), Some("a")),
            None
        );
        assert_eq!(
            reason(&rec("a", Some("/proc/self/ns/net")), Some("b")),
            Some("made in an earlier boot")
        );
        assert_eq!(
            reason(&rec("a", Some(gone)), Some("a")),
            Some("its pod's netns is gone")
        );
        // In flight, relative, or no boot id known: not provably gone.
        assert_eq!(reason(&rec("a", None), Some("a")), None);
        assert_eq!(reason(&rec("a", Some("rel/p1")), Some("a")), None);
        assert_eq!(
            reason(
                &json!({"result": {"interfaces": [{"sandbox": "/proc/self/ns/net"}]}}),
                Some("b")
            ),
            None
        );
        // A file that exists but holds no namespace (an unmounted target).
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            reason(&rec("a", exe.to_str()), Some("a")),
            Some("its pod's netns is gone")
        );
        // Boot ids of different sources are not compared.
        assert_eq!(
            reason(&rec("a", Some("/proc/self/ns/net")), Some("file:b")),
            None
        );
    }
}
