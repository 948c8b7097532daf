//! Ghost attachments as doctor sees them: netboot-cni records
//! (`<dataDir>/.netboot/<containerID>@<ifname>.json`) of pods that cannot
//! exist any more. The rule is netboot-cni's own, from the `ghostrule`
//! crate both call; GC (or DEL) removes everything a ghost left.

use std::path::Path;

pub use ghostrule::boot_id;
use ghostrule::{is_netns, BOOT_ID_ENV};
use serde_json::Value;

use super::conflist::{main_plugin, records_dir, Loaded};
use super::ctx::Ctx;
use super::finding::Finding;

/// Why the attachment recorded as `rec` no longer exists, if it does not.
pub fn reason(rec: &Value, boot: Option<&str>) -> Option<&'static str> {
    ghostrule::reason(rec["bootId"].as_str(), rec.get("result"), boot, &is_netns)
        .map(ghostrule::Ghost::as_str)
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
                e.to_string(),
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
