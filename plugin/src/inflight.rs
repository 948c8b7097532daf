//! Delegates in flight, so that a killed netboot-cni leaves no orphan
//! working behind the runtime's back.
//!
//! Each delegate runs as the leader of its own process group (cni
//! `invoke::Exec`). A runtime's timeout SIGKILLs only netboot-cni's PID
//! (libcni `exec.CommandContext`), so the delegate it was waiting for runs
//! on, orphaned, and can finish its ADD *after* the runtime's DEL or GC
//! cleaned up. The crash trials (`tests/tests/crash_trials.rs`) saw both:
//! portmap's orphaned ADD re-adding a DNAT jump while GC deleted the chain
//! (`CHAIN_DEL failed (Device or resource busy)`), and the reference
//! bridge's orphaned ADD leaving its masquerade chain after DEL.
//!
//! So, as soon as a delegate runs, netboot-cni notes `<pid> <start time>`
//! in `<dataDir>/.netboot/.<containerID>@<ifname>.inflight` and removes
//! the note when the call returns. DEL, GC and a repeated ADD of the
//! attachment first [`reap`] the noted group: if that very process still
//! runs (its start time is compared, so a reused PID is never signalled),
//! the whole group is SIGKILLed and awaited. A kill that lands between
//! the delegate's start and the note (a few microseconds, before the
//! delegate has read its stdin) is the one window left open.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// How long [`reap`] waits for a killed group to exit.
const REAP_WAIT: Duration = Duration::from_secs(5);

/// Field 22 of `/proc/<pid>/stat`: the start time in clock ticks, and
/// field 5, the process group.
fn stat(pid: u32) -> Option<(u64, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses.
    let rest = text.get(text.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((start, pgrp))
}

/// Writes the note for delegate `pid` (not fsynced: after a power loss
/// no process is left to kill).
pub fn note(path: &Path, pid: u32) -> io::Result<()> {
    let (start, _) = stat(pid).unwrap_or_default();
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(format!("{pid} {start}\n").as_bytes()))
}

/// Removes the note of a finished call.
pub fn clear(path: &Path) {
    let _ = fs::remove_file(path);
}

/// The process a note names, if it still runs as the leader of its own
/// group (the way netboot-cni started it).
fn noted_leader(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    match stat(pid) {
        Some((s, pgrp)) if s == start && pgrp == pid => Some(pid),
        _ => None,
    }
}

/// Kills the noted delegate's group if it still runs, waits for its
/// leader to exit, and removes the note. Returns the PID it killed.
pub fn reap(path: &Path) -> io::Result<Option<u32>> {
    let killed = match noted_leader(path) {
        Some(pid) => {
            let group = Pid::from_raw(i32::try_from(pid).map_err(io::Error::other)?);
            killpg(group, Signal::SIGKILL).map_err(io::Error::from)?;
            let deadline = Instant::now() + REAP_WAIT;
            // The leader is reaped by whoever adopted it; until then it is
            // a zombie, which no longer runs (state Z).
            while running(pid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(2));
            }
            Some(pid)
        }
        None => None,
    };
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(killed),
    }
}

/// Whether a note's process is gone (for GC's sweep of stale notes).
pub fn is_stale(path: &Path) -> bool {
    noted_leader(path).is_none()
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| {
            let rest = t.get(t.rfind(')')? + 2..)?.to_string();
            rest.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn reap_kills_the_noted_group_only() {
        let dir = tempfile::tempdir().unwrap();
        let note_path = dir.path().join(".c@eth0.inflight");
        // A group leader with a child in its group, as bridge + host-local.
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .spawn()
            .unwrap();
        note(&note_path, leader.id()).unwrap();
        assert!(!is_stale(&note_path));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&note_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(reap(&note_path).unwrap(), Some(leader.id()));
        let status = leader.wait().unwrap();
        assert!(!status.success(), "{status}");
        assert!(!note_path.exists());
        // Nothing noted, or a note of a dead or reused PID: nothing killed.
        assert_eq!(reap(&note_path).unwrap(), None);
        fs::write(&note_path, format!("{} 1\n", std::process::id())).unwrap();
        assert!(is_stale(&note_path), "start time differs: not ours");
        assert_eq!(reap(&note_path).unwrap(), None);
        fs::write(&note_path, "garbage").unwrap();
        assert_eq!(reap(&note_path).unwrap(), None);
        assert!(!note_path.exists());
    }
}
