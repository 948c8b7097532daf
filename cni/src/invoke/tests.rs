//! Invocation tests against small shell-script plugins in a tempdir.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use super::*;

fn write_plugin(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = open_exec(&path);
    f.write_all(format!("#!/bin/sh\n{body}\n").as_bytes())
        .unwrap();
    path
}

fn open_exec(path: &Path) -> File {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o755)
        .open(path)
        .unwrap()
}

fn run(plugin: &Path, stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    Exec::default().run(plugin, Command::Add, stdin, &ExecEnv::inherited())
}

/// ADD with a 300 ms timeout, which must fail; the error and how long the
/// call took.
fn add_timing_out(plugin: &Path) -> (CniError, Duration) {
    let exec = Exec {
        timeout: Duration::from_millis(300),
    };
    let start = Instant::now();
    let e = exec
        .run(plugin, Command::Add, b"", &ExecEnv::inherited())
        .unwrap_err();
    (e, start.elapsed())
}

#[test]
fn find_first_regular_file() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    fs::create_dir(a.path().join("bridge")).unwrap(); // a directory is not a plugin
    let real = write_plugin(b.path(), "bridge", "exit 0");
    let paths = vec![a.path().to_path_buf(), b.path().to_path_buf()];
    assert_eq!(find_in_path("bridge", &paths).unwrap(), real);
    std::os::unix::fs::symlink(&real, a.path().join("flannel")).unwrap();
    assert_eq!(
        find_in_path("flannel", &paths).unwrap(),
        a.path().join("flannel")
    );

    let e = find_in_path("nope", &[PathBuf::from("/a"), PathBuf::from("/b")]).unwrap_err();
    assert_eq!(e.code, codes::NOT_AVAILABLE);
    assert_eq!(e.msg, r#"failed to find plugin "nope" in path [/a /b]"#);
    for bad in ["../bridge", "/bin/sh", "a/b"] {
        let e = find_in_path(bad, &paths).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG, "{bad}");
        assert!(e.msg.contains("invalid plugin name"), "{}", e.msg);
    }
    assert_eq!(
        find_in_path("", &paths).unwrap_err().code,
        codes::INVALID_CONFIG
    );
    assert_eq!(
        find_in_path("bridge", &[]).unwrap_err().code,
        codes::NOT_AVAILABLE
    );
}

#[test]
fn success_passes_command_stdin_and_env() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(
        d.path(),
        "echo",
        r#"read -r line; printf '{"cmd":"%s","id":"%s","in":%s}' "$CNI_COMMAND" "$CNI_CONTAINERID" "$line""#,
    );
    let env = ExecEnv::inherited()
        .with("CNI_CONTAINERID", "old")
        .with("CNI_CONTAINERID", "c1");
    assert_eq!(env.vars.len(), 1);
    let out = Exec::default()
        .run(&p, Command::Check, b"{\"a\":1}\n", &env)
        .unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"cmd": "CHECK", "id": "c1", "in": {"a": 1}})
    );
}

#[test]
fn env_is_cleared_unless_inherited() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(d.path(), "env", "/usr/bin/env");
    // Some variable of ours the shell would not invent by itself.
    let shell_own = ["PATH", "PWD", "OLDPWD", "SHLVL", "_"];
    let (name, value) = std::env::vars()
        .find(|(k, v)| !v.is_empty() && !v.contains('\n') && !shell_own.contains(&k.as_str()))
        .expect("test process has some environment");
    let line = format!("{name}={value}");
    let lines = |out: Vec<u8>| {
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect::<Vec<_>>()
    };

    let clean = ExecEnv {
        vars: vec![("CNI_FOO".into(), "x".into())],
        inherit: false,
    };
    let got = lines(Exec::default().run(&p, Command::Add, b"", &clean).unwrap());
    assert!(got.contains(&"CNI_FOO=x".to_string()) && got.contains(&"CNI_COMMAND=ADD".to_string()));
    assert!(!got.contains(&line), "{line} leaked into a clean env");
    let got = lines(run(&p, b"").unwrap());
    assert!(got.contains(&line), "{line} not inherited");
}

#[test]
fn runtime_env_sets_every_variable() {
    let a = RuntimeArgs {
        container_id: "c".into(),
        netns: "/run/netns/x".into(),
        ifname: "eth0".into(),
        args: vec![
            ("K8S_POD_NAME".into(), "web".into()),
            ("IgnoreUnknown".into(), "1".into()),
        ],
        path: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
    };
    let env = ExecEnv::for_runtime(&a);
    assert!(env.inherit);
    let get = |k: &str| {
        env.vars
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("CNI_ARGS"), Some("K8S_POD_NAME=web;IgnoreUnknown=1"));
    assert_eq!(get("CNI_PATH"), Some("/opt/cni/bin:/usr/lib/cni"));
    assert_eq!(get("CNI_NETNS"), Some("/run/netns/x"));
    assert_eq!(get("CNI_COMMAND"), None, "set per run");
}

#[test]
fn error_json_is_returned_as_is() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(
        d.path(),
        "fail",
        r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"lock held"}'; exit 1"#,
    );
    assert_eq!(
        run(&p, b"{}").unwrap_err(),
        CniError::new(11, "busy").with_details("lock held")
    );
}

