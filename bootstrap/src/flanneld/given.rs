//! What the agent's command line sets, and the agent's options looked up
//! by long name or clap id: what [`super::argv`] and [`super::env`] share.

use std::collections::HashSet;

use clap::{Arg, Command};

/// What the command line sets.
pub struct Given {
    /// clap ids of the agent options it gives.
    pub ids: HashSet<String>,
    /// flanneld flags it names (ignored ones included).
    pub flanneld: HashSet<&'static str>,
}

/// The agent option `--name` (its long name or an alias).
pub fn arg_by_long<'a>(agent: &'a Command, name: &str) -> Option<&'a Arg> {
    agent.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
    })
}

pub fn arg_by_id<'a>(agent: &'a Command, id: &str) -> Option<&'a Arg> {
    agent.get_arguments().find(|a| a.get_id() == id)
}
