//! Peak RSS of one plugin process, measured in a helper process.
//!
//! The benchmark re-executes itself as `bench_plugin --rss-probe PLUGIN`
//! (same environment, the plugin's config on stdin). The probe reads its
//! whole stdin, spawns PLUGIN with a piped stdin (so PLUGIN blocks before
//! doing any work), attaches to it with `PTRACE_SEIZE` +
//! `PTRACE_O_TRACEEXIT`, then feeds the config. At the exit stop, before
//! the kernel tears down its memory, PLUGIN's `VmHWM` (peak resident set of
//! that process alone) is read from /proc. After PLUGIN is reaped,
//! `getrusage(RUSAGE_CHILDREN).ru_maxrss` gives the peak over PLUGIN *and
//! every descendant it waited for* (e.g. the `nft` or `iptables` it ran,
//! `host-local` under `bridge`); the probe is a fresh process, so nothing
//! else is in that number. PLUGIN's stdout goes straight through; the probe
//! reports on stderr (`RSS_PROBE self_kib=N|- tree_kib=N anon_kib=.. file_kib=..`)
//! and exits with
//! PLUGIN's status. No unsafe code: nix's safe wrappers only.

use nix::sys::ptrace::{self, Event, Options};
use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// What the probe measured, in KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSample {
    /// Peak RSS of the plugin process itself (`VmHWM` at its exit stop);
    /// `None` if ptrace was refused.
    pub self_kib: Option<u64>,
    /// Peak RSS over the plugin and its reaped descendants.
    pub tree_kib: u64,
    /// Anonymous (heap, stacks) and file-backed (binary, libraries) RSS
    /// at the exit stop: what the peak is made of.
    pub anon_kib: Option<u64>,
    pub file_kib: Option<u64>,
    /// RSS at the exit stop per mapping (file basename, `[heap]`,
    /// `[stack]`, `[anon]`), largest first.
    pub maps: Vec<(String, u64)>,
}

impl RssSample {
    /// Parses the probe's report line out of its stderr.
    pub fn parse(stderr: &str) -> Option<RssSample> {
        let line = stderr.lines().rev().find(|l| l.starts_with("RSS_PROBE "))?;
        let field = |k: &str| {
            line.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        Some(RssSample {
            self_kib: field("self_kib"),
            tree_kib: field("tree_kib")?,
            anon_kib: field("anon_kib"),
            file_kib: field("file_kib"),
            maps: stderr
                .lines()
                .filter_map(|l| l.strip_prefix("RSS_MAP "))
                .filter_map(|l| {
                    let (name, kib) = l.rsplit_once(' ')?;
                    Some((name.to_string(), kib.parse().ok()?))
                })
                .collect(),
        })
    }
}

/// `VmHWM`, `RssAnon`, `RssFile` of `pid` (KiB).
fn memory_kib(pid: Pid) -> [Option<u64>; 3] {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    ["VmHWM:", "RssAnon:", "RssFile:"].map(|key| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    })
}

/// RSS per mapping from /proc/PID/smaps, summed by file basename
/// (anonymous mappings as `[anon]`), largest first.
fn smaps_kib(pid: Pid) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut per: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let first = parts.next().unwrap_or_default();
        if first.contains('-') && !first.ends_with(':') {
            // "start-end perms offset dev inode [path]"
            let path = parts.nth(4).unwrap_or("[anon]");
            current = path.rsplit('/').next().unwrap_or(path).to_string();
        } else if first == "Rss:" {
            let kib: u64 = parts.next().and_then(|v| v.parse().ok()).unwrap_or(0);
            *per.entry(current.clone()).or_default() += kib;
        }
    }
    let mut v: Vec<(String, u64)> = per.into_iter().filter(|(_, k)| *k > 0).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.1));
    v
}

/// The `--rss-probe PLUGIN` mode. Never returns.
pub fn probe_main(plugin: &str) -> ! {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .expect("rss-probe: read stdin");
    let mut child = Command::new(plugin)
        .stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("rss-probe: spawn {plugin}: {e}"));
    let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
    // The child is blocked reading stdin until we write it: seizing first
    // means no allocation happens before we watch.
    let traced = ptrace::seize(pid, Options::PTRACE_O_TRACEEXIT).is_ok();
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(&input);
    }
    let mut mem = [None; 3];
    let mut maps = Vec::new();
    let code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::PtraceEvent(_, _, ev)) => {
                if ev == Event::PTRACE_EVENT_EXIT as i32 {
                    mem = memory_kib(pid);
                    maps = smaps_kib(pid);
                }
                let _ = ptrace::cont(pid, None);
            }
            // Signal-delivery stop (e.g. SIGCHLD from its own children):
            // hand the signal on.
            Ok(WaitStatus::Stopped(_, sig)) => {
                let _ = ptrace::cont(pid, sig);
            }
            Ok(WaitStatus::Exited(_, c)) => break c,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) => {
                if traced {
                    let _ = ptrace::cont(pid, None);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => panic!("rss-probe: waitpid {pid}: {e}"),
        }
    };
    let tree = getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(|u| u64::try_from(u.max_rss()).unwrap_or(0))
        .unwrap_or(0);
    let show = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    for (name, kib) in &maps {
        eprintln!("RSS_MAP {name} {kib}");
    }
    eprintln!(
        "RSS_PROBE self_kib={} tree_kib={tree} anon_kib={} file_kib={}",
        show(mem[0]),
        show(mem[1]),
        show(mem[2])
    );
    std::process::exit(code)
}
