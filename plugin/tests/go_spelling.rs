//! The real `netboot-cni` binary reads what containerd's CRI sends: port
//! mappings with Go field names (go-cni's untagged `PortMapping`), and
//! refuses a bad one with code 7 naming the field by its canonical path,
//! before any side effect (the environment points at nothing real).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// Runs the binary with `stdin` for CNI_COMMAND `cmd`; (exit code, stdout).
fn run(cmd: &str, stdin: &Value) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_netboot-cni"))
        .env_clear()
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", "gospelling")
        .env("CNI_NETNS", dir.path().join("no-such-netns"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v)
}

fn conf(mappings: Value, dir: &std::path::Path) -> Value {
    json!({
        "cniVersion": "1.0.0", "name": "cbr0", "type": "netboot-cni",
        "DataDir": dir.join("data"), "SubnetFile": dir.join("subnet.env"),
        "runtimeConfig": {"portMappings": mappings},
    })
}

#[test]
fn bad_go_spelled_port_mapping_is_code_7_naming_the_canonical_field() {
    let dir = tempfile::tempdir().unwrap();
    for (mapping, field, shown) in [
        (
            json!({"HostPort":"x","ContainerPort":80,"Protocol":"tcp","HostIP":""}),
            "hostPort",
            r#""x""#,
        ),
        (
            json!({"hOSTpORT":18080,"cONTAINERpORT":0}),
            "containerPort",
            "0",
        ),
        (
            json!({"HostPort":18080,"ContainerPort":80,"HostIP":"not-an-ip"}),
            "hostIP",
            "not-an-ip",
        ),
    ] {
        let (code, out) = run("ADD", &conf(json!([mapping]), dir.path()));
        assert_eq!(code, 1, "{mapping}: {out}");
        assert_eq!(out["code"], 7, "{mapping}: {out}");
        let msg = out["msg"].as_str().unwrap();
        let want = format!("runtimeConfig.portMappings[0].{field}: ");
        assert!(
            msg.contains(&want) && msg.contains(shown),
            "{mapping}: {msg}"
        );
    }
    // Nothing was written: the refusal came before the first side effect.
    assert!(!dir.path().join("data").exists());
}

#[test]
fn go_spelled_mapping_passes_the_check_and_fails_only_on_the_missing_lease() {
    // A valid mapping in Go spelling gets past config validation; with no
    // subnet.env (and no delegate on CNI_PATH) the ADD then stops at the
    // lease, which proves the mapping itself was accepted.
    let dir = tempfile::tempdir().unwrap();
    let mapping = json!({"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""});
    let (code, out) = run("ADD", &conf(json!([mapping]), dir.path()));
    assert_eq!(code, 1, "{out}");
    assert_ne!(out["code"], 7, "{out}");
    assert!(out["msg"].as_str().unwrap().contains("subnet.env"), "{out}");
}
