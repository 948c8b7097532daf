//! Name checks from libcni `pkg/utils/utils.go`, with messages that say
//! which rule was broken. Re-exported from [`crate::args`].

use crate::error::{codes, CniError};

/// Linux `IFNAMSIZ` is 16 including the NUL (`net/core/dev.c`
/// `dev_valid_name`), so at most 15 bytes.
pub const MAX_IFNAME_LEN: usize = 15;

/// The `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` pattern libcni uses for container IDs
/// and network names. It keeps `/` and a leading `.` out, so an ID such as
/// `../../etc` can never escape a directory it is joined to.
fn is_cni_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// CNI_CONTAINERID rules (libcni `ValidateContainerID`): empty is code 3
/// (unknown container), anything outside the pattern is code 4.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            codes::UNKNOWN_CONTAINER,
            "missing containerID",
        ));
    }
    if !is_cni_name(id) {
        return Err(CniError::new(
            codes::INVALID_ENV,
            format!("invalid containerID {id:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"),
        ));
    }
    Ok(())
}

/// CNI_IFNAME rules (libcni `ValidateInterfaceName`, mirroring the kernel's
/// `dev_valid_name`): 1-15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
/// All failures are code 4.
pub fn validate_ifname(n: &str) -> Result<(), CniError> {
    let bad = |why: String| {
        Err(CniError::new(
            codes::INVALID_ENV,
            format!("invalid ifname {n:?}: {why}"),
        ))
    };
    if n.is_empty() {
        return bad("must not be empty".into());
    }
    if n.len() > MAX_IFNAME_LEN {
        return bad(format!("{} bytes is longer than {MAX_IFNAME_LEN}", n.len()));
    }
    if n == "." || n == ".." {
        return bad("must not be \".\" or \"..\"".into());
    }
    if let Some(c) = n
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace())
    {
        return bad(format!("must not contain {c:?}"));
    }
    Ok(())
}

/// Network name rules (libcni `ValidateNetworkName`): same pattern as the
/// container ID; every failure is code 7 since the name comes from config.
pub fn validate_network_name(n: &str) -> Result<(), CniError> {
    if n.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_cni_name(n) {
        return Err(CniError::invalid_config(format!(
            "invalid network name {n:?}: must match ^[a-zA-Z0-9][a-zA-Z0-9_.\\-]*$"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["abc", "a", "0123", "A-b_c.d", "k8s_POD.default-1"] {
            assert!(validate_container_id(ok).is_ok(), "{ok}");
        }
        assert_eq!(validate_container_id("").unwrap_err().code, 3);
        for bad in [
            "../../etc",
            "-abc",
            ".abc",
            "_x",
            "a/b",
            "a b",
            "a:b",
            "é",
            "a\n",
        ] {
            let e = validate_container_id(bad).unwrap_err();
            assert_eq!(e.code, 4, "{bad}");
            assert!(e.msg.contains("invalid containerID"), "{}", e.msg);
        }
    }

    #[test]
    fn ifnames() {
        for ok in ["eth0", "a", "net1.100", "123456789012345", "veth-x_y"] {
            assert!(validate_ifname(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            ("1234567890123456", "16 bytes"),
            (".", "must not be"),
            ("..", "must not be"),
            ("a/b", "must not contain '/'"),
            ("a:b", "must not contain ':'"),
            ("a b", "must not contain ' '"),
            ("a\tb", "must not contain '\\t'"),
            ("a\u{a0}b", "must not contain"),
        ];
        for (name, want) in cases {
            let e = validate_ifname(name).unwrap_err();
            assert_eq!(e.code, 4, "{name:?}");
            assert!(e.msg.contains(want), "{name:?}: {}", e.msg);
        }
        // Eight two-byte characters are 16 bytes: length is counted in bytes.
        assert!(validate_ifname("éééééééé").is_err());
        assert_eq!(
            validate_ifname("a/b").unwrap_err().msg,
            "invalid ifname \"a/b\": must not contain '/'"
        );
    }

    #[test]
    fn network_names() {
        assert!(validate_network_name("cbr0").is_ok());
        assert!(validate_network_name("my.net-1_x").is_ok());
        assert_eq!(validate_network_name("").unwrap_err().code, 7);
        assert_eq!(validate_network_name("a b").unwrap_err().code, 7);
        assert_eq!(validate_network_name("../x").unwrap_err().code, 7);
    }
}
