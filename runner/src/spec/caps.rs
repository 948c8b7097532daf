//! Linux capability names (capabilities(7), `include/uapi/linux/capability.h`),
//! indexed by their number, and how a pod spec may write them.

/// Every capability the kernel defines up to 6.x, by number.
pub const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// A name as written in `capabilities.add`/`drop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cap {
    /// `ALL`: every capability.
    All,
    /// One capability, as the OCI spec writes it (`CAP_NET_ADMIN`).
    One(&'static str),
}

/// `NET_ADMIN`, `net_admin`, `CAP_NET_ADMIN` and `ALL` are accepted (containerd
/// upper-cases names and adds `CAP_`; Kubernetes writes them without it).
pub fn parse(name: &str) -> Option<Cap> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Some(Cap::All);
    }
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    CAPABILITIES
        .iter()
        .find(|c| c.strip_prefix("CAP_") == Some(bare))
        .map(|c| Cap::One(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_prefix() {
        assert_eq!(parse("NET_ADMIN"), Some(Cap::One("CAP_NET_ADMIN")));
        assert_eq!(parse("cap_net_admin"), Some(Cap::One("CAP_NET_ADMIN")));
        assert_eq!(parse("chown"), Some(Cap::One("CAP_CHOWN")));
        assert_eq!(parse("all"), Some(Cap::All));
        assert_eq!(parse("NET_ADMINX"), None);
        assert_eq!(parse("CAP_"), None);
        assert_eq!(parse("CAP_CAP_CHOWN"), None);
        assert_eq!(CAPABILITIES[12], "CAP_NET_ADMIN");
        assert_eq!(CAPABILITIES[40], "CAP_CHECKPOINT_RESTORE");
    }
}
