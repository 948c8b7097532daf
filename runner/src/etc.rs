//! Files podrun makes for a pod: `/etc/resolv.conf`, `/etc/hosts` and
//! `/etc/hostname` for every container (the DNS fix of the seed notes:
//! containers joined to the pause netns need them): the node's resolver
//! config, the hosts file formats and the writing. What goes in them is
//! decided in [`crate::podnet`] (resolv.conf in [`crate::dns`]). The pause
//! container's rootfs is [`crate::pause_root`]'s.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::state::write_atomic;

/// The node's resolver config, as `--resolv-conf` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResolv {
    /// Where it was read from (for messages); `None` for `--resolv-conf ""`.
    pub source: Option<PathBuf>,
    pub text: String,
}

/// The default `--resolv-conf`.
pub const NODE_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the upstream servers it forwards to: what
/// kubeadm points kubelet's `--resolv-conf` at when /etc/resolv.conf only
/// names the stub (127.0.0.53), and what docker falls back to.
pub const SYSTEMD_RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// Reads the node's resolv.conf: `flag` as given (`""` means none, as
/// for kubelet), else `etc` (/etc/resolv.conf), or `systemd_upstream`
/// ([`SYSTEMD_RESOLVED_UPSTREAM`]) instead when `etc` only names loopback
/// resolvers (a local stub is unreachable from the pod's network
/// namespace) and that file exists.
pub fn node_resolv(flag: Option<&Path>, etc: &Path, systemd_upstream: &Path) -> Result<NodeResolv> {
    let read = |p: &Path| {
        fs::read_to_string(p).with_context(|| format!("--resolv-conf: read {}", p.display()))
    };
    match flag {
        Some(p) if p.as_os_str().is_empty() => Ok(NodeResolv {
            source: None,
            text: String::new(),
        }),
        Some(p) => Ok(NodeResolv {
            source: Some(p.to_owned()),
            text: read(p)?,
        }),
        None => {
            // A node without /etc/resolv.conf has no DNS to pass on.
            let text = if etc.exists() {
                read(etc)?
            } else {
                String::new()
            };
            let (servers, loopback) = nameservers(&text);
            if servers.is_empty() && !loopback.is_empty() && systemd_upstream.is_file() {
                return Ok(NodeResolv {
                    source: Some(systemd_upstream.to_owned()),
                    text: read(systemd_upstream)?,
                });
            }
            Ok(NodeResolv {
                source: Some(etc.to_owned()),
                text,
            })
        }
    }
}

/// A loopback resolver address: `127.0.0.0/8` or `::1`.
fn is_loopback(addr: &str) -> bool {
    addr.parse::<IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// The `nameserver` addresses of a resolv.conf: (usable, loopback).
fn nameservers(text: &str) -> (Vec<&str>, Vec<&str>) {
    let mut usable = Vec::new();
    let mut loopback = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or_default();
            if is_loopback(addr) {
                loopback.push(addr);
            } else {
                usable.push(addr);
            }
        }
    }
    (usable, loopback)
}

/// The first line of a pod's /etc/hosts: kubelet's for a pod from a
/// manifest (`managedHostsHeader`, `managedHostsHeaderWithHostNetwork` in
/// kubernetes `pkg/kubelet/kubelet_pods.go`), else podrun's.
fn hosts_header(kube: bool, host_network: bool) -> &'static str {
    match (kube, host_network) {
        (true, false) => "# Kubernetes-managed hosts file.\n",
        (true, true) => "# Kubernetes-managed hosts file (host network).\n",
        (false, false) => "# podrun-managed hosts file.\n",
        (false, true) => "# podrun-managed hosts file (host network).\n",
    }
}

/// The node's hosts file, which a hostNetwork pod gets.
pub const NODE_HOSTS: &str = "/etc/hosts";

