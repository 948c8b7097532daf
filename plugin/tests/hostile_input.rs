//! Hostile input for netboot-cni's own parsers (issue 8): `subnet.env`, the
//! plugin's config keys (mode, paths, delegate, portmap, timeouts) and the
//! dispatcher that turns env + stdin into a CNI answer.
//!
//! Properties: no panic, no hang; a rejected config is code 7 and its
//! message names the field (`invalid config: <field>: ...`); a bad
//! subnet.env is code 6 naming the line or the missing keys; the dispatcher
//! always prints exactly one CNI error object on failure. Accepted configs
//! only hold absolute, `..`-free paths without control characters.
//!
//! Nothing here reaches a side effect: [`netboot_cni::run`] is only driven
//! with environments it must refuse before touching the node.

#[path = "../../tests/corpus/fuzzkit.rs"]
mod fuzzkit;
#[path = "../../tests/corpus/propkit.rs"]
mod propkit;

use std::path::{Component, Path};

use cni::error::codes;
use cni::NetConf;
use netboot_cni::conf::PluginConf;
use netboot_cni::ctx::subnet_env_error;
use netboot_cni::subnet_env::{SubnetEnv, SubnetEnvError};
use proptest::prelude::*;
use serde_json::{json, Value};

const DEFAULT_CASES: u32 = 256;

fn safe_path(p: &Path) -> bool {
    let s = p.to_string_lossy();
    p.is_absolute()
        && !p.components().any(|c| c == Component::ParentDir)
        && !s.chars().any(char::is_control)
}

fn check_subnet_env(bytes: &[u8]) -> Result<bool, String> {
    let text = String::from_utf8_lossy(bytes);
    let path = Path::new("/run/flannel/subnet.env");
    match SubnetEnv::parse(&text, path) {
        Ok(env) => {
            if env.networks.is_empty() && env.ipv6_networks.is_empty() {
                return Err("accepted without any network".into());
            }
            if env.subnet.is_none() && env.ipv6_subnet.is_none() {
                return Err("accepted without any subnet".into());
            }
            for n in env.subnet.iter().chain(env.ipv6_subnet.iter()) {
                if *n != n.trunc() {
                    return Err(format!("subnet {n} keeps host bits"));
                }
            }
            Ok(true)
        }
        Err(e) => {
            let msg = e.to_string();
            let cni = subnet_env_error(&e);
            if cni.code != codes::DECODE {
                return Err(format!("code {} for {msg}", cni.code));
            }
            let located = match &e {
                SubnetEnvError::Parse { line, msg, .. } => {
                    *line >= 1 && msg.starts_with("FLANNEL_")
                }
                SubnetEnvError::Missing { keys, .. } => !keys.is_empty(),
                SubnetEnvError::Read { .. } => false,
            };
            if !located || !msg.contains("/run/flannel/subnet.env") {
                return Err(format!("error does not say where: {msg}"));
            }
            Ok(false)
        }
    }
}

/// The plugin's own keys of a net conf: refused with code 7 naming the
/// field, or accepted with only safe paths.
fn check_plugin_conf(bytes: &[u8]) -> Result<bool, String> {
    let Ok(net) = NetConf::parse_as(bytes, &netboot_cni::conf::SCHEMA) else {
        return Ok(false);
    };
    match PluginConf::from_netconf(net) {
        Ok(c) => {
            let mut paths = vec![c.subnet_file.clone(), c.data_dir.clone()];
            paths.extend(c.log_file.clone());
            if let Some(Value::String(d)) = c.ipam.get("dataDir") {
                paths.push(d.into());
            }
            if let Some(p) = paths.iter().find(|p| !safe_path(p)) {
                return Err(format!("accepted unsafe path {p:?}"));
            }
            if let Err(e) = c.check_port_mappings() {
                if e.code != codes::INVALID_CONFIG || !e.msg.starts_with("invalid config: ") {
                    return Err(format!("port mappings: {e}"));
                }
            }
            Ok(true)
        }
        Err(e) if e.code == codes::INVALID_CONFIG && e.msg.starts_with("invalid config: ") => {
            Ok(false)
        }
        Err(e) => Err(format!("code {}: {e}", e.code)),
    }
}

