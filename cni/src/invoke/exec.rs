//! Executing one plugin binary (libcni `RawExec`), with a timeout.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::env::ExecEnv;
use crate::args::Command;
use crate::error::{codes, CniError};

/// Default time a plugin may run. libcni itself has none (the caller's
/// context decides); a minute is generous for any local plugin and still
/// well inside kubelet's 2 minute runtime request timeout, so a hung plugin
/// is reported by us rather than by a cancelled sandbox request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// libcni `RawExec` retries this many times, a second apart, when exec
/// fails with ETXTBSY: the binary is still being written by an installer.
const TEXT_BUSY_RETRIES: u32 = 5;
const TEXT_BUSY_DELAY: Duration = Duration::from_secs(1);

/// How much of a plugin's non-JSON stdout goes into an error message.
const MAX_QUOTED_OUTPUT: usize = 4096;

/// How long to wait for stdout to close once the process group is killed.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs plugin binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exec {
    /// Wall-clock limit for one invocation, output included.
    pub timeout: Duration,
}

impl Default for Exec {
    fn default() -> Self {
        Exec {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Exec {
    /// Runs `plugin_path` for `command` and returns its stdout.
    ///
    /// The child gets `env` plus CNI_COMMAND, `stdin` then EOF, our stderr
    /// (SPEC.md: plugins may log there), and a piped stdout read on a thread
    /// so a large result cannot deadlock against the pipe buffer.
    ///
    /// The child leads its own process group so that, on timeout, it and
    /// anything it started (e.g. an IPAM delegate) are killed together and
    /// the stdout pipe is really closed. A timeout is code 11 (try again):
    /// a plugin stuck on a lock, etcd or the kernel usually recovers, and the
    /// runtime cleans up with DEL before retrying.
    ///
    /// A non-zero exit returns the plugin's error JSON from stdout as is;
    /// anything else becomes code 999 naming the plugin, exit status and
    /// (truncated) output.
    pub fn run(
        &self,
        plugin_path: &Path,
        command: Command,
        stdin: &[u8],
        env: &ExecEnv,
    ) -> Result<Vec<u8>, CniError> {
        self.run_observed(plugin_path, command, stdin, env, &mut |_| {})
    }

    /// [`Exec::run`], calling `on_spawn` with the child's PID (which is
    /// also its process group ID) as soon as it runs, before its stdin is
    /// written. A caller that may itself be SIGKILLed uses it to leave a
    /// note of the in-flight child, which would otherwise run on orphaned.
    pub fn run_observed(
        &self,
        plugin_path: &Path,
        command: Command,
        stdin: &[u8],
        env: &ExecEnv,
        on_spawn: &mut dyn FnMut(u32),
    ) -> Result<Vec<u8>, CniError> {
        let deadline = Instant::now() + self.timeout;
        let mut child = spawn(plugin_path, command, env)?;
        on_spawn(child.id());
        feed_stdin(&mut child, stdin);
        let stdout = collect_stdout(&mut child);
        // Wait on stdout's EOF rather than polling for exit: the pipe closes
        // the instant the plugin exits, while a try_wait/sleep loop adds up
        // to one sleep step of latency to every delegate call.
        let out = match stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(r) => r.map_err(|e| io_error(plugin_path, "reading stdout of", &e))?,
            // Still running, or something it started still holds stdout.
            Err(_) => {
                kill_group(&mut child);
                return Err(self.timeout_error(plugin_path, command));
            }
        };
        let status = match wait_until(&mut child, deadline)? {
            Some(s) => s,
            None => {
                kill_group(&mut child);
                return Err(self.timeout_error(plugin_path, command));
            }
        };
        if status.success() {
            Ok(out)
        } else {
            Err(plugin_failure(plugin_path, status, &out))
        }
    }

    fn timeout_error(&self, plugin: &Path, command: Command) -> CniError {
        CniError::new(
            codes::TRY_AGAIN,
            format!(
                "plugin {} timed out after {:?} running {command} and was killed",
                plugin.display(),
                self.timeout
            ),
        )
    }
}

fn io_error(plugin: &Path, what: &str, e: &std::io::Error) -> CniError {
    CniError::new(
        codes::IO,
        format!("{what} plugin {}: {e}", plugin.display()),
    )
}

/// Spawns the plugin, retrying on ETXTBSY as libcni does.
fn spawn(plugin: &Path, command: Command, env: &ExecEnv) -> Result<Child, CniError> {
    let mut cmd = std::process::Command::new(plugin);
    if !env.inherit {
        cmd.env_clear();
    }
    cmd.envs(env.vars.iter().map(|(k, v)| (k, v)))
        .env("CNI_COMMAND", command.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return Ok(child),
            Err(e) if e.kind() == ErrorKind::ExecutableFileBusy && attempt < TEXT_BUSY_RETRIES => {
                attempt += 1;
                thread::sleep(TEXT_BUSY_DELAY);
            }
            Err(e) => {
                return Err(CniError::internal(format!(
                    "failed to execute plugin {}: {e}",
                    plugin.display()
                )))
            }
        }
    }
}

/// Writes stdin on a thread and closes it. Errors are ignored: a plugin
/// may legitimately exit without reading (VERSION), giving EPIPE.
fn feed_stdin(child: &mut Child, data: &[u8]) {
    if let Some(mut pipe) = child.stdin.take() {
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
}

/// Reads all of stdout on a thread; the result arrives on the channel.
fn collect_stdout(child: &mut Child) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    let pipe = child.stdout.take();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let r = match pipe {
            Some(mut p) => p.read_to_end(&mut buf).map(|_| buf),
            None => Ok(buf),
        };
        let _ = tx.send(r);
    });
    rx
}

/// Polls for exit until `deadline`; `None` means it is still running.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<ExitStatus>, CniError> {
    // Files close before the exit status is published, so right after
    // stdout's EOF the first polls use very short steps.
    let mut step = Duration::from_micros(50);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| CniError::new(codes::IO, format!("waiting for plugin: {e}")))?
        {
            return Ok(Some(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        thread::sleep(step.min(left));
        step = (step * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILLs the plugin's process group, then reaps the plugin. The group
/// id is the child's pid because it was spawned with `process_group(0)`.
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.kill();
    let deadline = Instant::now() + KILL_GRACE;
    let _ = wait_until(child, deadline);
}

/// The error for a non-zero exit (libcni `RawExec.pluginErr`).
fn plugin_failure(plugin: &Path, status: ExitStatus, stdout: &[u8]) -> CniError {
    if let Some(e) = CniError::from_json(stdout) {
        return e;
    }
    let text = String::from_utf8_lossy(stdout);
    let text = text.trim();
    if text.is_empty() {
        return CniError::internal(format!(
            "plugin {} failed ({status}) with no error message on stdout",
            plugin.display()
        ));
    }
    let mut quoted: String = text.chars().take(MAX_QUOTED_OUTPUT).collect();
    if quoted.len() < text.len() {
        quoted.push_str("...");
    }
    CniError::internal(format!(
        "plugin {} failed ({status}) and its output is not a CNI error: {quoted:?}",
        plugin.display()
    ))
}
