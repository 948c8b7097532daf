//! Hostile input for the CNI contract (issue 8): net confs with prevResult
//! at every spec version, conflists, results and their conversions, CNI_ARGS
//! and the CNI_* environment.
//!
//! Properties: no panic, no hang (inputs bounded, every case watched), and
//! every rejection carries the right CNI code: decode errors 6, invalid
//! config 7, invalid environment 4 (3 for a missing container ID),
//! incompatible version 1. Accepted values survive a round trip.
//!
//! Case counts: `NETBOOT_FUZZ_CASES` (default 256 per target, for CI);
//! `scripts/campaign.sh` runs many more. Corpora: `tests/corpus/<target>/`.

#[path = "../../tests/corpus/fuzzkit.rs"]
mod fuzzkit;
#[path = "../../tests/corpus/propkit.rs"]
mod propkit;

use cni::args::{parse_cni_args, CmdArgs};
use cni::error::codes;
use cni::version::SUPPORTED_VERSIONS;
use cni::{CniError, CniResult, NetConf, NetConfList};
use proptest::prelude::*;
use serde_json::{json, Value};

const DEFAULT_CASES: u32 = 256;

fn code_in(e: &CniError, allowed: &[u32], what: &str) -> Result<bool, String> {
    if allowed.contains(&e.code) && !e.msg.is_empty() {
        Ok(false)
    } else {
        Err(format!("{what}: code {} not in {allowed:?}: {e}", e.code))
    }
}

/// Every result conversion: to each version and back. 1.x is exact; 0.3/0.4
/// keep what they can express; 0.1/0.2 need an address (else code 1).
fn check_result_conversions(r: &CniResult) -> Result<(), String> {
    for v in SUPPORTED_VERSIONS {
        match r.to_value(v) {
            Ok(out) => {
                let back = CniResult::from_value(&out, "")
                    .map_err(|e| format!("{v}: own output does not parse: {e}\n{out}"))?;
                if back.cni_version != *v {
                    return Err(format!("{v}: read back as {}", back.cni_version));
                }
                if v.starts_with("1.") {
                    let mut want = r.clone();
                    want.cni_version = v.to_string();
                    if back != want {
                        return Err(format!("{v}: round trip changed {r:?} into {back:?}"));
                    }
                }
                if !v.starts_with("0.1") && !v.starts_with("0.2") && back.ips.len() != r.ips.len() {
                    return Err(format!("{v}: ips lost: {r:?} -> {back:?}"));
                }
            }
            Err(e) if e.code == codes::INCOMPATIBLE_VERSION && r.ips.is_empty() => {}
            Err(e) => return Err(format!("to {v}: {e}")),
        }
    }
    Ok(())
}

fn check_netconf(bytes: &[u8]) -> Result<bool, String> {
    let conf = match NetConf::parse(bytes) {
        Ok(c) => c,
        Err(e) => return code_in(&e, &[codes::DECODE, codes::INVALID_CONFIG], "NetConf"),
    };
    // What was accepted writes back and reads again as the same config.
    let again = NetConf::from_value(conf.to_value()).map_err(|e| format!("reparse: {e}"))?;
    if again != conf {
        return Err(format!("round trip: {conf:?} != {again:?}"));
    }
    cni::conf::valid_attachments(&conf)
        .map(|_| ())
        .or_else(|e| code_in(&e, &[codes::DECODE], "valid-attachments").map(|_| ()))?;
    for cmd in ["ADD", "DEL", "CHECK", "GC", "STATUS"] {
        let cmd = cmd.parse().map_err(|e: CniError| e.msg)?;
        if let Err(e) = cni::require_version(cmd, &conf.cni_version) {
            code_in(
                &e,
                &[codes::INCOMPATIBLE_VERSION, codes::DECODE],
                "require_version",
            )?;
        }
    }
    match conf.parsed_prev_result() {
        Ok(Some(r)) => check_result_conversions(&r)?,
        Ok(None) => {}
        Err(e) => {
            code_in(
                &e,
                &[codes::DECODE, codes::INCOMPATIBLE_VERSION],
                "prevResult",
            )?;
            if !e.msg.starts_with("prevResult: ") {
                return Err(format!("prevResult error does not say where: {e}"));
            }
        }
    }
    Ok(true)
}