#[test]
fn garbage_or_silent_failure_is_internal() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(d.path(), "garbage", "echo 'panic: oops'; exit 3");
    let e = run(&p, b"").unwrap_err();
    assert_eq!(e.code, codes::INTERNAL);
    for want in [p.to_str().unwrap(), "exit status: 3", "panic: oops"] {
        assert!(e.msg.contains(want), "{want:?} not in {}", e.msg);
    }
    let p = write_plugin(d.path(), "silent", "exit 2");
    let e = run(&p, b"").unwrap_err();
    assert!(
        e.code == codes::INTERNAL && e.msg.contains("no error message"),
        "{e}"
    );
    let p = write_plugin(
        d.path(),
        "huge",
        "head -c 100000 /dev/zero | tr '\\0' x; exit 1",
    );
    let e = run(&p, b"").unwrap_err();
    assert!(
        e.msg.len() < 5000 && e.msg.ends_with("...\""),
        "{}",
        e.msg.len()
    );
}

#[test]
fn timeout_kills_the_whole_group() {
    let d = tempfile::tempdir().unwrap();
    // The shell forks `sleep`, which holds stdout open: killing only the
    // shell would leave us waiting for EOF.
    let p = write_plugin(d.path(), "hang", "sleep 30; echo late");
    let (e, took) = add_timing_out(&p);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(e.code, codes::TRY_AGAIN);
    assert!(
        e.msg.contains("timed out after 300ms running ADD") && e.msg.contains("hang"),
        "{}",
        e.msg
    );
}

#[test]
fn background_child_holding_stdout_times_out() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(d.path(), "daemon", "sleep 30 &\necho '{}'; exit 0");
    let (e, took) = add_timing_out(&p);
    assert_eq!(e.code, codes::TRY_AGAIN);
    assert!(took < Duration::from_secs(5));
}

#[test]
fn big_stdout_and_stdin_do_not_deadlock() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(d.path(), "big", "head -c 3000000 /dev/zero | tr '\\0' a");
    assert_eq!(run(&p, b"").unwrap().len(), 3_000_000);
    // A plugin that writes a lot before reading stdin, fed a lot of stdin.
    let p = write_plugin(
        d.path(),
        "both",
        "head -c 1000000 /dev/zero | tr '\\0' b; wc -c",
    );
    let out = run(&p, &vec![b'x'; 2_000_000]).unwrap();
    let tail = String::from_utf8_lossy(&out[1_000_000..])
        .trim()
        .to_string();
    assert_eq!(tail, "2000000");
    // A plugin that never reads stdin must not hang us either.
    let p = write_plugin(d.path(), "deaf", "echo ok");
    assert_eq!(run(&p, &vec![b'x'; 2_000_000]).unwrap(), b"ok\n");
}

#[test]
fn text_file_busy_is_retried() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("busy");
    let mut f = open_exec(&path);
    f.write_all(b"#!/bin/sh\necho done\n").unwrap();
    // Keep the file open for writing for a while, as an installer would.
    let holder = thread::spawn(move || {
        thread::sleep(Duration::from_millis(1200));
        drop(f);
    });
    assert_eq!(run(&path, b"").unwrap(), b"done\n");
    holder.join().unwrap();
}

#[test]
fn spawn_failure_names_the_plugin() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("noexec");
    fs::write(&path, "#!/bin/sh\n").unwrap();
    let e = run(&path, b"").unwrap_err();
    assert!(e.code == codes::INTERNAL && e.msg.contains("noexec"), "{e}");
}

#[test]
fn delegate_add_parses_at_conf_version() {
    let d = tempfile::tempdir().unwrap();
    write_plugin(
        d.path(),
        "ipam",
        r#"cat >/dev/null; echo '{"ips":[{"version":"4","address":"10.1.0.5/16"}]}'"#,
    );
    let paths = vec![d.path().to_path_buf()];
    let conf = br#"{"cniVersion":"0.4.0","name":"n","type":"ipam"}"#;
    let r = delegate(
        Command::Add,
        "ipam",
        conf,
        &paths,
        &ExecEnv::inherited(),
        &Exec::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.cni_version, "0.4.0");
    assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/16");
    // DEL/CHECK/STATUS/GC ignore stdout.
    for cmd in [Command::Del, Command::Check, Command::Status, Command::Gc] {
        let out = delegate(
            cmd,
            "ipam",
            conf,
            &paths,
            &ExecEnv::inherited(),
            &Exec::default(),
        )
        .unwrap();
        assert_eq!(out, None, "{cmd}");
    }
}

#[test]
fn delegate_errors() {
    let d = tempfile::tempdir().unwrap();
    write_plugin(d.path(), "junk", "echo not-json");
    let paths = vec![d.path().to_path_buf()];
    let (env, exec) = (ExecEnv::inherited(), Exec::default());
    let e = delegate(Command::Add, "junk", b"{}", &paths, &env, &exec).unwrap_err();
    assert_eq!(e.code, codes::DECODE);
    assert!(
        e.msg
            .starts_with(r#"plugin "junk" returned an invalid result: "#),
        "{}",
        e.msg
    );
    let e = delegate(Command::Add, "missing", b"{}", &paths, &env, &exec).unwrap_err();
    assert_eq!(e.code, codes::NOT_AVAILABLE);
    let e = delegate(Command::Del, "../junk", b"{}", &paths, &env, &exec).unwrap_err();
    assert_eq!(e.code, codes::INVALID_CONFIG);
}

#[test]
fn version_query() {
    let d = tempfile::tempdir().unwrap();
    let p = write_plugin(
        d.path(),
        "v",
        r#"[ "$CNI_COMMAND" = VERSION ] || exit 1; echo '{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0"]}'"#,
    );
    let got = version_info(&p, &ExecEnv::inherited(), &Exec::default()).unwrap();
    assert_eq!(got, ["0.4.0", "1.0.0"]);
    let p = write_plugin(d.path(), "w", "echo '{}'");
    assert_eq!(
        version_info(&p, &ExecEnv::inherited(), &Exec::default())
            .unwrap_err()
            .code,
        codes::DECODE
    );
}
