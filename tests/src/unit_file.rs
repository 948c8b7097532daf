//! `conf/netboot-agent.service` as the tests read it, and what an agent
//! traced with `strace -f` did, so that the two can be compared: the
//! capabilities the unit leaves, the system calls its filter admits, the
//! socket families it allows and the paths it lets the agent write.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::run_argv;

/// The unit file, read once.
pub struct Unit {
    pub path: PathBuf,
    text: String,
}

impl Unit {
    /// `conf/netboot-agent.service` of this checkout.
    pub fn agent() -> Unit {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/netboot-agent.service");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        Unit { path, text }
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The value of every `key=` line, in order (the file has no line
    /// continuations).
    pub fn values(&self, key: &str) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
            .collect()
    }

    /// Every word of every `key=` line.
    pub fn words(&self, key: &str) -> Vec<String> {
        self.values(key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string))
            .collect()
    }

    /// `setpriv --bounding-set` for CapabilityBoundingSet=:
    /// `-all,+net_admin,+net_raw`.
    pub fn setpriv_bounding_set(&self) -> String {
        let caps = self.words("CapabilityBoundingSet");
        assert!(!caps.is_empty(), "the unit sets no CapabilityBoundingSet");
        let mut arg = "-all".to_string();
        for c in caps {
            let name = c
                .strip_prefix("CAP_")
                .unwrap_or_else(|| panic!("capability {c:?} without CAP_"));
            arg.push_str(&format!(",+{}", name.to_lowercase()));
        }
        arg
    }

    /// The system calls the SystemCallFilter= lines admit: those of the
    /// allow lists minus those of the `~` lines (how systemd combines
    /// them when the first line is an allow list).
    pub fn allowed_syscalls(&self) -> BTreeSet<String> {
        let lines = self.values("SystemCallFilter");
        assert!(
            lines.first().is_some_and(|l| !l.starts_with('~')),
            "the first SystemCallFilter= line should be an allow list: {lines:?}"
        );
        let (mut allow, mut deny) = (BTreeSet::new(), BTreeSet::new());
        for l in &lines {
            let (set, items) = match l.strip_prefix('~') {
                Some(rest) => (&mut deny, rest),
                None => (&mut allow, l.as_str()),
            };
            for item in items.split_whitespace() {
                expand(item, set);
            }
        }
        allow.difference(&deny).cloned().collect()
    }
}

/// The system calls of a filter item: a name, or a `@group` expanded
/// (recursively) by `systemd-analyze syscall-filter`.
pub fn expand(item: &str, out: &mut BTreeSet<String>) {
    if !item.starts_with('@') {
        out.insert(item.to_string());
        return;
    }
    let got = run_argv(&["systemd-analyze", "syscall-filter", item]).expect_ok();
    // "@group", "    # description", then one name or @group per line.
    for word in got.stdout.lines().skip(1).map(str::trim) {
        if word.is_empty() || word.starts_with('#') {
            continue;
        }
        expand(word, out);
    }
}

/// What a traced program did after it became `exe`.
#[derive(Debug, Default)]
pub struct Trace {
    /// Every system call made (by the program and the tools it ran).
    pub syscalls: BTreeSet<String>,
    /// Socket address families opened: `AF_NETLINK`, ...
    pub families: BTreeSet<String>,
    /// Paths created, written, renamed or removed successfully.
    pub written: BTreeSet<String>,
    /// Device files opened (`/dev/...`), for PrivateDevices=.
    pub devices: BTreeSet<String>,
    /// Mappings asked to be writable and executable at once, for
    /// MemoryDenyWriteExecute=.
    pub write_exec_maps: usize,
}

const PATH_CALLS: [&str; 8] = [
    "mkdir",
    "mkdirat",
    "rename",
    "renameat",
    "renameat2",
    "unlink",
    "unlinkat",
    "rmdir",
];