fn check_conflist(bytes: &[u8]) -> Result<bool, String> {
    let list = match NetConfList::parse(bytes) {
        Ok(l) => l,
        Err(e) => return code_in(&e, &[codes::DECODE, codes::INVALID_CONFIG], "conflist"),
    };
    let again = NetConfList::from_value(list.to_value()).map_err(|e| format!("reparse: {e}"))?;
    if again != list {
        return Err(format!("round trip: {list:?} != {again:?}"));
    }
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/8"}]});
    let mut runtime = serde_json::Map::new();
    runtime.insert(
        "portMappings".into(),
        json!([{"hostPort": 1, "containerPort": 2}]),
    );
    for i in 0..list.plugins.len() {
        let conf = list
            .plugin_config(i, Some(&prev), &runtime)
            .map_err(|e| format!("plugin_config({i}): {e}"))?;
        if conf["name"] != Value::String(list.name.clone()) {
            return Err(format!("plugin {i} lost the network name"));
        }
    }
    Ok(true)
}

fn check_result(bytes: &[u8]) -> Result<bool, String> {
    for default in ["", "0.2.0", "0.4.0", "1.1.0", "7.7.7"] {
        match CniResult::parse(bytes, default) {
            Ok(r) => check_result_conversions(&r)?,
            Err(e) => {
                code_in(&e, &[codes::DECODE, codes::INCOMPATIBLE_VERSION], "result")?;
            }
        }
    }
    Ok(CniResult::parse(bytes, "1.1.0").is_ok())
}

fn check_cni_args(bytes: &[u8]) -> Result<bool, String> {
    let s = String::from_utf8_lossy(bytes);
    match parse_cni_args(&s) {
        Ok(pairs) => {
            for (k, v) in &pairs {
                if k.is_empty() || k.contains([';', '=']) || v.contains([';', '=']) {
                    return Err(format!("accepted a malformed pair {k:?}={v:?}"));
                }
            }
            let joined: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let again = parse_cni_args(&joined.join(";")).map_err(|e| e.msg)?;
            if again != pairs {
                return Err(format!("round trip {pairs:?} -> {again:?}"));
            }
            if let Err(e) = cni::args::check_known_args(&pairs, &["K8S_POD_NAME"]) {
                code_in(&e, &[codes::INVALID_ENV], "check_known_args")?;
            }
            Ok(true)
        }
        Err(e) => code_in(&e, &[codes::INVALID_ENV], "CNI_ARGS"),
    }
}

#[test]
fn fuzz_netconf() {
    fuzzkit::run(
        "netconf",
        DEFAULT_CASES,
        &[
            "\"prevResult\"",
            "\"cniVersion\"",
            "\"ip4\"",
            "\"ips\"",
            "\"capabilities\"",
            // containerd's go-cni spelling (untagged Go structs).
            "\"HostPort\"",
            "\"RuntimeConfig\"",
            "\"IPs\"",
        ],
        check_netconf,
    );
}

#[test]
fn fuzz_conflist() {
    fuzzkit::run(
        "conflist",
        DEFAULT_CASES,
        &[
            "\"plugins\"",
            "\"cniVersions\"",
            "\"disableCheck\"",
            "\"type\"",
        ],
        check_conflist,
    );
}

#[test]
fn fuzz_result() {
    fuzzkit::run(
        "result",
        DEFAULT_CASES,
        &[
            "\"interface\"",
            "\"gateway\"",
            "\"routes\"",
            "\"mtu\"",
            "\"scope\"",
        ],
        check_result,
    );
}

#[test]
fn fuzz_cni_args() {
    fuzzkit::run(
        "cni_args",
        DEFAULT_CASES,
        &["IgnoreUnknown", "K8S_POD_NAME"],
        check_cni_args,
    );
}

/// The same corpora replayed as regular inputs, so an interesting input
/// added to `tests/corpus` is checked on every `cargo test` exactly.
#[test]
fn corpus_replays() {
    for (target, check) in [
        (
            "netconf",
            check_netconf as fn(&[u8]) -> Result<bool, String>,
        ),
        ("conflist", check_conflist),
        ("result", check_result),
        ("cni_args", check_cni_args),
    ] {
        for (name, bytes) in fuzzkit::corpus(target) {
            check(&bytes).unwrap_or_else(|e| panic!("{target}/{name}: {e}"));
        }
    }
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(SUPPORTED_VERSIONS).prop_map(str::to_string),
        Just(String::new()),
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}",
        ".{0,8}",
    ]
}

fn ipnet() -> impl Strategy<Value = ipnet::IpNet> {
    prop_oneof![
        (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, l)| ipnet::IpNet::V4(ipnet::Ipv4Net::new(a.into(), l).unwrap())),
        (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(a, l)| ipnet::IpNet::V6(ipnet::Ipv6Net::new(a.into(), l).unwrap())),
    ]
}