/// /etc/hosts of a pod with its own network, as kubelet writes it
/// (`managedHostsFileContent`): localhost and the IPv6 names, then one
/// line per pod IP naming the pod: `<ip>\t<hostname>.<domain>\t<hostname>`
/// with a subdomain, else `<ip>\t<hostname>`.
pub fn hosts(kube: bool, ips: &[IpAddr], hostname: &str, domain: Option<&str>) -> String {
    let mut out = String::from(hosts_header(kube, false));
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in ips {
        match domain {
            Some(d) => out.push_str(&format!("{ip}\t{hostname}.{d}\t{hostname}\n")),
            None => out.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    out
}

/// /etc/hosts of a hostNetwork pod: the node's file under the header
/// (kubelet's `nodeHostsFileContent`).
pub fn host_network_hosts(kube: bool, node_hosts: &str) -> String {
    format!("{}{node_hosts}", hosts_header(kube, true))
}

/// The three files every container of a pod gets.
pub struct EtcFiles {
    pub resolv_conf: String,
    pub hosts: String,
    pub hostname: String,
}

/// Writes the files into `dir`.
pub fn write_etc(dir: &Path, files: &EtcFiles) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    write_atomic(
        &dir.join("resolv.conf"),
        files.resolv_conf.as_bytes(),
        0o644,
    )?;
    write_atomic(&dir.join("hosts"), files.hosts.as_bytes(), 0o644)?;
    write_atomic(
        &dir.join("hostname"),
        format!("{}\n", files.hostname).as_bytes(),
        0o644,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_resolv_follows_the_flag_then_systemd_resolved() {
        let d = tempfile::tempdir().unwrap();
        let explicit = d.path().join("resolv.conf");
        fs::write(&explicit, "nameserver 127.0.0.53\n").unwrap();
        let upstream = d.path().join("upstream.conf");
        fs::write(&upstream, "nameserver 192.0.2.53\n").unwrap();
        let etc0 = d.path().join("unused");
        // An explicit file is used as it is, stub or not.
        let r = node_resolv(Some(&explicit), &etc0, &upstream).unwrap();
        assert_eq!(r.text, "nameserver 127.0.0.53\n");
        assert_eq!(r.source.as_deref(), Some(explicit.as_path()));
        // "" means no node DNS at all (kubelet's --resolv-conf="").
        let r = node_resolv(Some(Path::new("")), &etc0, &upstream).unwrap();
        assert_eq!((r.source, r.text.as_str()), (None, ""));
        // A missing explicit file is an error naming the flag.
        let e = node_resolv(Some(&d.path().join("nope")), &etc0, &upstream).unwrap_err();
        assert!(
            format!("{e:#}").starts_with("--resolv-conf: read "),
            "{e:#}"
        );
        // The default: /etc/resolv.conf, unless it only names loopback
        // servers and systemd-resolved's list exists.
        let etc = d.path().join("etc-resolv.conf");
        fs::write(&etc, "nameserver 127.0.0.53\nsearch lan\n").unwrap();
        let r = node_resolv(None, &etc, &upstream).unwrap();
        assert_eq!(r.source.as_deref(), Some(upstream.as_path()));
        assert_eq!(r.text, "nameserver 192.0.2.53\n");
        let gone = d.path().join("no-resolved");
        let r = node_resolv(None, &etc, &gone).unwrap();
        assert_eq!(r.source.as_deref(), Some(etc.as_path()));
        fs::write(&etc, "nameserver 127.0.0.53\nnameserver 192.0.2.1\n").unwrap();
        let r = node_resolv(None, &etc, &upstream).unwrap();
        assert_eq!(
            r.source.as_deref(),
            Some(etc.as_path()),
            "one usable server"
        );
        let r = node_resolv(None, &gone, &upstream).unwrap();
        assert_eq!(r.text, "", "no /etc/resolv.conf");
    }

    #[test]
    fn hosts_files_as_kubelet_writes_them() {
        let ips: Vec<IpAddr> = vec!["10.1.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let h = hosts(true, &ips, "web", Some("sub.shop.svc.cluster.local"));
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(h.contains("fe00::2\tip6-allrouters\n"), "{h}");
        assert!(
            h.ends_with(
                "10.1.0.2\tweb.sub.shop.svc.cluster.local\tweb\n\
                 fd00::2\tweb.sub.shop.svc.cluster.local\tweb\n"
            ),
            "{h}"
        );
        let h = hosts(false, &ips[..1], "web", None);
        assert!(h.starts_with("# podrun-managed hosts file.\n"), "{h}");
        assert!(h.ends_with("ip6-allrouters\n10.1.0.2\tweb\n"), "{h}");
        assert_eq!(
            host_network_hosts(true, "127.0.0.1 localhost\n"),
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
    }
}
