//! A stand-in for the upstream `flannel` CNI plugin (flannel-io/cni-plugin),
//! which Debian does not ship. It does what flannel's plugin does, so the
//! crash trials of netboot-cni's `flannel` mode exercise a real two-level
//! delegation chain with real side effects:
//!
//! - ADD reads `subnetFile` (default `/run/flannel/subnet.env`), renders the
//!   delegate config as `flannel_linux.go` does (type `bridge`, `name`,
//!   `ipMasq = !FLANNEL_IPMASQ`, `mtu`, `isGateway`, `cniVersion`,
//!   host-local `ranges` + `routes`), writes it fsynced to
//!   `<dataDir>/<containerID>` (0600 in a 0700 directory) and runs the
//!   delegate from CNI_PATH, printing its result unchanged;
//! - DEL reads that scratch file: missing is success without calling the
//!   delegate; unparseable is success and the file is kept (flannel#1662);
//!   otherwise the delegate's DEL runs and the file is removed on success;
//! - CHECK, STATUS and GC succeed and do nothing (upstream's skel no-ops).
//!
//! Like Go's `invoke.DelegateAdd`, the delegate runs as a plain child in
//! this process's group, so killing this process's PID orphans it.
//! Written from flannel's documented behaviour, not from its code; it is a
//! test fixture, never installed.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use serde_json::{json, Map, Value};

const DEFAULT_SUBNET_FILE: &str = "/run/flannel/subnet.env";
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let cmd = std::env::var("CNI_COMMAND").unwrap_or_default();
    let outcome = match cmd.as_str() {
        "VERSION" => Ok(json!({"cniVersion": "1.1.0", "supportedVersions":
            ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        .to_string()
        .into_bytes()),
        "ADD" => add(&stdin),
        "DEL" => del(&stdin).map(|()| Vec::new()),
        _ => Ok(Vec::new()),
    };
    let mut out = std::io::stdout();
    match outcome {
        Ok(bytes) => {
            let _ = out.write_all(&bytes);
            ExitCode::SUCCESS
        }
        Err(msg) => {
            let _ = out.write_all(msg.as_bytes());
            ExitCode::FAILURE
        }
    }
}

/// A CNI error JSON (what a failed plugin prints).
fn cni_error(code: u32, msg: impl Into<String>) -> String {
    json!({"cniVersion": "1.0.0", "code": code, "msg": msg.into()}).to_string()
}

fn parse_conf(stdin: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(stdin) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(cni_error(6, "failed to load netconf")),
    }
}

fn str_key(conf: &Map<String, Value>, key: &str, default: &str) -> String {
    conf.get(key)
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_string()
}

/// The keys of flannel's subnet.env this fixture needs.
struct SubnetEnv {
    networks: Vec<String>,
    subnet: String,
    mtu: u64,
    ipmasq: bool,
}

fn load_subnet_env(path: &str) -> Result<SubnetEnv, String> {
    let text = fs::read_to_string(path)
        .map_err(|e| cni_error(11, format!("loadFlannelSubnetEnv failed: {path}: {e}")))?;
    let mut kv = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            kv.insert(k.to_string(), v.to_string());
        }
    }
    let get = |k: &str| {
        kv.get(k)
            .cloned()
            .ok_or_else(|| cni_error(6, format!("{path} is missing {k}")))
    };
    // FLANNEL_SUBNET names the gateway (10.2.1.1/24); host-local wants the
    // network (10.2.1.0/24), as Go's net.ParseCIDR gives flannel.
    let subnet: ipnet::Ipv4Net = get("FLANNEL_SUBNET")?
        .parse()
        .map_err(|e| cni_error(6, format!("FLANNEL_SUBNET: {e}")))?;
    Ok(SubnetEnv {
        networks: get("FLANNEL_NETWORK")?
            .split(',')
            .map(str::to_string)
            .collect(),
        subnet: subnet.trunc().to_string(),
        mtu: get("FLANNEL_MTU")?
            .parse()
            .map_err(|e| cni_error(6, format!("FLANNEL_MTU: {e}")))?,
        ipmasq: get("FLANNEL_IPMASQ")? == "true",
    })
}

