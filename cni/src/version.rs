//! Spec versions: parsing, comparison, negotiation and the VERSION output.
//!
//! SPEC.md "Version considerations" and libcni `pkg/version`: versions are
//! `major.minor.micro`, an absent version means 0.1.0, and a runtime given
//! `cniVersions` picks the highest one it implements.

use std::fmt;

use crate::args::Command;
use crate::error::{codes, CniError};

/// Every spec version whose configs and results this crate understands.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// The newest spec version implemented (what VERSION reports as `cniVersion`).
pub const CURRENT_VERSION: &str = "1.1.0";

/// A parsed spec version; ordering is numeric per component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// The implemented spec version, [`CURRENT_VERSION`].
    pub const CURRENT: Version = Version(1, 1, 0);

    /// Parses like libcni `version.ParseVersion`: `""` means 0.1.0 (configs
    /// written before cniVersion existed), one to three numeric parts, missing
    /// parts are zero. Anything else is a decode error (code 6), the code
    /// libcni's skel reports when a config version does not parse.
    pub fn parse(s: &str) -> Result<Version, CniError> {
        if s.is_empty() {
            return Ok(Version(0, 1, 0));
        }
        let parts: Vec<&str> = s.split('.').collect();
        if parts.len() > 3 {
            return Err(CniError::decode(format!(
                "invalid version {s:?}: too many parts"
            )));
        }
        let mut nums = [0u32; 3];
        for (slot, part) in nums.iter_mut().zip(&parts) {
            *slot = part.parse().map_err(|_| {
                CniError::decode(format!("invalid version {s:?}: {part:?} is not a number"))
            })?;
        }
        Ok(Version(nums[0], nums[1], nums[2]))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `v >= min`, both parsed with [`Version::parse`].
pub fn at_least(v: &str, min: &str) -> Result<bool, CniError> {
    Ok(Version::parse(v)? >= Version::parse(min)?)
}

/// The stdout of the VERSION command (SPEC.md "VERSION"):
/// `{"cniVersion":"1.1.0","supportedVersions":[...]}`.
pub fn version_output(supported: &[&str]) -> String {
    serde_json::json!({
        "cniVersion": CURRENT_VERSION,
        "supportedVersions": supported,
    })
    .to_string()
}

/// The highest entry of a conflist's `cniVersions` that we implement.
///
/// SPEC.md "Configuration format" (`cniVersions`): the runtime uses the
/// highest version it supports. Like libcni `ConfListFromBytes`, entries newer
/// than [`CURRENT_VERSION`] are skipped; unparseable entries are skipped too
/// (parse-time validation is [`crate::conf::NetConfList::parse`]'s job).
pub fn pick_highest(cni_versions: &[String]) -> Option<String> {
    let mut best: Option<(Version, &String)> = None;
    for s in cni_versions {
        let Ok(v) = Version::parse(s) else { continue };
        if v > Version::CURRENT {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, s));
        }
    }
    best.map(|(_, s)| s.clone())
}

/// Go's `%q` of a string slice: `["0.1.0" "0.2.0"]`, as in libcni's
/// `ErrorIncompatible.Details`, so runtimes see the text they know.
fn go_quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// Code 1 unless `conf_version` is exactly one of `supported`
/// (libcni `Reconciler.CheckRaw`; an empty version counts as "0.1.0").
pub fn check_supported(conf_version: &str, supported: &[&str]) -> Result<(), CniError> {
    let v = if conf_version.is_empty() {
        "0.1.0"
    } else {
        conf_version
    };
    if supported.contains(&v) {
        return Ok(());
    }
    Err(
        CniError::new(codes::INCOMPATIBLE_VERSION, "incompatible CNI versions").with_details(
            format!(
                "config is {v:?}, plugin supports {}",
                go_quoted_list(supported)
            ),
        ),
    )
}

/// The oldest config version that allows `cmd` (libcni skel): CHECK came in
/// 0.4.0, STATUS and GC in 1.1.0; the others exist in every version.
pub fn min_version_for(cmd: Command) -> Option<Version> {
    match cmd {
        Command::Check => Some(Version(0, 4, 0)),
        Command::Status | Command::Gc => Some(Version(1, 1, 0)),
        Command::Add | Command::Del | Command::Version => None,
    }
}

/// Version gate a plugin applies before running `cmd` with a config of
/// `conf_version`, against [`SUPPORTED_VERSIONS`]. VERSION is always allowed.
pub fn require_version(cmd: Command, conf_version: &str) -> Result<(), CniError> {
    require_version_in(cmd, conf_version, SUPPORTED_VERSIONS)
}

