//! Net confs as Go plugins read them: every capability in the spelling
//! podman/libcni send (lower camel case), the one containerd's go-cni sends
//! (Go field names, no tags) and a mixed one, duplicates, unknown keys.

use serde_json::{json, Value};

use super::*;
use crate::result::CniResult;

/// Each capability as libcni writes it, and the canonical form expected.
fn capabilities() -> Vec<(&'static str, Value)> {
    vec![
        (
            "portMappings",
            json!([{"hostPort":18080,"containerPort":80,"protocol":"tcp","hostIP":"10.0.0.1"}]),
        ),
        (
            "ipRanges",
            json!([[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.20","gateway":"10.1.0.1"}]]),
        ),
        (
            "bandwidth",
            json!({"ingressRate":1000,"ingressBurst":2000,"egressRate":3000,"egressBurst":4000}),
        ),
        (
            "dns",
            json!({"servers":["10.96.0.10"],"searches":["svc.local"],"options":["ndots:5"]}),
        ),
    ]
}

/// Renames every object key of `v` with `spell` (recursively).
fn respell(v: &Value, spell: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (spell(k), respell(v, spell)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|e| respell(e, spell)).collect()),
        v => v.clone(),
    }
}

fn go_name(k: &str) -> String {
    let mut c = k.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// `hostPort` -> `hOSTpORT`.
fn mixed(k: &str) -> String {
    k.chars()
        .enumerate()
        .map(|(i, c)| {
            if i == 0 {
                c.to_ascii_lowercase()
            } else if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

fn conf_with_runtime(rc: Value) -> NetConf {
    let text = json!({"cniVersion":"1.0.0","name":"n","type":"x","runtimeConfig": rc}).to_string();
    NetConf::parse(text.as_bytes()).unwrap()
}

#[test]
fn every_capability_in_every_spelling_reads_canonically() {
    let spellings: [&dyn Fn(&str) -> String; 3] = [&|k: &str| k.to_string(), &go_name, &mixed];
    for (cap, want) in capabilities() {
        for spell in spellings {
            let sent = respell(&want, spell);
            let conf = conf_with_runtime(json!({ cap: sent.clone() }));
            assert_eq!(conf.runtime_arg(cap), Some(&want), "{cap} sent as {sent}");
        }
    }
    // Scalar and list capabilities have no inner keys to fold.
    let rc = json!({"ips":["10.1.0.5"],"mac":"aa:bb:cc:dd:ee:ff","aliases":["a"],"cgroupPath":"/kubepods/x",
                    "io.kubernetes.cri.pod-annotations":{"Some/Key":"v"}});
    let conf = conf_with_runtime(rc.clone());
    assert_eq!(conf.runtime_config.as_ref(), Some(&rc));
}

#[test]
fn containerd_port_mappings_read_as_host_port() {
    let stdin = br#"{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni","runtimeConfig":
        {"portMappings":[{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}]}}"#;
    let conf = NetConf::parse(stdin).unwrap();
    assert_eq!(
        conf.runtime_arg("portMappings"),
        Some(&json!([{"hostPort":18080,"containerPort":80,"protocol":"tcp","hostIP":""}]))
    );
}

#[test]
fn duplicates_last_wins_unknown_dropped_in_go_structs() {
    let stdin = br#"{"cniVersion":"1.0.0","name":"n","type":"x","runtimeConfig":{"portMappings":[
        {"hostPort":1,"HostPort":2,"HOSTPORT":3,"containerPort":80,"Extra":"x"}],
        "bandwidth":{"IngressRate":1,"ingressrate":5}}}"#;
    let conf = NetConf::parse(stdin).unwrap();
    assert_eq!(
        conf.runtime_arg("portMappings"),
        Some(&json!([{"hostPort":3,"containerPort":80}]))
    );
    assert_eq!(
        conf.runtime_arg("bandwidth"),
        Some(&json!({"ingressRate":5}))
    );
}

#[test]
fn top_level_args_and_plugin_keys() {
    let stdin = br#"{"CNIVersion":"0.4.0","Name":"a","NAME":"cbr0","Type":"x","Capabilities":{"PortMappings":true},
        "IPAM":{"Type":"host-local","Subnet":"10.0.0.0/24"},"DNS":{"Nameservers":["1.1.1.1"]},
        "Args":{"CNI":{"IPs":["10.0.0.5"],"Other":1},"k8s":{"x":1}},"PluginKey":{"Inner":1}}"#;
    let conf = NetConf::parse(stdin).unwrap();
    assert_eq!(
        (
            conf.cni_version.as_str(),
            conf.name.as_str(),
            conf.type_.as_str()
        ),
        ("0.4.0", "cbr0", "x")
    );
    // `capabilities` is a Go map: its keys stay as written.
    assert!(conf.has_capability("PortMappings") && !conf.has_capability("portMappings"));
    assert_eq!(
        conf.ipam,
        Some(json!({"type":"host-local","Subnet":"10.0.0.0/24"}))
    );
    assert_eq!(conf.dns.unwrap().nameservers, ["1.1.1.1"]);
    assert_eq!(
        conf.extra["args"],
        json!({"cni":{"ips":["10.0.0.5"],"Other":1},"k8s":{"x":1}})
    );
    assert_eq!(
        conf.extra["PluginKey"],
        json!({"Inner":1}),
        "unknown kept as-is"
    );
}

