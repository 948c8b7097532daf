//! podrun's log on stderr (`--log-format`, `--log-level`, `RUST_LOG`),
//! without containerd: a state dir laid out by an older podrun draws a
//! warning before containerd is contacted, and the unreachable socket
//! then ends the command with its plain error line.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use netboot_tests::{bin_path, run, CmdOutput};

const OLD_STATE: &str = "holds pods of a podrun before per-namespace state";

fn podrun(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
    let mut cmd = Command::new(bin_path("podrun"));
    cmd.arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--address")
        .arg(dir.join("no-containerd.sock"))
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    run(cmd, None, Duration::from_secs(60))
}

fn old_state_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(d.path().join("state/pods/old")).expect("old pods dir");
    d
}

#[test]
fn podrun_logs_json_lines_with_timestamp_level_and_message() {
    let d = old_state_dir();
    let out = podrun(d.path(), &["--log-format", "json", "ps"], &[]);
    assert!(!out.success(), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    let mut logged = 0;
    for l in out.stderr.lines() {
        // The final error is printed plainly, as netboot's are.
        if l.starts_with("podrun: containerd is not reachable at") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{out}"));
        assert!(
            v["timestamp"].as_str().is_some_and(|t| t.contains('T')),
            "{l}"
        );
        assert_eq!(v["level"], "WARN", "{l}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("podrun: warning: ") && m.contains(OLD_STATE)),
            "{l}"
        );
        logged += 1;
    }
    assert_eq!(logged, 1, "{out}");
    assert!(
        out.stderr.contains("containerd is not reachable at"),
        "{out}"
    );
}

#[test]
fn podrun_text_log_has_timestamp_and_level_and_log_level_filters() {
    let d = old_state_dir();
    let out = podrun(d.path(), &["ps"], &[]);
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(OLD_STATE))
        .unwrap_or_else(|| panic!("no warning: {out}"));
    let (ts, rest) = line.split_once(' ').expect("timestamp first");
    assert!(ts.contains('T') && ts.ends_with('Z'), "{line}");
    assert!(
        rest.trim_start().starts_with("WARN podrun: warning: "),
        "{line}"
    );

    // error hides warnings, from the flag or from RUST_LOG; the flag wins.
    for (args, env) in [
        (&["--log-level", "error", "ps"][..], &[][..]),
        (&["ps"][..], &[("RUST_LOG", "error")][..]),
        (
            &["--log-level", "error", "ps"][..],
            &[("RUST_LOG", "debug")][..],
        ),
    ] {
        let out = podrun(d.path(), args, env);
        assert!(!out.success(), "{out}");
        assert!(!out.stderr.contains(OLD_STATE), "{args:?} {env:?}: {out}");
        assert!(
            out.stderr.contains("containerd is not reachable at"),
            "{out}"
        );
    }
    let out = podrun(d.path(), &["--log-level", "warn", "ps"], &[]);
    assert!(out.stderr.contains(OLD_STATE), "{out}");
}

#[test]
fn podrun_rejects_a_bad_log_level() {
    let d = tempfile::tempdir().expect("tempdir");
    let out = podrun(d.path(), &["--log-level", "loud=[", "ps"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out}");
    assert!(out.stderr.contains("--log-level \"loud=[\""), "{out}");
}
