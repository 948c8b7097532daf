//! The supervisor as a process: starting it detached, recognizing it by
//! PID *and* start time (a PID is recycled once its process is gone), and
//! ending it before `stop`/`rm` touch the pod.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::status::ProcRef;
use crate::cli::Global;

/// How long `stop`/`rm` wait for the supervisor after SIGTERM, then
/// after SIGKILL. It holds no state of its own (everything it knows is
/// in the record, written under the pod lock), so nothing is lost.
const END_WAIT: Duration = Duration::from_secs(5);

/// `(state, start time)` from `/proc/PID/stat`: fields 3 and 22, counted
/// after the command name (which may hold spaces and parentheses).
fn stat(pid: u32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl ProcRef {
    /// The process `pid` as it is now.
    pub fn of(pid: u32) -> Result<ProcRef> {
        let (_, start_time) = stat(pid).ok_or_else(|| anyhow!("no process {pid}"))?;
        Ok(ProcRef {
            pid,
            start_time,
            boot_id: boot_id(),
        })
    }

    /// This process.
    pub fn me() -> Result<ProcRef> {
        ProcRef::of(std::process::id())
    }

    /// Whether this very process still runs: same PID, start time and
    /// boot, and not a zombie waiting for its parent.
    pub fn alive(&self) -> bool {
        self.boot_id == boot_id()
            && stat(self.pid).is_some_and(|(s, t)| t == self.start_time && !matches!(s, 'Z' | 'X'))
    }
}

/// Ends the supervisor `p` if it still runs: SIGTERM, then SIGKILL.
/// Only ever signals the recorded process (checked right before each
/// signal), never a later one with its PID.
pub fn end(p: &ProcRef) -> Result<()> {
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        if !p.alive() {
            return Ok(());
        }
        match kill(Pid::from_raw(p.pid as i32), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(anyhow!("signal the supervisor (pid {}): {e}", p.pid)),
        }
        let end = Instant::now() + END_WAIT;
        while p.alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if p.alive() {
        return Err(anyhow!(
            "the supervisor (pid {}) is still running after SIGKILL",
            p.pid
        ));
    }
    Ok(())
}

/// Starts `podrun supervise POD` with this podrun's flags, detached: its
/// own session (it calls setsid itself), stdin from /dev/null, stdout and
/// stderr appended to `log`. Returns it, identified.
pub fn spawn(g: &Global, pod: &str, log: &Path) -> Result<ProcRef> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--address")
        .arg(&g.address)
        .arg("--namespace")
        .arg(&g.namespace)
        .arg("--cni-conf-dir")
        .arg(&g.cni_conf_dir)
        .arg("--cni-bin-dir")
        .arg(&g.cni_bin_dir)
        .arg("--cni-cache-dir")
        .arg(&g.cni_cache_dir)
        .arg("--state-dir")
        .arg(&g.state_dir);
    if let Some(p) = &g.pause_bin {
        cmd.arg("--pause-bin").arg(p);
    }
    cmd.arg("supervise")
        .arg(pod)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let child = cmd.spawn().context("start podrun supervise")?;
    // Our child: its PID cannot be reused before we wait for it.
    ProcRef::of(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_its_pid_and_start_time() {
        let me = ProcRef::me().unwrap();
        assert!(me.alive());
        let recycled = ProcRef {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert!(!recycled.alive());
        let other_boot = ProcRef {
            boot_id: "x".into(),
            ..me.clone()
        };
        assert!(!other_boot.alive());
        // Ending a process that is not (or no longer) the recorded one
        // signals nothing.
        end(&recycled).unwrap();
        assert!(me.alive());
    }

    #[test]
    fn an_exited_child_is_not_alive_even_as_a_zombie() {
        let mut child = Command::new("true").spawn().unwrap();
        let p = ProcRef::of(child.id()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!p.alive(), "zombie counted as alive");
        child.wait().unwrap();
    }

    #[test]
    fn end_stops_a_running_process() {
        let mut child = Command::new("sleep").arg("100").spawn().unwrap();
        let p = ProcRef::of(child.id()).unwrap();
        end(&p).unwrap();
        assert!(!child.wait().unwrap().success());
    }
}
