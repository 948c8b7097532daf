//! The environment a plugin child runs in: inherited for delegation, or
//! built from a runtime's arguments for one attachment.

use std::path::PathBuf;

/// The environment a plugin child gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecEnv {
    /// Variables set on top of the (possibly inherited) environment.
    pub vars: Vec<(String, String)>,
    /// Start from this process's environment (libcni does for delegation).
    pub inherit: bool,
}

/// What a runtime passes for one attachment (libcni `invoke.Args`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeArgs {
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS.
    pub netns: String,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS pairs.
    pub args: Vec<(String, String)>,
    /// CNI_PATH entries.
    pub path: Vec<PathBuf>,
}

impl ExecEnv {
    /// Delegation env (libcni `DelegateArgs`): everything this plugin got,
    /// with only CNI_COMMAND overridden (by [`Exec::run`](super::Exec::run)).
    pub fn inherited() -> ExecEnv {
        ExecEnv {
            vars: Vec::new(),
            inherit: true,
        }
    }

    /// A runtime's env for one attachment (libcni `Args.AsEnv`): the
    /// process environment plus every CNI_* variable but CNI_COMMAND.
    pub fn for_runtime(a: &RuntimeArgs) -> ExecEnv {
        let args: Vec<String> = a.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let path: Vec<String> = a.path.iter().map(|p| p.display().to_string()).collect();
        ExecEnv::inherited()
            .with("CNI_CONTAINERID", &a.container_id)
            .with("CNI_NETNS", &a.netns)
            .with("CNI_IFNAME", &a.ifname)
            .with("CNI_ARGS", args.join(";"))
            .with("CNI_PATH", path.join(":"))
    }

    /// Adds or replaces one variable.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> ExecEnv {
        let key = key.into();
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.into()));
        self
    }
}
