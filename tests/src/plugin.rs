//! Calling a CNI plugin binary directly, the way a runtime does: CNI_*
//! environment, network config on stdin, result or error JSON on stdout.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::exec::{self, CmdOutput};

/// Where Debian's reference plugins live.
pub const REFERENCE_CNI_PATH: &str = "/usr/lib/cni";

/// One plugin invocation. `Default` gives ifname `eth0`, CNI_PATH
/// [`REFERENCE_CNI_PATH`] and no namespaces.
#[derive(Debug, Clone)]
pub struct PluginCall {
    /// CNI_COMMAND: ADD, DEL, CHECK, STATUS, GC, VERSION.
    pub command: String,
    /// CNI_CONTAINERID.
    pub container_id: String,
    /// CNI_NETNS; `None` passes it empty (containerd's second DEL).
    pub netns: Option<PathBuf>,
    /// CNI_IFNAME.
    pub ifname: String,
    /// CNI_ARGS (`K=V;K=V`).
    pub args: String,
    /// CNI_PATH (`:`-separated).
    pub path: String,
    /// Network configuration JSON given on stdin.
    pub stdin: String,
    /// Namespace the plugin process itself runs in (the "node"); `None` runs
    /// it in the test's own namespace, which tests must never do for ADD.
    pub host_netns: Option<PathBuf>,
    /// Extra environment, e.g. `("NETBOOT_LOG", "debug")`.
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Default for PluginCall {
    fn default() -> Self {
        PluginCall {
            command: "VERSION".into(),
            container_id: String::new(),
            netns: None,
            ifname: "eth0".into(),
            args: String::new(),
            path: REFERENCE_CNI_PATH.into(),
            stdin: String::new(),
            host_netns: None,
            env: Vec::new(),
            timeout: exec::DEFAULT_TIMEOUT,
        }
    }
}

/// The outcome of a plugin call.
#[derive(Debug)]
pub struct PluginOutput {
    pub output: CmdOutput,
    /// stdout parsed as JSON, if it was JSON.
    pub json: Option<Value>,
}

impl PluginOutput {
    pub fn success(&self) -> bool {
        self.output.success()
    }

    /// Exit code (None when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> &str {
        &self.output.stdout
    }

    pub fn stderr(&self) -> &str {
        &self.output.stderr
    }

    /// The result JSON of a successful call; panics with everything the
    /// plugin printed otherwise. For DEL/CHECK (no output) this is `Null`.
    #[track_caller]
    pub fn expect_ok(&self) -> Value {
        assert!(self.success(), "plugin call failed: {}", self.output);
        self.json.clone().unwrap_or(Value::Null)
    }

    /// The CNI error object `{code,msg,details}` of a failed call; panics if
    /// the call succeeded or printed no JSON.
    #[track_caller]
    pub fn expect_err(&self) -> Value {
        assert!(
            !self.success(),
            "plugin call unexpectedly succeeded: {}",
            self.output
        );
        self.json
            .clone()
            .unwrap_or_else(|| panic!("failed call printed no JSON error: {}", self.output))
    }
}

/// Run plugin `bin` as described by `call`, inside `call.host_netns` (via
/// `nsenter --net=`) with a clean environment (PATH kept for iptables).
pub fn run_plugin(bin: &Path, call: &PluginCall) -> PluginOutput {
    let output = exec::run(
        plugin_command(bin, call),
        Some(call.stdin.as_bytes()),
        call.timeout,
    );
    let json = serde_json::from_str(output.stdout.trim()).ok();
    PluginOutput { output, json }
}

/// The command [`run_plugin`] runs (stdin not attached): for callers that
/// manage the process themselves, e.g. to kill it mid-ADD. `nsenter` execs
/// the plugin, so the child's PID is the plugin's.
pub fn plugin_command(bin: &Path, call: &PluginCall) -> Command {
    let bin_str = bin.to_string_lossy();
    let mut cmd = match &call.host_netns {
        Some(ns) => exec::nsenter(ns, &[&bin_str]),
        None => Command::new(bin),
    };
    let netns = call
        .netns
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .env("CNI_COMMAND", &call.command)
        .env("CNI_CONTAINERID", &call.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", &call.ifname)
        .env("CNI_ARGS", &call.args)
        .env("CNI_PATH", &call.path);
    cmd.envs(call.env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// A CNI 1.0 result's IPv4 addresses (`a.b.c.d/len`).
pub fn result_ips(result: &Value) -> Vec<String> {
    result["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip["address"].as_str().map(str::to_owned))
        .collect()
}

/// The address part of the first IP of a result (`a.b.c.d`).
#[track_caller]
pub fn first_ip(result: &Value) -> String {
    let cidr = result_ips(result)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("result has no IP: {result}"));
    cidr.split('/').next().unwrap_or_default().to_owned()
}

/// The gateway of the first IP of a result.
#[track_caller]
pub fn first_gateway(result: &Value) -> String {
    result["ips"][0]["gateway"]
        .as_str()
        .unwrap_or_else(|| panic!("result has no gateway: {result}"))
        .to_owned()
}
