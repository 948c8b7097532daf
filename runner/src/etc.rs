//! Files podrun makes for a pod: `/etc/resolv.conf`, `/etc/hosts` and
//! `/etc/hostname` for every container (the DNS fix of the seed notes:
//! containers joined to the pause netns need them), and the pause
//! container's rootfs.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use cni::Dns;

use crate::state::write_atomic;

/// resolv.conf from the CNI result's DNS, else the node's without its
/// loopback resolvers (unreachable from the pod's netns).
pub fn resolv_conf(dns: &Dns, node: &str) -> String {
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
        return out;
    }
    for line in node.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let addr = words.next().unwrap_or_default();
            if addr.starts_with("127.") || addr == "::1" {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// /etc/hosts with localhost and the pod's own address.
pub fn hosts(ip: Option<&str>, hostname: &str) -> String {
    let mut out = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        out.push_str(&format!("{ip}\t{hostname}\n"));
    }
    out
}

/// Writes the three files into `dir`.
pub fn write_etc(dir: &Path, dns: &Dns, ip: Option<&str>, hostname: &str) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let node = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    write_atomic(
        &dir.join("resolv.conf"),
        resolv_conf(dns, &node).as_bytes(),
        0o644,
    )?;
    write_atomic(&dir.join("hosts"), hosts(ip, hostname).as_bytes(), 0o644)?;
    write_atomic(
        &dir.join("hostname"),
        format!("{hostname}\n").as_bytes(),
        0o644,
    )
}

/// True if the ELF file at `path` has no program interpreter (PT_INTERP):
/// it runs in a rootfs that holds nothing else.
pub fn is_static_elf(path: &Path) -> Result<bool> {
    let b = fs::read(path).with_context(|| format!("read {}", path.display()))?;
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        bail!("{} is not a 64-bit little-endian ELF file", path.display());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let Some(t) = b.get(o..o + 4) else {
            bail!("{}: truncated program headers", path.display());
        };
        if u32::from_le_bytes(t.try_into()?) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The pause rootfs: `/pause` plus the mount points runc needs, so the
/// rootfs can be mounted read-only.
pub fn install_pause(pause_bin: &Path, rootfs: &Path) -> Result<()> {
    if !is_static_elf(pause_bin)? {
        bail!(
            "{} is dynamically linked; the pause rootfs holds only that file. Build it with \
             `cargo rustc -p podrun --release --bin pause -- -C target-feature=+crt-static`",
            pause_bin.display()
        );
    }
    for d in ["proc", "dev", "sys", "etc"] {
        fs::create_dir_all(rootfs.join(d))?;
    }
    let data = fs::read(pause_bin)?;
    let dst = rootfs.join("pause");
    if fs::read(&dst).ok().as_deref() != Some(&data[..]) {
        write_atomic(&dst, &data, 0o755)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_from_cni_or_node() {
        let dns = Dns {
            nameservers: vec!["10.96.0.10".into()],
            domain: "ns.svc".into(),
            search: vec!["svc".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns, "nameserver 1.1.1.1\n"),
            "nameserver 10.96.0.10\nsearch ns.svc svc\noptions ndots:5\n"
        );
        let node = "# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n";
        assert_eq!(
            resolv_conf(&Dns::default(), node),
            "# x\nnameserver 192.0.2.1\nsearch lan\n"
        );
    }

    #[test]
    fn hosts_file() {
        assert!(hosts(Some("10.1.0.2"), "web").ends_with("10.1.0.2\tweb\n"));
    }

    #[test]
    fn static_check() {
        // This test binary is dynamically linked (the default for -gnu).
        let me = std::env::current_exe().unwrap();
        assert!(!is_static_elf(&me).unwrap());
    }
}