/// The quoted strings in a strace argument list.
fn quoted(args: &str) -> Vec<String> {
    args.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

impl Trace {
    /// Parse `strace -f -o FILE` output, from the `execve` of `exe` on
    /// (what a wrapper such as setpriv did before does not count).
    pub fn parse(text: &str, exe: &Path) -> Trace {
        let marker = format!("execve(\"{}\"", exe.display());
        let start = text
            .lines()
            .position(|l| l.contains(&marker))
            .unwrap_or_else(|| panic!("no {marker} in the trace"));
        let mut t = Trace::default();
        for line in text.lines().skip(start) {
            // "PID name(args) = result", "PID name(args <unfinished ...>",
            // "PID <... name resumed>...) = result", "PID +++ exited ...".
            let Some((_pid, rest)) = line.trim_start().split_once(' ') else {
                continue;
            };
            let rest = rest.trim_start();
            let call = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = call
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name.is_empty() || !call[name.len()..].starts_with(['(', ' ']) {
                continue;
            }
            t.syscalls.insert(name.clone());
            if rest.starts_with("<...") {
                continue;
            }
            let failed = rest.contains(") = -1 ");
            if name == "socket" {
                let fam = call[name.len() + 1..]
                    .split([',', ')'])
                    .next()
                    .unwrap_or("");
                t.families.insert(fam.trim().to_string());
            } else if name == "openat" && !failed {
                let path = quoted(rest).into_iter().next().unwrap_or_default();
                let writes = ["O_WRONLY", "O_RDWR", "O_CREAT"]
                    .iter()
                    .any(|f| rest.contains(f));
                if path.starts_with("/dev/") {
                    t.devices.insert(path.clone());
                }
                if writes {
                    t.written.insert(path);
                }
            } else if ["mmap", "mprotect", "pkey_mprotect"].contains(&name.as_str()) {
                if rest.contains("PROT_WRITE") && rest.contains("PROT_EXEC") {
                    t.write_exec_maps += 1;
                }
            } else if PATH_CALLS.contains(&name.as_str()) && !failed {
                t.written.extend(quoted(rest));
            }
        }
        t
    }
}

/// The PIDs of `pid`'s children (`/proc/PID/task/PID/children`).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Bound for one `systemd-analyze` call in the tests.
pub const ANALYZE_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strace_lines() {
        let text = "\
10 execve(\"/usr/bin/setpriv\", [\"setpriv\"], 0x0 /* 1 vars */) = 0
10 capset({...}) = 0
10 execve(\"/x/netboot\", [\"netboot\"], 0x0 /* 1 vars */) = 0
10 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 3
11 openat(AT_FDCWD, \"/run/a/subnet.env.tmp\", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 4
11 openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC) = 5
11 openat(AT_FDCWD, \"/dev/null\", O_RDONLY|O_CLOEXEC) = 6
11 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f00
11 mprotect(0x7f00, 4096, PROT_READ|PROT_WRITE|PROT_EXEC) = 0
11 mkdir(\"/run/a\", 0777) = -1 EEXIST (File exists)
11 rename(\"/run/a/x.tmp\", \"/run/a/x\") = 0
12 futex(0x1, FUTEX_WAIT_PRIVATE, 0, NULL <unfinished ...>
12 <... futex resumed>) = 0
12 +++ exited with 0 +++
";
        let t = Trace::parse(text, Path::new("/x/netboot"));
        let names: Vec<&str> = t.syscalls.iter().map(String::as_str).collect();
        assert_eq!(
            names,
            ["execve", "futex", "mkdir", "mmap", "mprotect", "openat", "rename", "socket"]
        );
        assert_eq!(t.devices.iter().collect::<Vec<_>>(), ["/dev/null"]);
        assert_eq!(t.write_exec_maps, 1);
        assert_eq!(t.families.iter().collect::<Vec<_>>(), ["AF_NETLINK"]);
        let w: Vec<&str> = t.written.iter().map(String::as_str).collect();
        assert_eq!(w, ["/run/a/subnet.env.tmp", "/run/a/x", "/run/a/x.tmp"]);
    }
}