fn add(stdin: &[u8]) -> Result<Vec<u8>, String> {
    let conf = parse_conf(stdin)?;
    let env = load_subnet_env(&str_key(&conf, "subnetFile", DEFAULT_SUBNET_FILE))?;
    let mut d = match conf.get("delegate") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    if d.contains_key("name") || d.contains_key("ipam") {
        return Err(cni_error(7, "'delegate' must not have 'name' or 'ipam'"));
    }
    if let Some(rc) = conf.get("runtimeConfig") {
        d.insert("runtimeConfig".into(), rc.clone());
    }
    d.insert("name".into(), conf.get("name").cloned().unwrap_or_default());
    d.entry("type").or_insert_with(|| json!("bridge"));
    d.entry("ipMasq").or_insert_with(|| json!(!env.ipmasq));
    d.entry("mtu").or_insert_with(|| json!(env.mtu));
    if d.get("type") == Some(&json!("bridge")) {
        d.entry("isGateway").or_insert_with(|| json!(true));
    }
    if let Some(v) = conf.get("cniVersion") {
        d.insert("cniVersion".into(), v.clone());
    }
    let mut ipam = match conf.get("ipam") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    ipam.entry("type").or_insert_with(|| json!("host-local"));
    ipam.insert("ranges".into(), json!([[{"subnet": env.subnet}]]));
    let mut routes = match ipam.get("routes") {
        Some(Value::Array(r)) => r.clone(),
        _ => Vec::new(),
    };
    routes.extend(env.networks.iter().map(|n| json!({"dst": n})));
    ipam.insert("routes".into(), Value::Array(routes));
    d.insert("ipam".into(), Value::Object(ipam));
    let bytes =
        serde_json::to_vec(&Value::Object(d.clone())).map_err(|e| cni_error(999, e.to_string()))?;
    let dir = PathBuf::from(str_key(&conf, "dataDir", DEFAULT_DATA_DIR));
    save_scratch(&dir, &container_id(), &bytes)
        .map_err(|e| cni_error(5, format!("save scratch file: {e}")))?;
    let type_ = d["type"].as_str().unwrap_or("bridge").to_string();
    delegate(&type_, "ADD", &bytes)
}

fn del(stdin: &[u8]) -> Result<(), String> {
    let conf = parse_conf(stdin)?;
    let path = Path::new(&str_key(&conf, "dataDir", DEFAULT_DATA_DIR)).join(container_id());
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cni_error(5, format!("{}: {e}", path.display()))),
    };
    let Ok(Value::Object(d)) = serde_json::from_slice::<Value>(&bytes) else {
        eprintln!("failed to parse netconf in {}", path.display());
        return Ok(());
    };
    let type_ = d.get("type").and_then(Value::as_str).unwrap_or("bridge");
    delegate(type_, "DEL", &bytes)?;
    let _ = fs::remove_file(&path);
    Ok(())
}

fn container_id() -> String {
    std::env::var("CNI_CONTAINERID").unwrap_or_default()
}

fn save_scratch(dir: &Path, cid: &str, bytes: &[u8]) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(dir.join(cid))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Runs `type_` from CNI_PATH with `command`, inheriting the environment
/// (libcni `DelegateAdd`/`DelegateDel`), and returns its stdout.
fn delegate(type_: &str, command: &str, conf: &[u8]) -> Result<Vec<u8>, String> {
    let paths = std::env::var("CNI_PATH").unwrap_or_default();
    let bin = paths
        .split(':')
        .map(|d| Path::new(d).join(type_))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            cni_error(
                50,
                format!("failed to find plugin {type_:?} in path [{paths}]"),
            )
        })?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| cni_error(999, format!("exec {}: {e}", bin.display())))?;
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(conf);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| cni_error(999, format!("wait for {}: {e}", bin.display())))?;
    if out.status.success() {
        Ok(out.stdout)
    } else if out.stdout.is_empty() {
        Err(cni_error(
            999,
            format!("{type_} {command} failed: {}", out.status),
        ))
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
