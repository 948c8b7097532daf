//! `hostNetwork: true`: the pod's containers share the network namespace
//! podrun runs in (the node's), with no CNI attachment at all.
//!
//! containerd (and the runc it starts) may run in another network
//! namespace than podrun (`ip netns exec NODE podrun ...` on a test node,
//! or a containerd shared by several netns "nodes"), so the pause
//! container cannot simply keep its runtime's namespace the way CRI's
//! hostNetwork sandboxes do. It joins podrun's namespace by a path that
//! stays valid while the pod lives and that runc can open: the
//! `/run/netns` entry bound to it (what `ip netns add` and `ip netns exec`
//! use), or `/proc/1/ns/net` when podrun runs in the init namespace.
//! `/proc/self/ns/net` would not do: runc would open its own. After the
//! pause container starts, its namespace is compared with podrun's, so a
//! path that named something else for runc is caught, not trusted.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use netkit::{Family, Netns};

/// The init process's network namespace.
const INIT_NETNS: &str = "/proc/1/ns/net";
/// podrun's own.
const OWN_NETNS: &str = "/proc/self/ns/net";

/// A namespace's identity: the (device, inode) of its nsfs file.
fn ns_id(path: &Path) -> Result<(u64, u64)> {
    let st = nix::sys::stat::stat(path).with_context(|| format!("stat {}", path.display()))?;
    Ok((st.st_dev, st.st_ino))
}

/// The entry of `dir` (a `/run/netns`) bound to the namespace `id`.
fn named_entry(dir: &Path, id: (u64, u64)) -> Option<PathBuf> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    // An entry that is not (or no longer) a bind mount stats as a plain
    // file of the run dir's filesystem: its inode never matches.
    entries.into_iter().find(|p| ns_id(p).ok() == Some(id))
}

/// A path naming `own` (the namespace at `own_path`) that runc can open:
/// a `netns_dir` entry bound to it, else `init` when that is the same.
fn name_netns(own_path: &Path, netns_dir: &Path, init: &Path) -> Result<PathBuf> {
    let own = ns_id(own_path).context("hostNetwork: podrun's own network namespace")?;
    if let Some(p) = named_entry(netns_dir, own) {
        return Ok(p);
    }
    if ns_id(init).ok() == Some(own) {
        return Ok(init.to_owned());
    }
    bail!(
        "hostNetwork: podrun runs in a network namespace (inode {}) that no path outside it \
         names: it is not bound under {} and is not the init namespace ({}). Run podrun in \
         the node's namespace by name (`ip netns exec NAME podrun ...`) or in the init namespace",
        own.1,
        netns_dir.display(),
        init.display()
    )
}

/// The path the pause container of a hostNetwork pod joins.
pub fn own_netns_path() -> Result<PathBuf> {
    name_netns(
        Path::new(OWN_NETNS),
        Path::new(netkit::NETNS_RUN_DIR),
        Path::new(INIT_NETNS),
    )
}

/// Fails unless the started pause container (PID `pause_pid`) is in
/// podrun's network namespace.
pub fn check_joined(pause_pid: u32, path: &Path) -> Result<()> {
    let theirs = ns_id(&PathBuf::from(format!("/proc/{pause_pid}/ns/net")))
        .context("hostNetwork: the pause container's network namespace")?;
    if theirs != ns_id(Path::new(OWN_NETNS))? {
        bail!(
            "hostNetwork: the pause container joined {} but is not in podrun's network \
             namespace: the container runtime sees another namespace under that path",
            path.display()
        );
    }
    Ok(())
}

/// The node's hostname (podrun's UTS namespace, which the pod shares).
pub fn node_hostname() -> Result<String> {
    let h = nix::unistd::gethostname().context("hostNetwork: read the node's hostname")?;
    Ok(h.to_string_lossy().into_owned())
}

/// An address that can name the node: not loopback, not link-local.
fn usable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
        IpAddr::V6(v6) => {
            !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
        }
    }
}

/// The node's addresses, as a hostNetwork pod's IPs (Kubernetes gives
/// such a pod the node's IPs): those of the interface holding the default
/// route first (IPv4, then IPv6), then every other usable one, IPv4 first.
pub fn node_ips() -> Result<Vec<IpAddr>> {
    let mut nl = Netns::current()
        .and_then(|ns| ns.netlink())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let addrs = nl.addr().list(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut default_links = Vec::new();
    for family in [Family::V4, Family::V6] {
        let routes = nl
            .route()
            .list(family)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        default_links.extend(
            routes
                .iter()
                .filter(|r| r.dst.prefix_len() == 0)
                .filter_map(|r| r.oif),
        );
    }
    let mut ips: Vec<(bool, bool, IpAddr)> = addrs
        .iter()
        .filter(|a| usable(&a.addr.addr()))
        .map(|a| {
            let ip = a.addr.addr();
            (!default_links.contains(&a.index), ip.is_ipv6(), ip)
        })
        .collect();
    // Stable: the kernel's order within each group.
    ips.sort_by_key(|(not_default, v6, _)| (*not_default, *v6));
    Ok(ips.into_iter().map(|(_, _, ip)| ip).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The init namespace names itself when no `/run/netns` entry does;
    /// an entry that is a plain file never matches.
    #[test]
    fn own_namespace_is_named_by_a_netns_entry_or_init() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("stale"), "").unwrap();
        let init = Path::new(INIT_NETNS);
        let own = Path::new(OWN_NETNS);
        if ns_id(own).ok() == ns_id(init).ok() {
            assert_eq!(name_netns(own, d.path(), init).unwrap(), init);
        }
        // Another namespace file standing for "init" that is not ours.
        let other = d.path().join("stale");
        let e = name_netns(own, d.path(), &other).unwrap_err();
        assert!(
            format!("{e:#}").contains("no path outside it names"),
            "{e:#}"
        );
        assert!(named_entry(d.path(), ns_id(own).unwrap()).is_none());
    }

    #[test]
    fn node_addresses_exclude_loopback_and_link_local() {
        for bad in ["127.0.0.1", "::1", "169.254.1.1", "fe80::1", "0.0.0.0"] {
            assert!(!usable(&bad.parse().unwrap()), "{bad}");
        }
        for good in ["10.0.0.1", "2001:db8::1", "fd00::1"] {
            assert!(usable(&good.parse().unwrap()), "{good}");
        }
    }
}
