//! README command 1 itself: `scripts/demo.sh` runs the whole cluster demo
//! end to end, and a step that fails is named, its logs shown, and
//! everything is still torn down.
//!
//! The release binaries come from `scripts/build-release.sh`, which
//! `scripts/test.sh` runs before the tests (a test cannot build them: cargo
//! holds the target directory while tests run), hence `--no-build`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use netboot_tests::{require_root, run};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Namespaces whose name starts with `prefix`.
fn namespaces(prefix: &str) -> Vec<String> {
    let out = netboot_tests::run_argv(&["ip", "netns", "list"]);
    out.stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn demo(prefix: &str, path: Option<&str>) -> netboot_tests::CmdOutput {
    for b in ["netboot", "netboot-cni", "podrun", "pause"] {
        let p = repo().join("target/release").join(b);
        assert!(
            p.is_file(),
            "{} is missing: run scripts/build-release.sh first (scripts/test.sh does)",
            p.display()
        );
    }
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/demo.sh"))
        .args(["--no-install", "--no-build"])
        .env("NETBOOT_DEMO_PREFIX", prefix)
        // The demo's own target dir, not this test's.
        .env_remove("CARGO_TARGET_DIR");
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    run(cmd, None, Duration::from_secs(300))
}

#[test]
fn demo_runs_end_to_end_and_cleans_up() {
    require_root();
    let prefix = format!("nbd{}-", std::process::id() % 100_000);
    let out = demo(&prefix, None);
    assert!(out.success(), "demo failed:\n{out}");
    for needle in [
        "What this proved",
        "cross-node     client (worker2) -> web (worker1) over vxlan: \"hello from pod web on worker1\"",
        "worker1 -> 192.168.56.11:8080: \"hello from pod web on worker1\"",
        "worker2 -> 192.168.56.11:8080: \"hello from pod web on worker1\"",
        "worker1 healthy, worker2 healthy",
    ] {
        assert!(out.stdout.contains(needle), "demo output lacks {needle:?}:\n{out}");
    }
    assert_eq!(
        namespaces(&prefix),
        Vec::<String>::new(),
        "demo left namespaces"
    );
}

#[test]
fn a_failing_step_is_named_logged_and_cleaned_up() {
    require_root();
    let prefix = format!("nbf{}-", std::process::id() % 100_000);
    // A containerd that dies at once, first on PATH.
    let fake = tempfile::tempdir().expect("tempdir");
    let bin = fake.path().join("containerd");
    std::fs::write(
        &bin,
        "#!/bin/sh\necho 'containerd: simulated start failure' >&2\nexit 1\n",
    )
    .expect("write fake containerd");
    Command::new("chmod")
        .arg("755")
        .arg(&bin)
        .status()
        .expect("chmod");
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = demo(&prefix, Some(&path));
    assert!(
        !out.success(),
        "demo succeeded with a broken containerd:\n{out}"
    );
    let all = format!("{}{}", out.stdout, out.stderr);
    assert!(
        all.contains("FAILED in step"),
        "no failed step named:\n{out}"
    );
    assert!(
        all.contains("worker1"),
        "the failed step is not the worker's:\n{out}"
    );
    assert!(
        all.contains("simulated start failure"),
        "containerd's log line is not shown:\n{out}"
    );
    assert_eq!(
        namespaces(&prefix),
        Vec::<String>::new(),
        "demo left namespaces"
    );
}