/// [`require_version`] against a plugin-chosen list of supported versions.
pub fn require_version_in(
    cmd: Command,
    conf_version: &str,
    supported: &[&str],
) -> Result<(), CniError> {
    if cmd == Command::Version {
        return Ok(());
    }
    let v = Version::parse(conf_version)?;
    if let Some(min) = min_version_for(cmd) {
        if v < min {
            return Err(CniError::new(
                codes::INCOMPATIBLE_VERSION,
                format!("config version does not allow {}", cmd.as_str()),
            )
            .with_details(format!(
                "config is {conf_version:?}, {} needs {min} or later",
                cmd.as_str()
            )));
        }
    }
    check_supported(conf_version, supported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_like_libcni() {
        assert_eq!(Version::parse("1.1.0").unwrap(), Version(1, 1, 0));
        assert_eq!(Version::parse("").unwrap(), Version(0, 1, 0));
        assert_eq!(Version::parse("1").unwrap(), Version(1, 0, 0));
        assert_eq!(Version::parse("0.3").unwrap(), Version(0, 3, 0));
        for bad in ["1.2.3.4", "a.b.c", "1..0", "1.0.x", "-1.0.0", " 1.0.0"] {
            let e = Version::parse(bad).unwrap_err();
            assert_eq!(e.code, codes::DECODE, "{bad}");
            assert!(e.msg.contains(bad), "{}", e.msg);
        }
    }

    #[test]
    fn ordering_is_numeric() {
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.4.0").unwrap());
        assert!(at_least("1.0.0", "0.4.0").unwrap());
        assert!(at_least("0.4.0", "0.4.0").unwrap());
        assert!(!at_least("0.3.1", "0.4.0").unwrap());
        assert!(!at_least("", "0.2.0").unwrap());
        assert!(at_least("x", "0.2.0").is_err());
        assert_eq!(Version(1, 1, 0).to_string(), "1.1.0");
    }

    #[test]
    fn version_output_shape() {
        assert_eq!(
            version_output(&["0.4.0", "1.0.0"]),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0"]}"#
        );
    }

    #[test]
    fn pick_highest_skips_future_and_garbage() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_highest(&v(&["0.3.1", "1.0.0", "0.4.0"])),
            Some("1.0.0".into())
        );
        assert_eq!(
            pick_highest(&v(&["1.0.0", "1.1.0", "2.0.0"])),
            Some("1.1.0".into())
        );
        assert_eq!(
            pick_highest(&v(&["junk", "0.4.0", "1.2.0"])),
            Some("0.4.0".into())
        );
        assert_eq!(pick_highest(&v(&["9.9.9"])), None);
        assert_eq!(pick_highest(&[]), None);
    }

    #[test]
    fn gates_per_command() {
        assert!(require_version(Command::Add, "0.3.1").is_ok());
        assert!(require_version(Command::Del, "").is_ok());
        assert!(require_version(Command::Check, "0.4.0").is_ok());
        assert!(require_version(Command::Gc, "1.1.0").is_ok());
        assert!(require_version(Command::Status, "1.1.0").is_ok());
        assert!(require_version(Command::Version, "garbage").is_ok());

        let e = require_version(Command::Check, "0.3.1").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (1, "config version does not allow CHECK")
        );
        let e = require_version(Command::Gc, "1.0.0").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (1, "config version does not allow GC")
        );
        let e = require_version(Command::Status, "0.4.0").unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (1, "config version does not allow STATUS")
        );
        assert_eq!(
            require_version(Command::Add, "1.x").unwrap_err().code,
            codes::DECODE
        );
    }

    #[test]
    fn unsupported_version_message() {
        let e = require_version(Command::Add, "0.9.0").unwrap_err();
        assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
        assert_eq!(
            e.to_string(),
            "incompatible CNI versions; config is \"0.9.0\", plugin supports \
             [\"0.1.0\" \"0.2.0\" \"0.3.0\" \"0.3.1\" \"0.4.0\" \"1.0.0\" \"1.1.0\"]"
        );
        let e = require_version_in(Command::Add, "0.4.0", &["1.0.0"]).unwrap_err();
        assert!(e.details.contains("config is \"0.4.0\""));
        // A future version passes the floor but is not in the supported list.
        assert_eq!(
            require_version(Command::Status, "1.2.0").unwrap_err().code,
            1
        );
    }
}
