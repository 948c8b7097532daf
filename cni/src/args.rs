//! The environment of a plugin invocation (SPEC.md "Parameters").
//!
//! Which variables each command needs follows libcni's `skel`, which is
//! stricter than the spec text: CNI_PATH is required for everything except
//! VERSION, since a plugin that delegates cannot work without it.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{codes, CniError};
pub use crate::validate::{
    validate_container_id, validate_ifname, validate_network_name, MAX_IFNAME_LEN,
};

/// Splits CNI_PATH on `:`, dropping empty entries (SPEC.md "Parameters").
pub fn split_path(cni_path: &str) -> Vec<PathBuf> {
    cni_path
        .split(':')
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// CNI_COMMAND values (SPEC.md "Parameters"; STATUS has its own section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach; best-effort and idempotent.
    Del,
    /// Verify an earlier ADD still holds (0.4.0+).
    Check,
    /// Is the plugin ready to service ADD (1.1.0+)?
    Status,
    /// Report supported spec versions.
    Version,
    /// Remove stale resources (1.1.0+).
    Gc,
}

impl Command {
    /// The wire spelling: `"ADD"`, `"DEL"`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }

    /// Whether CNI_CONTAINERID and CNI_IFNAME are required (and validated).
    fn targets_container(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    /// Exact upper-case match, as libcni's skel does; anything else is code 4.
    fn from_str(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            _ => return Err(CniError::invalid_env(format!("unknown CNI_COMMAND: {s}"))),
        })
    }
}

/// Everything a plugin learns from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdArgs {
    /// CNI_COMMAND.
    pub command: Command,
    /// CNI_CONTAINERID (empty for VERSION/STATUS/GC unless set).
    pub container_id: String,
    /// CNI_NETNS; may be empty on DEL (SPEC.md: the netns may be gone).
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS, parsed into ordered pairs.
    pub args: Vec<(String, String)>,
    /// CNI_PATH, split on `:`.
    pub path: Vec<PathBuf>,
    /// CNI_NETNS_OVERRIDE is "1"/"true": skip libcni's "plugin already runs
    /// in the target netns" check (error 8).
    pub netns_override: bool,
}

/// Which variables `cmd` cannot do without, in the order they are reported.
fn required_vars(cmd: Command) -> &'static [&'static str] {
    match cmd {
        Command::Add | Command::Check => {
            &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        }
        Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
        Command::Status | Command::Gc => &["CNI_PATH"],
        Command::Version => &[],
    }
}

fn missing_error(names: &[&str]) -> CniError {
    CniError::invalid_env(format!(
        "required env variables [{}] missing",
        names.join(",")
    ))
}

impl CmdArgs {
    /// Reads and validates the CNI_* variables through `get` (injectable so
    /// the dispatcher is testable without touching the process environment).
    /// An empty value counts as unset, as in libcni's skel.
    pub fn from_env(get: &dyn Fn(&str) -> Option<String>) -> Result<CmdArgs, CniError> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let command: Command = var("CNI_COMMAND")
            .ok_or_else(|| missing_error(&["CNI_COMMAND"]))?
            .parse()?;
        let missing: Vec<&str> = required_vars(command)
            .iter()
            .copied()
            .filter(|k| var(k).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(missing_error(&missing));
        }
        let out = CmdArgs {
            command,
            container_id: var("CNI_CONTAINERID").unwrap_or_default(),
            netns: var("CNI_NETNS").unwrap_or_default(),
            ifname: var("CNI_IFNAME").unwrap_or_default(),
            args: match command {
                // VERSION must answer even when the rest of the env is junk.
                Command::Version => Vec::new(),
                _ => parse_cni_args(&var("CNI_ARGS").unwrap_or_default())?,
            },
            path: split_path(&var("CNI_PATH").unwrap_or_default()),
            netns_override: var("CNI_NETNS_OVERRIDE").is_some_and(|v| is_true(&v)),
        };
        if command.targets_container() {
            validate_container_id(&out.container_id)?;
            validate_ifname(&out.ifname)?;
        }
        Ok(out)
    }

    /// The value of CNI_ARGS key `key` (first occurrence).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// libcni `UnmarshallableBool`: "1"/"true" (any case) are true.
fn is_true(s: &str) -> bool {
    s == "1" || s.eq_ignore_ascii_case("true")
}

/// Parses CNI_ARGS, `K=V;K2=V2` (SPEC.md "Parameters").
///
/// Like libcni `types.LoadArgs`, every `;`-separated piece must split on `=`
/// into exactly a key and a value, so `A`, `A=1=2` and the empty piece of a
/// trailing `;` are rejected (code 4) and named. An empty string is no args.
pub fn parse_cni_args(s: &str) -> Result<Vec<(String, String)>, CniError> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(';')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.contains('=') => Ok((k.to_string(), v.to_string())),
            _ => Err(CniError::invalid_env(format!(
                "CNI_ARGS: invalid pair {pair:?}: want KEY=VALUE"
            ))),
        })
        .collect()
}

/// Rejects keys a plugin does not know, unless `IgnoreUnknown` is "1"/"true"
/// (libcni `CommonArgs`; runtimes send it because they pass K8S_POD_* to
/// every plugin). `IgnoreUnknown` itself is always known; a value that is not
/// a boolean is an error, as in libcni.
pub fn check_known_args(args: &[(String, String)], known: &[&str]) -> Result<(), CniError> {
    let mut ignore_unknown = false;
    let mut unknown = Vec::new();
    for (k, v) in args {
        if k == "IgnoreUnknown" {
            ignore_unknown = parse_arg_bool(k, v)?;
        } else if !known.contains(&k.as_str()) {
            unknown.push(format!("{k}={v}"));
        }
    }
    if unknown.is_empty() || ignore_unknown {
        return Ok(());
    }
    Err(CniError::new(
        codes::INVALID_ENV,
        format!("CNI_ARGS: unknown args {unknown:?}"),
    ))
}

/// A CNI_ARGS boolean: 1/0/true/false in any case.
pub fn parse_arg_bool(key: &str, v: &str) -> Result<bool, CniError> {
    if is_true(v) {
        Ok(true)
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(CniError::invalid_env(format!(
            "CNI_ARGS: {key}={v:?} is not a boolean"
        )))
    }
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
