//! flanneld's command line for `netboot agent`: a node whose systemd unit
//! says `ExecStart=/usr/bin/flanneld -etcd-endpoints=… $FLANNEL_OPTIONS`,
//! with `FLANNELD_*` variables in its environment file, runs the agent by
//! changing only `/usr/bin/flanneld` to `/usr/bin/netboot agent`.
//!
//! Why a pass over argv before clap, in this one place: flanneld parses
//! with Go's `flag` package, which takes a long name after one dash or two
//! (`-etcd-endpoints=URL`, `--iface eth0`), a value after `=` or as the
//! next argument whatever it looks like, and a boolean alone (`-ip-masq`)
//! or only with `=` (`-ip-masq=false`). clap reads `-etcd-endpoints` as a
//! cluster of short options and has no setting to read it otherwise. So
//! [`argv::rewrite`] turns each of flanneld's flags, and only those (their
//! table is [`flags::FLAGS`]), into `--name[=value]`, drops or refuses the
//! ones netboot does not run, and leaves netboot's own options to clap;
//! [`env::flanneld_vars`] adds the `FLANNELD_*` variables for flags the
//! command line did not set. After clap, [`settle`] turns flanneld's
//! `-subnet-lease-renew-margin` (minutes) into `--renew-margin`.
//!
//! Precedence, as flanneld's where it has one: the command line (the last
//! of a repeated option, except the repeatable `--iface`/`--iface-regex`),
//! then `NETBOOT_*`, then `FLANNELD_*`, then the defaults. An empty
//! variable counts as unset.

mod argv;
mod env;
mod flags;
mod given;
#[cfg(test)]
mod tests;

use std::ffi::OsString;

use anyhow::{bail, Result};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches};

use crate::agent::AgentArgs;
use crate::cli::{Cli, Cmd};

/// argv for clap, and lines for the log.
pub struct Prepared {
    pub argv: Vec<OsString>,
    pub notes: Vec<String>,
}

/// `argv` with an `agent` command's flanneld flags and `FLANNELD_*`
/// variables turned into clap's options; any other command unchanged.
pub fn prepare(argv: Vec<OsString>, cmd: &Command, env: env::Getter) -> Result<Prepared> {
    let agent = match (argv.get(1), cmd.find_subcommand("agent")) {
        (Some(a), Some(agent)) if a == "agent" => agent,
        _ => {
            return Ok(Prepared {
                argv,
                notes: Vec::new(),
            })
        }
    };
    let rw = argv::rewrite(&argv[2..], agent)?;
    let given = argv::given(&rw.args, agent, rw.flanneld);
    let from_env = env::flanneld_vars(&given, agent, env)?;
    let mut notes = rw.notes;
    notes.extend(from_env.notes);
    let mut used = env::netboot_vars(&given, agent, env);
    used.extend(from_env.used);
    if !used.is_empty() {
        notes.push(format!("from the environment: {}", used.join(", ")));
    }
    let mut out: Vec<OsString> = argv[..2].to_vec();
    out.extend(rw.args);
    out.extend(from_env.args);
    out.extend(rw.tail);
    Ok(Prepared { argv: out, notes })
}

/// What clap cannot say: flanneld's `-subnet-lease-renew-margin`, in
/// minutes, sets `--renew-margin` unless that is on the command line too.
pub fn settle(a: &mut AgentArgs, m: &ArgMatches) -> Result<()> {
    if let Some(min) = a.subnet_lease_renew_margin {
        if m.value_source("renew_margin") == Some(ValueSource::CommandLine) {
            bail!(
                "--renew-margin and -subnet-lease-renew-margin set the same margin (a duration; \
                 flanneld's minutes): give one"
            );
        }
        a.renew_margin = std::time::Duration::from_secs(u64::from(min) * 60);
    }
    Ok(())
}

/// The command line of this process, parsed, with the notes of the
/// flanneld pre-pass (to log once logging is set up). clap's own errors, `--help`
/// and `--version` exit here, as `Cli::parse` does.
pub fn parse_cli() -> Result<(Cli, Vec<String>)> {
    let env = |k: &str| std::env::var_os(k);
    let mut cmd = env::ignore_empty(Cli::command(), &env);
    let prepared = prepare(std::env::args_os().collect(), &cmd, &env)?;
    let m = cmd
        .try_get_matches_from_mut(prepared.argv)
        .unwrap_or_else(|e| e.exit());
    let mut cli = Cli::from_arg_matches(&m).unwrap_or_else(|e| e.format(&mut cmd).exit());
    if let Cmd::Agent(a) = &mut cli.cmd {
        if let Some(am) = m.subcommand_matches("agent") {
            settle(a, am)?;
        }
    }
    Ok((cli, prepared.notes))
}