fn result_strategy() -> impl Strategy<Value = CniResult> {
    let iface = (
        "[a-z0-9]{1,15}",
        "[0-9a-f:]{0,17}",
        proptest::option::of(68u32..65536),
        ".{0,12}",
    )
        .prop_map(|(name, mac, mtu, sandbox)| cni::Interface {
            name,
            mac,
            mtu,
            sandbox,
            ..cni::Interface::default()
        });
    let ip = (
        proptest::option::of(0usize..4),
        ipnet(),
        proptest::option::of(ipnet()),
    )
        .prop_map(|(interface, address, gw)| cni::IpConfig {
            interface,
            address,
            gateway: gw.map(|g| g.addr()),
        });
    let route = (
        ipnet(),
        proptest::option::of(ipnet()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(dst, gw, table)| cni::Route {
            table,
            ..cni::Route::new(dst, gw.map(|g| g.addr()))
        });
    (
        proptest::collection::vec(iface, 0..3),
        proptest::collection::vec(ip, 0..4),
        proptest::collection::vec(route, 0..4),
        proptest::collection::vec("[a-z.]{1,10}", 0..3),
    )
        .prop_map(|(interfaces, ips, routes, search)| CniResult {
            cni_version: "1.1.0".into(),
            interfaces,
            ips,
            routes,
            dns: cni::Dns {
                search,
                ..cni::Dns::default()
            },
        })
}

proptest! {
    #![proptest_config(propkit::config(fuzzkit::cases(DEFAULT_CASES)))]

    /// Every result converts to every version and reads back.
    #[test]
    fn results_convert_at_every_version(r in result_strategy()) {
        prop_assert_eq!(check_result_conversions(&r), Ok(()));
    }

    /// A net conf carrying any result as prevResult, at any version string:
    /// parsed or refused with 1/6/7, never a panic.
    #[test]
    fn prev_result_at_any_version(r in result_strategy(), conf_v in version(), prev_v in version()) {
        let mut prev = r.to_value("1.1.0").unwrap();
        let target = if SUPPORTED_VERSIONS.contains(&prev_v.as_str()) { prev_v.clone() } else { "1.1.0".into() };
        if let Ok(v) = r.to_value(&target) { prev = v; }
        prev["cniVersion"] = Value::String(prev_v);
        let conf = json!({"cniVersion": conf_v, "name": "cbr0", "type": "netboot-cni", "prevResult": prev});
        let bytes = serde_json::to_vec(&conf).unwrap();
        prop_assert!(check_netconf(&bytes).is_ok(), "{:?}", check_netconf(&bytes));
    }

    /// CNI_ARGS from an alphabet rich in separators and hostile bytes.
    #[test]
    fn cni_args_any(s in "([A-Za-z0-9_]{0,6}[=;]?){0,8}|[ -~\\n\\x00é]{0,64}") {
        prop_assert!(check_cni_args(s.as_bytes()).is_ok(), "{:?}", check_cni_args(s.as_bytes()));
    }

    /// The whole CNI_* environment: accepted only with a valid command,
    /// container ID and ifname; refused with 3 or 4 (never a panic).
    #[test]
    fn env_any(
        cmd in prop_oneof![Just("ADD".to_string()), Just("DEL".to_string()), Just("CHECK".to_string()),
                           Just("GC".to_string()), Just("STATUS".to_string()), Just("VERSION".to_string()), ".{0,6}"],
        cid in prop_oneof![Just("../../etc".to_string()), Just("a/b".to_string()), Just("$(touch /tmp/pwned)".to_string()),
                           "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,70}", ".{0,80}"],
        ifname in prop_oneof![Just("eth0".to_string()), Just("..".to_string()), Just("a/b".to_string()), ".{0,20}"],
        netns in ".{0,30}",
        args in ".{0,40}",
        path in ".{0,40}",
    ) {
        let env = |k: &str| match k {
            "CNI_COMMAND" => Some(cmd.clone()),
            "CNI_CONTAINERID" => Some(cid.clone()),
            "CNI_IFNAME" => Some(ifname.clone()),
            "CNI_NETNS" => Some(netns.clone()),
            "CNI_ARGS" => Some(args.clone()),
            "CNI_PATH" => Some(path.clone()),
            _ => None,
        };
        match CmdArgs::from_env(&env) {
            Ok(a) => {
                if matches!(cmd.as_str(), "ADD" | "DEL" | "CHECK") {
                    prop_assert!(cni::args::validate_container_id(&a.container_id).is_ok());
                    prop_assert!(!a.container_id.contains('/') && !a.container_id.starts_with('.'));
                    prop_assert!(!a.ifname.contains('/') && a.ifname != "." && a.ifname != "..");
                    prop_assert!(a.ifname.len() <= 15);
                }
            }
            Err(e) => prop_assert!(
                [codes::UNKNOWN_CONTAINER, codes::INVALID_ENV].contains(&e.code),
                "code {} for {e}", e.code
            ),
        }
    }
}
