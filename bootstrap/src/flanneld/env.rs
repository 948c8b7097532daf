//! Settings from the environment. `FLANNELD_*` variables are read as
//! flanneld reads them (coreos/pkg `flagutil.SetFlagsFromEnv`, called
//! after its flags are parsed): a flag the command line did not set takes
//! the value of `FLANNELD_<NAME>` when that is not empty. netboot adds one
//! rule: its own variable for the same setting (`NETBOOT_*`, which clap
//! reads) wins over flanneld's, being the more specific.

use std::ffi::OsString;

use anyhow::Result;
use clap::Command;

use super::argv::{apply, Outcome};
use super::flags::{self, Does, FLAGS};
use super::given::{arg_by_id, arg_by_long, Given};

/// Reads one environment variable.
pub type Getter<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn set(env: Getter, var: &str) -> bool {
    env(var).is_some_and(|v| !v.is_empty())
}

/// What the `FLANNELD_*` variables add.
#[derive(Default)]
pub struct FromEnv {
    /// Arguments for clap, as if on the command line.
    pub args: Vec<OsString>,
    pub notes: Vec<String>,
    /// The variables that set something.
    pub used: Vec<String>,
}

pub fn flanneld_vars(given: &Given, agent: &Command, env: Getter) -> Result<FromEnv> {
    let mut out = FromEnv::default();
    for flag in FLAGS {
        // flanneld looks at -version before it reads the environment.
        if flag.does == Does::Clap {
            continue;
        }
        let var = flags::env_name(flag.name);
        let Some(value) = env(&var).filter(|v| !v.is_empty()) else {
            continue;
        };
        if given.flanneld.contains(flag.name) {
            continue;
        }
        if flag.does == Does::Same {
            let args = arg_by_long(agent, flag.name)
                .into_iter()
                .chain(flag.also.and_then(|id| arg_by_id(agent, id)));
            let mut skip = false;
            for arg in args {
                if given.ids.contains(arg.get_id().as_str()) {
                    skip = true;
                } else if let Some(own) = arg.get_env().and_then(|v| v.to_str()) {
                    if set(env, own) {
                        out.notes.push(format!("{var} not used: {own} is set"));
                        skip = true;
                    }
                }
            }
            if skip {
                continue;
            }
        }
        match apply(flag, Some(&value), &var)? {
            Outcome::Arg(a) => {
                out.args.push(a);
                out.used.push(var);
            }
            Outcome::Nothing => {}
            Outcome::Note(n) => out.notes.push(n),
        }
    }
    Ok(out)
}

/// The `NETBOOT_*` variables clap will use: set, not empty, and for an
/// option the command line does not give.
pub fn netboot_vars(given: &Given, agent: &Command, env: Getter) -> Vec<String> {
    agent
        .get_arguments()
        .filter(|a| !given.ids.contains(a.get_id().as_str()))
        .filter_map(|a| a.get_env()?.to_str())
        .filter(|var| set(env, var))
        .map(str::to_string)
        .collect()
}

/// `cmd` with every option whose variable is set but empty made blind to
/// it, so an empty `NETBOOT_X=` counts as unset, as flanneld counts an
/// empty `FLANNELD_X=` (clap would try to parse the empty value).
pub fn ignore_empty(mut cmd: Command, env: Getter) -> Command {
    let empty: Vec<(String, String)> = cmd
        .get_subcommands()
        .flat_map(|sc| {
            sc.get_arguments()
                .filter(|a| {
                    a.get_env()
                        .and_then(|v| v.to_str())
                        .is_some_and(|v| env(v).is_some_and(|x| x.is_empty()))
                })
                .map(|a| (sc.get_name().to_string(), a.get_id().to_string()))
        })
        .collect();
    for (sc, id) in empty {
        cmd = cmd.mut_subcommand(sc, |s| s.mut_arg(id, |a| a.env(None::<&str>)));
    }
    cmd
}