/// The whole dispatcher, with an environment it must refuse before any
/// side effect (a junk command or an invalid container ID).
fn check_dispatch(stdin: &[u8], command: &str, cid: &str) -> Result<(), String> {
    let env = |k: &str| -> Option<String> {
        match k {
            "CNI_COMMAND" => Some(command.to_string()),
            "CNI_CONTAINERID" => Some(cid.to_string()),
            "CNI_NETNS" => Some("/nonexistent/netns".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_PATH" => Some("/nonexistent".into()),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let code = netboot_cni::run(&env, stdin, &mut out);
    if command == "VERSION" {
        return if code == 0 {
            Ok(())
        } else {
            Err("VERSION failed".into())
        };
    }
    if code != 1 {
        return Err(format!("exit {code} for a refused call"));
    }
    let v: Value = serde_json::from_slice(&out).map_err(|e| {
        format!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })?;
    let c = v["code"].as_u64().ok_or("no code")?;
    let allowed = [
        codes::INCOMPATIBLE_VERSION,
        codes::UNKNOWN_CONTAINER,
        codes::INVALID_ENV,
        codes::DECODE,
        codes::INVALID_CONFIG,
    ];
    if !allowed.contains(&(c as u32)) || v["msg"].as_str().is_none_or(str::is_empty) {
        return Err(format!("unexpected error object {v}"));
    }
    Ok(())
}

#[test]
fn fuzz_subnet_env() {
    fuzzkit::run(
        "subnet_env",
        DEFAULT_CASES,
        &[
            "FLANNEL_NETWORK=",
            "FLANNEL_SUBNET=",
            "FLANNEL_IPV6_SUBNET=",
            "FLANNEL_MTU=",
            "FLANNEL_IPMASQ=",
            "\nFLANNEL_",
        ],
        check_subnet_env,
    );
}

#[test]
fn fuzz_plugin_conf() {
    fuzzkit::run_named(
        "plugin_conf",
        "netconf",
        DEFAULT_CASES,
        &[
            "\"mode\":\"native\",",
            "\"dataDir\":",
            "\"subnetFile\":",
            "\"logFile\":",
            "\"delegate\":",
            "\"portmap\":",
            "\"delegateTimeout\":",
            "\"logLevel\":",
        ],
        check_plugin_conf,
    );
}

#[test]
fn fuzz_dispatch() {
    const BAD_IDS: &[&str] = &[
        "",
        "../../etc",
        "a/b",
        "$(touch /tmp/pwned)",
        ".x",
        "a\nb",
        "é",
    ];
    let rng = std::sync::Mutex::new(fuzzkit::Rng::new(fuzzkit::seed()));
    fuzzkit::run_named(
        "dispatch",
        "netconf",
        DEFAULT_CASES,
        &["\"cniVersion\":"],
        move |input| {
            let mut r = rng.lock().unwrap_or_else(|p| p.into_inner());
            let command = *r.pick(&["ADD", "DEL", "CHECK", "add", "", "FOO", "VERSION"]);
            let cid = *r.pick(BAD_IDS);
            drop(r);
            check_dispatch(input, command, cid).map(|()| true)
        },
    );
}

#[test]
fn corpus_replays() {
    for (name, bytes) in fuzzkit::corpus("subnet_env") {
        check_subnet_env(&bytes).unwrap_or_else(|e| panic!("subnet_env/{name}: {e}"));
    }
    for (name, bytes) in fuzzkit::corpus("netconf") {
        check_plugin_conf(&bytes).unwrap_or_else(|e| panic!("netconf/{name}: {e}"));
        check_dispatch(&bytes, "ADD", "../../etc")
            .unwrap_or_else(|e| panic!("netconf/{name}: {e}"));
    }
}

fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(fuzzkit::HOSTILE).prop_map(str::to_string),
        "(/[a-z.]{0,4}){0,4}",
        "/var/lib/cni/flannel(/\\.\\.|/x|\\x00|\\n){0,2}",
        ".{0,40}",
    ]
}

proptest! {
    #![proptest_config(propkit::config(fuzzkit::cases(DEFAULT_CASES)))]

    /// Any string in any of the path keys: safe or refused naming the key.
    #[test]
    fn path_keys_are_safe_or_refused(
        key in proptest::sample::select(&["dataDir", "subnetFile", "logFile", "ipam.dataDir"][..]),
        value in hostile_string(),
    ) {
        let mut conf = json!({"cniVersion": "1.1.0", "name": "cbr0", "type": "netboot-cni"});
        match key.strip_prefix("ipam.") {
            Some(k) => conf["ipam"] = json!({ k: value }),
            None => conf[key] = json!(value),
        }
        let net = NetConf::parse_as(conf.to_string().as_bytes(), &netboot_cni::conf::SCHEMA).unwrap();
        match PluginConf::from_netconf(net) {
            Ok(c) => {
                let got = match key {
                    "dataDir" => Some(c.data_dir.clone()),
                    "subnetFile" => Some(c.subnet_file.clone()),
                    "logFile" => c.log_file.clone(),
                    _ => c.ipam.get("dataDir").and_then(Value::as_str).map(Into::into),
                };
                if let Some(p) = got {
                    prop_assert!(safe_path(&p), "{key}={value:?} accepted as {p:?}");
                }
            }
            Err(e) => {
                prop_assert_eq!(e.code, codes::INVALID_CONFIG);
                prop_assert!(e.msg.contains(key), "{} does not name {}", e.msg, key);
            }
        }
    }

    /// subnet.env lines built from its own keys and hostile values.
    #[test]
    fn subnet_env_lines(lines in proptest::collection::vec(
        (proptest::sample::select(&["FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_IPV6_NETWORK",
            "FLANNEL_IPV6_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ", "OTHER", ""][..]),
         prop_oneof![hostile_string(), "[0-9./:,a-f]{0,24}"]), 0..10)) {
        let text: String = lines.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        prop_assert!(check_subnet_env(text.as_bytes()).is_ok(), "{:?}", check_subnet_env(text.as_bytes()));
    }
}