#[test]
fn prev_result_and_gc_attachments_in_go_spelling() {
    let stdin = br#"{"cniVersion":"1.1.0","name":"n","type":"x",
        "PrevResult":{"CNIVersion":"1.0.0","Interfaces":[{"Name":"eth0","MAC":"aa:bb:cc:dd:ee:ff","Sandbox":"/n"}],
                      "IPs":[{"Address":"10.0.0.5/24","Gateway":"10.0.0.1","Interface":0}],
                      "Routes":[{"Dst":"0.0.0.0/0","GW":"10.0.0.1"}]},
        "CNI.dev/Valid-Attachments":[{"ContainerID":"c1","IfName":"eth0"}]}"#;
    let conf = NetConf::parse(stdin).unwrap();
    let r = conf.parsed_prev_result().unwrap().unwrap();
    assert_eq!(r.cni_version, "1.0.0");
    assert_eq!(r.interfaces[0].mac, "aa:bb:cc:dd:ee:ff");
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.5/24");
    assert_eq!(r.ips[0].interface, Some(0));
    assert_eq!(r.routes[0].gw.unwrap().to_string(), "10.0.0.1");
    assert_eq!(
        valid_attachments(&conf).unwrap(),
        Some(vec![("c1".to_string(), "eth0".to_string())])
    );
}

#[test]
fn results_printed_in_go_spelling_parse() {
    let out = br#"{"CniVersion":"0.4.0","IPs":[{"Version":"4","Address":"10.0.0.5/24"}],"ips":[{"address":"10.0.0.6/24"}],
                   "DNS":{"Nameservers":["10.96.0.10"]}}"#;
    let r = CniResult::parse(out, "").unwrap();
    assert_eq!(r.cni_version, "0.4.0");
    assert_eq!(r.ips.len(), 1);
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.6/24", "last wins");
    assert_eq!(r.dns.nameservers, ["10.96.0.10"]);
    let old =
        br#"{"cniVersion":"0.2.0","IP4":{"IP":"10.0.0.5/24","Routes":[{"Dst":"0.0.0.0/0"}]}}"#;
    let r = CniResult::parse(old, "").unwrap();
    assert_eq!(r.ips[0].address.to_string(), "10.0.0.5/24");
    assert_eq!(r.routes.len(), 1);
}

#[test]
fn conflist_reads_type_and_capabilities_like_libcni() {
    let list = NetConfList::parse(
        br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"Type":"portmap","Capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    assert_eq!(list.plugin_type(0), Some("portmap"));
    let mut rt = Map::new();
    rt.insert("portMappings".into(), json!([]));
    let conf = list.plugin_config(0, None, &rt).unwrap();
    assert_eq!(conf["runtimeConfig"], json!({"portMappings": []}));
}
