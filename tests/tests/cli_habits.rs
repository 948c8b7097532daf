//! What every command-line tool is expected to do: `--version` with the
//! build's git commit and date, netboot-cni run by hand answering as the
//! reference plugins do, shell completions and man pages installed by
//! scripts/build-release.sh.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netboot_tests::{bin_path, run, CmdOutput};

fn tool(name: &str, args: &[&str]) -> CmdOutput {
    let mut cmd = Command::new(bin_path(name));
    cmd.args(args);
    run(cmd, None, Duration::from_secs(60))
}

/// `(commit, date)` out of `… 0.1.0 (commit C, built D)`, both checked.
#[track_caller]
fn stamp(line: &str) -> (String, String) {
    let inner = line
        .strip_suffix(')')
        .and_then(|l| l.split_once(" (commit "))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no (commit …, built …) in {line:?}"));
    let (commit, date) = inner
        .split_once(", built ")
        .unwrap_or_else(|| panic!("no built date in {line:?}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "commit {commit:?} in {line:?}"
    );
    let d: Vec<&str> = date.split('-').collect();
    assert!(
        d.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&d)
                .all(|(n, p)| p.len() == *n && p.chars().all(|c| c.is_ascii_digit())),
        "date {date:?} in {line:?}"
    );
    (commit.to_string(), date.to_string())
}

#[test]
fn versions_name_the_commit_and_the_build_date() {
    let mut stamps = Vec::new();
    for name in ["netboot", "podrun"] {
        let out = tool(name, &["--version"]).expect_ok();
        let line = out.stdout.trim();
        assert!(line.starts_with(&format!("{name} 0.")), "{out}");
        stamps.push(stamp(line));
    }
    let out = tool("netboot-cni", &["--version"]).expect_ok();
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("CNI netboot-cni plugin 0."), "{out}");
    stamps.push(stamp(first));
    assert!(stamps.windows(2).all(|w| w[0] == w[1]), "{stamps:?}");
    // Built from this checkout: the commit is one of its own.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let commit = &stamps[0].0;
    if repo.join(".git").exists() {
        let mut cmd = Command::new("git");
        cmd.arg("-C")
            .arg(&repo)
            .args(["cat-file", "-e", &format!("{commit}^{{commit}}")]);
        let out = run(cmd, None, Duration::from_secs(30));
        assert!(
            out.success(),
            "{commit} is no commit of {}: {out}",
            repo.display()
        );
    }
}

/// Run `bin` with no CNI variables and a stdin that stays open: the
/// exit status, stdout and stderr, or a failure if it waited for input.
fn run_by_hand(bin: &Path, command: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = command {
        cmd.env("CNI_COMMAND", c);
    }
    let mut child = cmd.spawn().expect("start the plugin");
    let _stdin = child.stdin.take();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} waited for stdin", bin.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

#[test]
fn netboot_cni_run_by_hand_answers_like_the_reference_plugins() {
    let reference = Path::new(netboot_tests::REFERENCE_CNI_PATH).join("bridge");
    let ours = bin_path("netboot-cni");
    for command in [None, Some("")] {
        let (rcode, rout, rerr) = run_by_hand(&reference, command);
        let (code, out, err) = run_by_hand(&ours, command);
        assert_eq!(
            (code, out.as_str()),
            (rcode, rout.as_str()),
            "{command:?}: {err}"
        );
        let (rlines, lines): (Vec<&str>, Vec<&str>) =
            (rerr.lines().collect(), err.lines().collect());
        assert_eq!(lines.len(), rlines.len(), "{command:?}: {err} vs {rerr}");
        assert!(rlines[0].starts_with("CNI bridge plugin "), "{rerr}");
        assert!(lines[0].starts_with("CNI netboot-cni plugin "), "{err}");
        let versions = "CNI protocol versions supported: ";
        assert!(rlines[1].starts_with(versions), "{rerr}");
        assert_eq!(
            lines[1],
            format!("{versions}0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0")
        );
    }
    // VERSION still answers the spec's JSON on stdout.
    let (code, out, _) = run_by_hand(&ours, Some("VERSION"));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("VERSION JSON");
    assert_eq!(
        v["supportedVersions"].as_array().map(Vec::len),
        Some(7),
        "{out}"
    );
}

#[test]
fn release_install_puts_completions_and_man_pages_under_the_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("usr");
    let from = bin_path("netboot");
    let from = from.parent().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-release.sh");
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .arg("--from")
        .arg(from)
        .arg("--prefix")
        .arg(&prefix);
    run(cmd, None, Duration::from_secs(120)).expect_ok();
    for f in ["netboot", "netboot-cni", "podrun", "pause"] {
        assert!(prefix.join("bin").join(f).is_file(), "bin/{f}");
    }
    let share = prefix.join("share");
    for t in ["netboot", "podrun"] {
        let bash = share.join("bash-completion/completions").join(t);
        let mut check = Command::new("bash");
        check.arg("-n").arg(&bash);
        run(check, None, Duration::from_secs(30)).expect_ok();
        let text = std::fs::read_to_string(&bash).unwrap();
        let sub = if t == "netboot" { "agent" } else { "ps" };
        assert!(text.contains(sub), "{t}: {sub} not in {}", bash.display());
        for f in [
            share.join(format!("zsh/site-functions/_{t}")),
            share.join(format!("fish/vendor_completions.d/{t}.fish")),
        ] {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            assert!(text.contains(sub), "{}", f.display());
        }
    }
    let man1 = share.join("man/man1");
    for page in [
        "netboot",
        "netboot-agent",
        "netboot-doctor",
        "podrun",
        "podrun-ps",
    ] {
        assert!(man1.join(format!("{page}.1")).is_file(), "{page}.1");
    }
    // The packagers' commands are hidden: no page of their own.
    for page in ["netboot-man", "netboot-completions", "podrun-man"] {
        assert!(!man1.join(format!("{page}.1")).exists(), "{page}.1");
    }
    let mut man = Command::new("man");
    man.arg("-l")
        .arg(man1.join("netboot-agent.1"))
        .env("MANPAGER", "cat")
        .env("LC_ALL", "C");
    let out = run(man, None, Duration::from_secs(30)).expect_ok();
    assert!(out.stdout.contains("--subnet-file"), "{out}");
    // A shell it does not know is refused.
    let out = tool("netboot", &["completions", "tcsh"]);
    assert!(!out.success() && out.stderr.contains("tcsh"), "{out}");
}
