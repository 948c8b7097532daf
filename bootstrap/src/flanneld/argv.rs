//! The agent's command line, Go style → clap style: every flanneld flag
//! becomes `--name` or `--name=value`; netboot's own options pass through
//! untouched, with their values.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};

use anyhow::{bail, Result};
use clap::Command;

use super::flags::{self, Does, Flag, Kind};
use super::given::{arg_by_long, Given};
use crate::goflag;

/// What one flanneld flag (from the command line or a variable) becomes.
pub enum Outcome {
    /// This argument for clap.
    Arg(OsString),
    /// Nothing: an empty "not set" value, or a refusable flag set to what
    /// netboot does anyway.
    Nothing,
    /// Nothing, and this line for the log.
    Note(String),
}

/// `flag` given `value` (`None`: a boolean written alone), which `from`
/// names in messages (`-iface`, `FLANNELD_IFACE`).
pub fn apply(flag: &Flag, value: Option<&OsStr>, from: &str) -> Result<Outcome> {
    let text = || -> Result<&str> {
        let v = value.unwrap_or(OsStr::new("true"));
        match v.to_str() {
            Some(s) => Ok(s),
            None => bail!("{from}: the value is not valid UTF-8"),
        }
    };
    match flag.does {
        Does::Same => {
            let empty = value.is_some_and(OsStr::is_empty);
            if empty && matches!(flag.kind, Kind::OptStr | Kind::List) {
                return Ok(Outcome::Nothing);
            }
            let mut arg = OsString::from(format!("--{}", flag.name));
            if let Some(v) = value {
                arg.push("=");
                arg.push(v);
            }
            Ok(Outcome::Arg(arg))
        }
        Does::Clap => Ok(Outcome::Arg(format!("--{}", flag.name).into())),
        Does::Ignore(why) => {
            check(flag.kind, text()?).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
            Ok(Outcome::Note(format!("ignoring {from}: {why}")))
        }
        Does::RefuseUnless(ok, why) => {
            let on = goflag::parse_bool(text()?).map_err(|e| anyhow::anyhow!("{from}: {e}"))?;
            if on == ok {
                Ok(Outcome::Nothing)
            } else {
                bail!("{from}={on}: {why}")
            }
        }
    }
}

/// A value flanneld would have refused is refused here too, even for a
/// flag netboot ignores.
fn check(kind: Kind, v: &str) -> Result<(), String> {
    match kind {
        Kind::Bool => goflag::parse_bool(v).map(drop),
        Kind::Int => goflag::parse_int(v).map(drop),
        Kind::Str | Kind::OptStr | Kind::List => Ok(()),
    }
}

/// The agent's arguments (after `agent`) rewritten.
pub struct Rewritten {
    /// Up to `--`, exclusive.
    pub args: Vec<OsString>,
    /// `--` and what follows it, verbatim.
    pub tail: Vec<OsString>,
    /// flanneld flags seen (for the precedence over `FLANNELD_*`).
    pub flanneld: HashSet<&'static str>,
    pub notes: Vec<String>,
}

pub fn rewrite(args: &[OsString], agent: &Command) -> Result<Rewritten> {
    let mut out = Rewritten {
        args: Vec::new(),
        tail: Vec::new(),
        flanneld: HashSet::new(),
        notes: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.tail.push(a.clone());
            out.tail.extend(it.cloned());
            break;
        }
        let Some((name, value)) = a.to_str().and_then(goflag::split) else {
            out.args.push(a.clone());
            continue;
        };
        if let Some(flag) = flags::find(name) {
            let value: Option<OsString> = match value {
                Some(v) => Some(v.into()),
                None if flag.kind == Kind::Bool => None,
                // Go takes the next argument as the value whatever it is.
                None => match it.next() {
                    Some(v) => Some(v.clone()),
                    None => bail!("-{name} needs a value (flanneld's flag takes one)"),
                },
            };
            out.flanneld.insert(flag.name);
            match apply(flag, value.as_deref(), &format!("-{name}"))? {
                Outcome::Arg(arg) => out.args.push(arg),
                Outcome::Nothing => {}
                Outcome::Note(n) => out.notes.push(n),
            }
            continue;
        }
        let double = a.to_str().is_some_and(|s| s.starts_with("--"));
        if !double && name.len() > 1 {
            if arg_by_long(agent, name).is_some() {
                bail!("-{name}: netboot's own options take two dashes (--{name}); one dash is for flanneld's flags");
            }
            bail!(
                "unknown option -{name}: neither one of flanneld's flags nor a netboot agent \
                 option (see `netboot agent --help`)"
            );
        }
        out.args.push(a.clone());
        // A netboot option written `--name value`: keep its value as it is,
        // even when it starts with a dash.
        if double && value.is_none() {
            if let Some(arg) = arg_by_long(agent, name) {
                if arg.get_action().takes_values() && !arg.is_require_equals_set() {
                    out.args.extend(it.next().cloned());
                }
            }
        }
    }
    Ok(out)
}

/// Which settings the (rewritten) command line gives: clap ids.
pub fn given(args: &[OsString], agent: &Command, flanneld: HashSet<&'static str>) -> Given {
    let mut ids = HashSet::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(s) = a.to_str().and_then(|s| s.strip_prefix("--")) else {
            continue;
        };
        let (name, value) = match s.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (s, None),
        };
        if let Some(arg) = arg_by_long(agent, name) {
            ids.insert(arg.get_id().to_string());
            if value.is_none() && arg.get_action().takes_values() && !arg.is_require_equals_set() {
                it.next();
            }
        }
    }
    Given { ids, flanneld }
}
