//! Running `nft` / `iptables-save` / `iptables-restore`: no shell, the
//! script on stdin, the child in the *calling thread's* network namespace.
//!
//! A child process starts in the namespace of the thread that forks it, so
//! running these functions inside [`crate::Netns::run`] programs that
//! namespace without `nsenter` or `ip netns exec`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// Where to look besides `$PATH`: a CNI plugin inherits the runtime's
/// environment, and containerd/kubelet units often run with a PATH that
/// lacks the sbin directories where Debian puts `nft` and `iptables`.
const EXTRA_DIRS: [&str; 4] = ["/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/bin"];

/// The absolute path of `tool`, or `None` when it is not installed.
/// Looked up on every call: nothing is cached across processes, and a
/// plugin process is short-lived anyway.
pub(crate) fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

thread_local! {
    static SPAWNED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many `nft` / `iptables-*` processes the calling thread has started
/// (through this module) so far. A diagnostic for tests and benchmarks:
/// the netlink paths must not exec at all.
pub fn spawned_on_this_thread() -> u64 {
    SPAWNED.with(|c| c.get())
}

/// What a finished command gave back.
pub(crate) struct Output {
    pub stdout: String,
}

/// Run `tool args...` with `stdin` fed to it. Fails with
/// [`Error::ToolMissing`] when the tool is absent, [`Error::Command`] when
/// it exits non-zero (its stderr in the message).
pub(crate) fn run(ctx: &str, tool: &str, args: &[&str], stdin: Option<&str>) -> Result<Output> {
    let Some(bin) = find_tool(tool) else {
        return Err(Error::ToolMissing {
            ctx: ctx.to_string(),
            tool: tool.to_string(),
            hint: hint(tool).to_string(),
        });
    };
    let cmdline = std::iter::once(tool)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    SPAWNED.with(|c| c.set(c.get() + 1));
    let mut child = Command::new(&bin)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("{ctx}: spawn {}", bin.display()), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A write error (EPIPE: the tool died early) shows up in its exit
        // status and stderr below, which say more.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("{ctx}: wait for {tool}"), e))?;
    if !out.status.success() {
        return Err(Error::Command {
            ctx: ctx.to_string(),
            cmd: cmdline,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn hint(tool: &str) -> &'static str {
    if tool == "nft" {
        "install the nftables package"
    } else {
        "install the iptables package"
    }
}

/// True for nft's answer to listing a table or chain that does not exist.
pub(crate) fn is_nft_missing_object(e: &Error) -> bool {
    matches!(e, Error::Command { stderr, .. } if stderr.contains("No such file or directory"))
}
