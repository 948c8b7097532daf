//! Hostile input for the bootstrapper's readers (issue 8): flannel's network
//! config (Go-style case-insensitive JSON, as stored at
//! `<prefix>/config`) and the subnet lease JSON other nodes write.
//!
//! Both come from etcd, i.e. from any client with write access to the
//! prefix. Properties: no panic, no hang; a refused config lists at least
//! one non-empty problem; an accepted config writes back as flannel JSON
//! that reads as the same config; `check` either yields the effective ranges
//! or non-empty problems; a refused lease is a plain message.
//!
//! The parsers are compiled in from `src/` (the crate is a binary), and
//! cases come from the seeded mutator shared by every crate
//! (`tests/corpus/fuzzkit.rs`; `NETBOOT_FUZZ_CASES` sets the count).

#![allow(dead_code, unused_imports)]

#[path = "../../tests/corpus/fuzzkit.rs"]
mod fuzzkit;
#[path = "../src/lease/mod.rs"]
mod lease;
#[path = "../src/netconfig/mod.rs"]
mod netconfig;

use lease::Lease;
use netconfig::{same_config, NetConfig};

const DEFAULT_CASES: u32 = 256;

fn check_config(bytes: &[u8]) -> Result<bool, String> {
    match NetConfig::parse(bytes) {
        Ok(cfg) => {
            let text = cfg.to_json();
            let again = NetConfig::parse(text.as_bytes())
                .map_err(|e| format!("own output {text} does not parse: {e}"))?;
            if !same_config(&cfg, &again) {
                return Err(format!("round trip changed {cfg:?} into {again:?}"));
            }
            match cfg.check() {
                Ok(_) => Ok(true),
                Err(problems) if !problems.is_empty() && problems.iter().all(|p| !p.is_empty()) => {
                    Ok(false)
                }
                Err(problems) => Err(format!("check refused without a reason: {problems:?}")),
            }
        }
        Err(e) if !e.0.is_empty() && e.0.iter().all(|m| !m.is_empty()) => Ok(false),
        Err(e) => Err(format!("refused without a reason: {e:?}")),
    }
}

/// First line: the etcd key name (`10.2.1.0-24`); the rest: the value.
fn check_lease(bytes: &[u8]) -> Result<bool, String> {
    let split = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let key = String::from_utf8_lossy(&bytes[..split]);
    let value = bytes.get(split + 1..).unwrap_or_default();
    match Lease::parse(&key, value) {
        Ok(l) => {
            if lease::parse_key(&l.key.name()) != Some(l.key) {
                return Err(format!("key {key:?} read as {}", l.key.show()));
            }
            let again = lease::Attrs::parse(l.attrs.to_json().as_bytes())
                .map_err(|e| format!("own output of {key:?} does not parse: {e}"))?;
            if again != l.attrs {
                return Err(format!(
                    "value round trip changed {:?} into {again:?}",
                    l.attrs
                ));
            }
            Ok(true)
        }
        Err(e) if !e.is_empty() => Ok(false),
        Err(_) => Err("refused without a reason".into()),
    }
}

#[test]
fn fuzz_flannel_config() {
    fuzzkit::run(
        "flannel_config",
        DEFAULT_CASES,
        &[
            "\"Network\":",
            "\"SubnetLen\":",
            "\"Backend\":",
            "\"VNI\":",
            "\"IPv6Network\":",
            "\"network\":",
        ],
        check_config,
    );
}

#[test]
fn fuzz_lease() {
    fuzzkit::run(
        "lease",
        DEFAULT_CASES,
        &[
            "\"PublicIP\":",
            "\"PublicIPv6\":",
            "\"BackendData\":",
            "\"BackendV6Data\":",
            "&fd00::-64",
            "\"VtepMAC\":",
            "\"VNI\":",
            "-24",
            "10.2.1.0",
        ],
        check_lease,
    );
}

/// docs/security.md F4: a lease key with host bits names no subnet.
#[test]
fn lease_keys_with_host_bits_are_refused() {
    for key in [
        "10.2.1.5-24",
        "10.2.1.0-04",
        "/coreos.com/network/subnets/10.2.1.1-16",
    ] {
        assert_eq!(lease::parse_key(key), None, "{key}");
        assert!(Lease::parse(key, br#"{"PublicIP":"10.0.0.1"}"#).is_err());
    }
    assert!(lease::parse_key("10.2.1.0-24").is_some());
    assert!(lease::parse_key("10.2.1.0-24&fd00::1-64").is_none());
}

#[test]
fn corpus_replays() {
    for (name, bytes) in fuzzkit::corpus("flannel_config") {
        check_config(&bytes).unwrap_or_else(|e| panic!("flannel_config/{name}: {e}"));
    }
    for (name, bytes) in fuzzkit::corpus("lease") {
        check_lease(&bytes).unwrap_or_else(|e| panic!("lease/{name}: {e}"));
    }
}
