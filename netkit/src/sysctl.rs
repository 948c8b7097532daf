//! Per-namespace sysctls under `/proc/sys/net`.
//!
//! `/proc/sys/net/*` shows the network namespace of the thread that *looks
//! the file up* (the kernel's `net_ctl_header_lookup` / `is_seen` use
//! `current->nsproxy`), not that of the process or of the opener of /proc.
//! So the open happens on a thread inside the namespace, via
//! [`Netns::run`]; the kernel test checks that the root namespace's value
//! is untouched.

use std::fs;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::netns::Netns;

/// `/proc/sys/<key>` for `net/ipv4/ip_forward` or `net.ipv4.ip_forward`.
/// The dotted form is only accepted when it has no `/`, since interface
/// names such as `flannel.1` contain dots: use slashes for those.
fn key_path(key: &str) -> Result<PathBuf> {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    let ok = !rel.is_empty()
        && !rel.starts_with('/')
        && rel.starts_with("net/")
        && rel
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if !ok {
        return Err(Error::invalid(
            format!("sysctl {key}"),
            "not a net/... sysctl key",
        ));
    }
    Ok(PathBuf::from("/proc/sys").join(rel))
}

/// `ip netns exec NS sysctl -w KEY=VALUE`.
pub fn set_in(ns: &Netns, key: &str, value: &str) -> Result<()> {
    let path = key_path(key)?;
    let ctx = format!("set sysctl {key}={value} in {}", ns.label());
    ns.run(|| fs::write(&path, value))?
        .map_err(|e| Error::io(ctx, e))
}

/// `sysctl -w KEY=VALUE` in the calling thread's own namespace: no thread,
/// no `setns`, for callers that already run where they configure (the CNI
/// plugin runs in the node netns). A thread costs a `clone` and a netns
/// fd per call, which a per-pod path should not pay.
pub fn set(key: &str, value: &str) -> Result<()> {
    let path = key_path(key)?;
    fs::write(&path, value).map_err(|e| Error::io(format!("set sysctl {key}={value}"), e))
}

/// `sysctl -n KEY`, trimmed, in the calling thread's own namespace (see
/// [`set`]).
pub fn get(key: &str) -> Result<String> {
    let path = key_path(key)?;
    let raw = fs::read_to_string(&path).map_err(|e| Error::io(format!("read sysctl {key}"), e))?;
    Ok(raw.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::key_path;

    #[test]
    fn keys() {
        assert_eq!(
            key_path("net.ipv4.ip_forward").unwrap().to_str(),
            Some("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            key_path("net/ipv4/conf/flannel.1/rp_filter")
                .unwrap()
                .to_str(),
            Some("/proc/sys/net/ipv4/conf/flannel.1/rp_filter")
        );
        assert!(key_path("kernel/hostname").is_err());
        assert!(key_path("net/../kernel/x").is_err());
        assert!(key_path("/net/ipv4").is_err());
    }
}
