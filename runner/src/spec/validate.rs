//! Checks that need the whole document (names, uniqueness, paths). Checks
//! against the node (images, host paths, networks) happen in `preflight`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Component, Path};

use super::types::{ContainerSpec, PodSpec, SpecError};

/// Longest pod name: containerd IDs are limited to 76 characters and podrun
/// builds `<pod>-<instance 8>.<container>` from it.
pub const MAX_POD_NAME: usize = 40;
/// Longest container name (see [`MAX_POD_NAME`]).
pub const MAX_CONTAINER_NAME: usize = 24;

/// A DNS-1123 label: lowercase alphanumerics and '-', alphanumeric at both
/// ends, at most `max` characters.
pub(super) fn check_label(path: &str, s: &str, max: usize) -> Result<(), SpecError> {
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = !s.starts_with('-') && !s.ends_with('-');
    if s.is_empty() || !ok_chars || !ok_ends || s.len() > max {
        return Err(SpecError::new(
            path,
            format!(
                "{s:?} is not a valid name (lowercase letters, digits and '-', \
                 at most {max} characters, starting and ending alphanumeric)"
            ),
        ));
    }
    Ok(())
}

/// Hostnames: dot-separated labels, 64 characters at most (the kernel's
/// limit for `sethostname`).
fn check_hostname(path: &str, s: &str) -> Result<(), SpecError> {
    if s.len() > 64 {
        return Err(SpecError::new(path, format!("{s:?} is longer than 64")));
    }
    for label in s.split('.') {
        check_label(path, label, 63)?;
    }
    Ok(())
}

pub(super) fn check_abs(path: &str, p: &Path) -> Result<(), SpecError> {
    if !p.is_absolute() {
        return Err(SpecError::new(
            path,
            format!("{:?} is not an absolute path", p.display().to_string()),
        ));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::new(
            path,
            format!("{:?} must not contain '..'", p.display().to_string()),
        ));
    }
    Ok(())
}

impl PodSpec {
    /// Document-level validation; serde already checked types and units.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_label("name", &self.name, MAX_POD_NAME)?;
        if let Some(h) = &self.hostname {
            check_hostname("hostname", h)?;
        }
        if let Some(n) = &self.network {
            if n.is_empty() {
                return Err(SpecError::new("network", "must not be empty"));
            }
        }
        self.validate_ports()?;
        if self.containers.is_empty() {
            return Err(SpecError::new("containers", "a pod needs a container"));
        }
        if let Some(s) = &self.subdomain {
            check_label("subdomain", s, 63)?;
        }
        let mut names = HashSet::new();
        for (list, at, c) in self.all_containers() {
            let at = format!("{list}[{at}]");
            if !names.insert(c.name.as_str()) {
                return Err(SpecError::new(
                    format!("{at}.name"),
                    format!("duplicate container name {:?}", c.name),
                ));
            }
            c.validate(&at)?;
        }
        self.validate_volumes()?;
        self.validate_network()?;
        self.validate_security()
    }

    fn validate_ports(&self) -> Result<(), SpecError> {
        let mut published = HashSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            let at = format!("ports[{i}]");
            if p.container_port == 0 {
                return Err(SpecError::new(
                    format!("{at}.containerPort"),
                    "must be 1-65535",
                ));
            }
            let proto = p.protocol.to_ascii_lowercase();
            if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
                return Err(SpecError::new(
                    format!("{at}.protocol"),
                    format!("{:?} is not tcp, udp or sctp", p.protocol),
                ));
            }
            if let Some(ip) = p.host_ip {
                check_host_ip(&format!("{at}.hostIP"), ip)?;
            }
            if let Some(hp) = p.host_port.filter(|&h| h != 0) {
                if !published.insert((hp, proto.clone(), p.host_ip)) {
                    return Err(SpecError::new(
                        format!("{at}.hostPort"),
                        format!("{hp}/{proto} is published twice"),
                    ));
                }
            } else if p.host_ip.is_some() {
                return Err(SpecError::new(
                    format!("{at}.hostIP"),
                    "set without a hostPort",
                ));
            }
        }
        Ok(())
    }
}

