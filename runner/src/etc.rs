//! Files podrun makes for a pod: `/etc/resolv.conf`, `/etc/hosts` and
//! `/etc/hostname` for every container (the DNS fix of the seed notes:
//! containers joined to the pause netns need them). The pause
//! container's rootfs is [`crate::pause_root`]'s.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cni::Dns;

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

/// A pod's resolv.conf: exactly the CNI result's DNS when it names
/// nameservers, else the node's file without its loopback resolvers
/// (unreachable from the pod's netns). The second value is a warning when
/// the node's file only had loopback resolvers: the pod gets none.
pub fn resolv_conf(dns: &Dns, node: &NodeResolv) -> (String, Option<String>) {
    let mut out = String::new();
    if !dns.nameservers.is_empty() {
        for ns in &dns.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        let mut search: Vec<&str> = Vec::new();
        if !dns.domain.is_empty() {
            search.push(&dns.domain);
        }
        search.extend(dns.search.iter().map(String::as_str));
        if !search.is_empty() {
            out.push_str(&format!("search {}\n", search.join(" ")));
        }
        if !dns.options.is_empty() {
            out.push_str(&format!("options {}\n", dns.options.join(" ")));
        }
        return (out, None);
    }
    for line in node.text.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") && is_loopback(words.next().unwrap_or_default()) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let (usable, loopback) = nameservers(&node.text);
    let warning = (usable.is_empty() && !loopback.is_empty()).then(|| {
        let source = node
            .source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!(
            "{source} names only loopback nameservers ({}), which the pod's network \
             namespace cannot reach: the pod gets no nameserver. Point --resolv-conf at \
             the upstream servers' file (systemd-resolved: {SYSTEMD_RESOLVED_UPSTREAM}) \
             or put `dns` in the network config",
            loopback.join(", ")
        )
    });
    (out, warning)
}

/// /etc/hosts with localhost and the pod's own address.
pub fn hosts(ip: Option<&str>, hostname: &str) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// The pod's /etc files.
pub struct EtcInput<'a> {
    /// DNS of the CNI result.
    pub dns: &'a Dns,
    pub node: &'a NodeResolv,
    pub ip: Option<&'a str>,
    pub hostname: &'a str,
}

/// Writes the three files into `dir`; returns the resolv.conf warning.
pub fn write_etc(dir: &Path, input: &EtcInput) -> Result<Option<String>> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let (resolv, warning) = resolv_conf(input.dns, input.node);
    let (ip, hostname) = (input.ip, input.hostname);
    write_atomic(&dir.join("resolv.conf"), resolv.as_bytes(), 0o644)?;
    write_atomic(&dir.join("hosts"), hosts(ip, hostname).as_bytes(), 0o644)?;
    write_atomic(
        &dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
        0o644,
    )?;
    Ok(warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> NodeResolv {
        NodeResolv {
            source: Some(PathBuf::from("/etc/resolv.conf")),
            text: text.into(),
        }
    }

    #[test]
    fn resolv_from_cni_or_node() {
        let dns = Dns {
            nameservers: vec!["10.96.0.10".into()],
            domain: "ns.svc".into(),
            search: vec!["svc".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns, &node("nameserver 1.1.1.1\n")),
            (
                "nameserver 10.96.0.10\nsearch ns.svc svc\noptions ndots:5\n".into(),
                None
            )
        );
        let n = node("# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n");
        assert_eq!(
            resolv_conf(&Dns::default(), &n),
            ("# x\nnameserver 192.0.2.1\nsearch lan\n".into(), None)
        );
        // Search/options without nameservers: the node's file is used.
        let partial = Dns {
            search: vec!["svc".into()],
            ..Dns::default()
        };
        assert_eq!(
            resolv_conf(&partial, &node("nameserver 192.0.2.1\n")).0,
            "nameserver 192.0.2.1\n"
        );
    }

    #[test]
    fn a_stub_only_node_file_gives_no_nameserver_and_a_warning() {
        for stub in ["127.0.0.53", "127.0.0.1", "::1"] {
            let n = node(&format!(
                "nameserver {stub}\noptions edns0 trust-ad\nsearch lan\n"
            ));
            let (text, warning) = resolv_conf(&Dns::default(), &n);
            assert_eq!(text, "options edns0 trust-ad\nsearch lan\n");
            let w = warning.expect("warning");
            assert!(w.contains(stub) && w.contains("/etc/resolv.conf"), "{w}");
            assert!(w.contains(SYSTEMD_RESOLVED_UPSTREAM), "{w}");
        }
        // Not loopback: 127-looking names, 10.x.
        let (_, w) = resolv_conf(&Dns::default(), &node("nameserver 10.127.0.1\n"));
        assert_eq!(w, None);
    }

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
    fn hosts_file() {
        assert!(hosts(Some("10.1.0.2"), "web").ends_with("10.1.0.2\tweb\n"));
    }
}