/// A hostIP must be one a node can hold and a DNAT rule can match as
/// destination: not multicast, not the IPv4 broadcast address. The
/// unspecified address (`0.0.0.0`, `::`) means every address of its
/// family, as in portmap.
fn check_host_ip(path: &str, ip: IpAddr) -> Result<(), SpecError> {
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_multicast() || broadcast {
        return Err(SpecError::new(
            path,
            format!("{ip} is not a unicast address a node can publish on"),
        ));
    }
    Ok(())
}

impl PodSpec {
    /// After the pod got its addresses: a published port whose hostIP has
    /// a family the pod has no address of would be published nowhere
    /// (portmap skips it silently), so it is an error.
    pub fn check_host_ip_families(&self, pod_ips: &[IpAddr]) -> Result<(), SpecError> {
        for (i, p) in self.ports.iter().enumerate() {
            let Some(ip) = p.host_ip else { continue };
            if !pod_ips.iter().any(|a| a.is_ipv6() == ip.is_ipv6()) {
                let (want, have) = if ip.is_ipv6() {
                    ("IPv6", "IPv4")
                } else {
                    ("IPv4", "IPv6")
                };
                let list: Vec<String> = pod_ips.iter().map(IpAddr::to_string).collect();
                return Err(SpecError::new(
                    format!("ports[{i}].hostIP"),
                    format!(
                        "{ip} is {want} but the pod has only {have} addresses ({}); \
                         the port would be published nowhere",
                        list.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl ContainerSpec {
    fn validate(&self, at: &str) -> Result<(), SpecError> {
        check_label(&format!("{at}.name"), &self.name, MAX_CONTAINER_NAME)?;
        if self.image.trim().is_empty() || self.image.contains(char::is_whitespace) {
            return Err(SpecError::new(
                format!("{at}.image"),
                format!("{:?} is not an image reference", self.image),
            ));
        }
        if let Some(cmd) = &self.command {
            if cmd.is_empty() {
                return Err(SpecError::new(
                    format!("{at}.command"),
                    "must not be empty (leave it out to use the image's entrypoint)",
                ));
            }
        }
        for (j, (k, _)) in self.env.0.iter().enumerate() {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(SpecError::new(
                    format!("{at}.env[{j}]"),
                    format!("{k:?} is not a variable name"),
                ));
            }
        }
        if let Some(wd) = &self.working_dir {
            check_abs(&format!("{at}.workingDir"), Path::new(wd))?;
        }
        let mut targets = HashSet::new();
        for (j, m) in self.mounts.iter().enumerate() {
            let mat = format!("{at}.mounts[{j}]");
            check_abs(&format!("{mat}.hostPath"), &m.host_path)?;
            check_abs(&format!("{mat}.containerPath"), &m.container_path)?;
            if m.container_path == Path::new("/") {
                return Err(SpecError::new(
                    format!("{mat}.containerPath"),
                    "cannot mount over /",
                ));
            }
            if !targets.insert(&m.container_path) {
                return Err(SpecError::new(
                    format!("{mat}.containerPath"),
                    "mounted twice",
                ));
            }
        }
        if let Some(s) = self.resources.cpu_shares {
            if !(2..=262_144).contains(&s) {
                return Err(SpecError::new(
                    format!("{at}.resources.cpuShares"),
                    format!("{s} is not between 2 and 262144"),
                ));
            }
        }
        if let Some(m) = self.resources.memory {
            // runc refuses limits below its own minimum; say it first.
            if m.0 < 4 << 20 {
                return Err(SpecError::new(
                    format!("{at}.resources.memory"),
                    format!("{} bytes is below the 4Mi minimum", m.0),
                ));
            }
        }
        Ok(())
    }
}
