use std::fs;

use serde_json::json;

use super::*;
use crate::error::codes;

/// flannel's canonical conflist (`Documentation/kube-flannel.yml`).
const FLANNEL: &str = r#"{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {"type": "flannel", "delegate": {"hairpinMode": true, "isDefaultGateway": true}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}"#;

#[test]
fn netconf_keeps_unknown_fields_in_order() {
    let input = json!({
        "cniVersion": "1.0.0",
        "name": "cbr0",
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]]},
        "mtu": 1450,
        "zeta": {"nested": [1, 2]},
        "alpha": null
    });
    let c = NetConf::parse(input.to_string().as_bytes()).unwrap();
    assert_eq!(c.type_, "bridge");
    assert_eq!(c.ipam.as_ref().unwrap()["type"], "host-local");
    let keys: Vec<&str> = c.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, ["bridge", "isGateway", "mtu", "zeta", "alpha"]);
    assert_eq!(c.to_value(), input);
}

#[test]
fn netconf_typed_fields() {
    let c = NetConf::parse(
        br#"{"cniVersion":"1.1.0","name":"n","type":"portmap","capabilities":{"portMappings":true,"x":false},
            "runtimeConfig":{"portMappings":[{"hostPort":80}]},"dns":{"nameservers":["10.0.0.10"]}}"#,
    )
    .unwrap();
    assert!(c.has_capability("portMappings"));
    assert!(!c.has_capability("x") && !c.has_capability("bandwidth"));
    assert_eq!(c.runtime_arg("portMappings").unwrap()[0]["hostPort"], 80);
    assert_eq!(c.dns.as_ref().unwrap().nameservers, ["10.0.0.10"]);
    let v = c.to_value();
    assert_eq!(v["dns"], json!({"nameservers": ["10.0.0.10"]}));
}

#[test]
fn netconf_errors() {
    let e = NetConf::parse(b"{\"name\": \"n\",\n \"type\": }").unwrap_err();
    assert_eq!(e.code, codes::DECODE);
    assert!(
        e.msg.starts_with("error parsing network config: ") && e.msg.contains("line 2"),
        "{}",
        e.msg
    );
    assert_eq!(
        NetConf::parse(br#"{"type":"x"}"#).unwrap_err().code,
        codes::INVALID_CONFIG
    );
    assert_eq!(
        NetConf::parse(br#"{"name":"a/b","type":"x"}"#)
            .unwrap_err()
            .code,
        codes::INVALID_CONFIG
    );
    assert_eq!(
        NetConf::parse(br#"{"name":5}"#).unwrap_err().code,
        codes::DECODE
    );
    assert_eq!(NetConf::parse(b"[]").unwrap_err().code, codes::DECODE);
    let e = NetConf::parse(br#"{"name":"n","type":"x","capabilities":{"portMappings":"yes"}}"#)
        .unwrap_err();
    assert_eq!(e.code, codes::DECODE);
    assert!(e.msg.contains("capabilities.portMappings"), "{}", e.msg);
    assert!(
        NetConf::parse(br#"{"name":"n","type":"x","capabilities":{"portMappings":null}}"#).is_ok()
    );
}

#[test]
fn prev_result_uses_config_version_and_names_itself() {
    let c = NetConf::parse(
        br#"{"cniVersion":"0.4.0","name":"n","type":"portmap",
            "prevResult":{"ips":[{"version":"4","address":"10.1.0.5/16"}]}}"#,
    )
    .unwrap();
    let r = c.parsed_prev_result().unwrap().unwrap();
    assert_eq!(r.cni_version, "0.4.0");
    assert_eq!(r.ips[0].address.to_string(), "10.1.0.5/16");

    let c = NetConf::parse(
        br#"{"cniVersion":"1.0.0","name":"n","type":"x","prevResult":{"ips":[{"address":"bad"}]}}"#,
    )
    .unwrap();
    let e = c.parsed_prev_result().unwrap_err();
    assert!(e.msg.starts_with("prevResult: "), "{}", e.msg);
    let c = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"x"}"#).unwrap();
    assert_eq!(c.parsed_prev_result().unwrap(), None);
}

#[test]
fn gc_attachments() {
    let conf = |extra: Value| {
        let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "x"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        NetConf::from_value(v).unwrap()
    };
    let c = conf(json!({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}));
    assert_eq!(
        valid_attachments(&c).unwrap(),
        Some(vec![("a".into(), "eth0".into())])
    );
    let c = conf(json!({"cni.dev/attachments": [{"containerID": "b", "ifname": "net1"}]}));
    assert_eq!(
        valid_attachments(&c).unwrap(),
        Some(vec![("b".into(), "net1".into())])
    );
    let c = conf(json!({"cni.dev/valid-attachments": []}));
    assert_eq!(valid_attachments(&c).unwrap(), Some(vec![]));
    assert_eq!(valid_attachments(&conf(json!({}))).unwrap(), None);
    let c = conf(json!({"cni.dev/valid-attachments": [{"containerID": "a"}]}));
    let e = valid_attachments(&c).unwrap_err();
    assert!(
        e.msg.contains("cni.dev/valid-attachments[0]") && e.msg.contains("ifname"),
        "{}",
        e.msg
    );
    assert!(valid_attachments(&conf(json!({"cni.dev/valid-attachments": {}}))).is_err());
}

#[test]
fn conflist_parse_flannel() {
    let l = NetConfList::parse(FLANNEL.as_bytes()).unwrap();
    assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("cbr0", "0.3.1"));
    assert_eq!(l.plugins.len(), 2);
    assert_eq!(l.plugin_type(1), Some("portmap"));
    assert_eq!(l.plugin_type(2), None);
    assert!(!l.disable_check && !l.disable_gc);
    assert_eq!(l.effective_version(), "0.3.1");
    let back = NetConfList::from_value(l.to_value()).unwrap();
    assert_eq!(back, l);
}

#[test]
fn conflist_errors_name_the_problem() {
    let cases: &[(&str, u32, &str)] = &[
        ("{", codes::DECODE, "error parsing configuration list"),
        ("[]", codes::INVALID_CONFIG, "expected a JSON object"),
        (
            r#"{"plugins":[{"type":"x"}]}"#,
            codes::INVALID_CONFIG,
            "no name",
        ),
        (
            r#"{"name":"a b","plugins":[{"type":"x"}]}"#,
            codes::INVALID_CONFIG,
            "invalid network name",
        ),
        (r#"{"name":"n"}"#, codes::INVALID_CONFIG, "no 'plugins' key"),
        (
            r#"{"name":"n","plugins":[]}"#,
            codes::INVALID_CONFIG,
            "no plugins in list",
        ),
        (
            r#"{"name":"n","plugins":[{"type":"x"},{"ipam":{}}]}"#,
            codes::INVALID_CONFIG,
            "plugins[1]: missing 'type'",
        ),
        (
            r#"{"name":"n","plugins":[5]}"#,
            codes::INVALID_CONFIG,
            "plugins[0] must be an object",
        ),
        (
            r#"{"name":"n","cniVersion":1,"plugins":[{"type":"x"}]}"#,
            codes::INVALID_CONFIG,
            "cniVersion must be",
        ),
        (
            r#"{"name":"n","cniVersions":["1.0.0","x.y"],"plugins":[{"type":"x"}]}"#,
            codes::INVALID_CONFIG,
            "cniVersions[1]",
        ),
        (
            r#"{"name":"n","disableCheck":"maybe","plugins":[{"type":"x"}]}"#,
            codes::INVALID_CONFIG,
            "disableCheck",
        ),
    ];
    for (input, code, want) in cases {
        let e = NetConfList::parse(input.as_bytes()).unwrap_err();
        assert_eq!(e.code, *code, "{input}: {e}");
        assert!(e.msg.contains(want), "{input}: {}", e.msg);
    }
}

#[test]
fn conflist_flags_and_versions() {
    let l = NetConfList::parse(
        br#"{"name":"n","cniVersion":"0.4.0","cniVersions":["1.0.0","1.1.0","2.0.0"],
            "disableCheck":"TRUE","disableGC":true,"plugins":[{"type":"x"}],"custom":1}"#,
    )
    .unwrap();
    assert!(l.disable_check && l.disable_gc);
    assert_eq!(l.effective_version(), "1.1.0");
    assert_eq!(l.extra["custom"], 1);
    let l = NetConfList::parse(
        br#"{"name":"n","cniVersion":"1.0.0","cniVersions":["0.3.1"],"plugins":[{"type":"x"}]}"#,
    )
    .unwrap();
    assert_eq!(
        l.effective_version(),
        "1.0.0",
        "cniVersion takes part in the pick"
    );
    let l = NetConfList::parse(br#"{"name":"n","cniVersions":["3.0.0"],"plugins":[{"type":"x"}]}"#)
        .unwrap();
    assert_eq!(l.effective_version(), "");
}

#[test]
fn plugin_config_injects_like_libcni() {
    let l = NetConfList::parse(
        br#"{"name":"cbr0","cniVersion":"0.3.1","cniVersions":["1.0.0"],"plugins":[
            {"type":"flannel","cniVersion":"0.1.0","name":"other","delegate":{"hairpinMode":true}},
            {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false},"runtimeConfig":{"old":1}},
            {"type":"tuning","runtimeConfig":{"kept":true}}]}"#,
    )
    .unwrap();
    let mut rt = Map::new();
    rt.insert(
        "portMappings".into(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    rt.insert("bandwidth".into(), json!({"ingressRate": 1}));
    rt.insert("ips".into(), json!(["10.0.0.1"]));

    let first = l.plugin_config(0, None, &rt).unwrap();
    assert_eq!(
        first,
        json!({"type": "flannel", "cniVersion": "1.0.0", "name": "cbr0", "delegate": {"hairpinMode": true}})
    );
    let prev = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.244.0.5/24"}]});
    let second = l.plugin_config(1, Some(&prev), &rt).unwrap();
    assert_eq!(second["prevResult"], prev);
    assert_eq!(
        second["runtimeConfig"],
        json!({"portMappings": rt["portMappings"]})
    );
    // No declared capability matched: whatever runtimeConfig it had stays.
    let third = l.plugin_config(2, None, &rt).unwrap();
    assert_eq!(third["runtimeConfig"], json!({"kept": true}));
    assert_eq!(
        l.plugin_config(3, None, &rt).unwrap_err().code,
        codes::INVALID_CONFIG
    );
}

#[test]
fn single_conf_is_wrapped() {
    let l = NetConfList::from_single_conf(
        json!({"cniVersion":"0.4.0","name":"br","type":"bridge","x":1}),
    )
    .unwrap();
    assert_eq!((l.name.as_str(), l.cni_version.as_str()), ("br", "0.4.0"));
    assert_eq!(
        l.plugins,
        [json!({"cniVersion":"0.4.0","name":"br","type":"bridge","x":1})]
    );
}

#[test]
fn load_from_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        conf_files(&d.join("missing")).unwrap(),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(
        NetConfList::load_dir(d).unwrap_err().code,
        codes::INVALID_CONFIG
    );

    fs::write(
        d.join("99-last.conf"),
        r#"{"cniVersion":"0.4.0","name":"single","type":"bridge"}"#,
    )
    .unwrap();
    fs::write(d.join("10-flannel.conflist"), FLANNEL).unwrap();
    fs::write(d.join("05-broken.conflist"), "{not json").unwrap();
    fs::write(
        d.join("50-list.json"),
        r#"{"name":"jsonlist","plugins":[{"type":"loopback"}]}"#,
    )
    .unwrap();
    fs::write(d.join("README.md"), "ignored").unwrap();
    fs::create_dir(d.join("00-dir.conf")).unwrap();

    let names: Vec<String> = conf_files(d)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "05-broken.conflist",
            "10-flannel.conflist",
            "50-list.json",
            "99-last.conf"
        ]
    );

    // Default network: the first that loads (the broken one is skipped).
    assert_eq!(NetConfList::load_dir(d).unwrap().name, "cbr0");
    assert_eq!(
        NetConfList::load_file(&d.join("50-list.json"))
            .unwrap()
            .name,
        "jsonlist"
    );
    let single = NetConfList::load_file(&d.join("99-last.conf")).unwrap();
    assert_eq!(
        (single.name.as_str(), single.plugin_type(0)),
        ("single", Some("bridge"))
    );

    let e = NetConfList::load_file(&d.join("05-broken.conflist")).unwrap_err();
    assert!(
        e.msg.contains("05-broken.conflist") && e.code == codes::DECODE,
        "{e}"
    );
    let e = NetConfList::load_file(&d.join("nope.conf")).unwrap_err();
    assert_eq!(e.code, codes::IO);

    // By name, libcni-style: a broken file on the way is an error.
    assert!(NetConfList::load_named(d, "single").is_err());
    fs::remove_file(d.join("05-broken.conflist")).unwrap();
    assert_eq!(
        NetConfList::load_named(d, "single").unwrap().cni_version,
        "0.4.0"
    );
    assert_eq!(NetConfList::load_named(d, "cbr0").unwrap().plugins.len(), 2);
    assert!(NetConfList::load_named(d, "zzz")
        .unwrap_err()
        .msg
        .contains("no net configuration with name"));

    fs::write(d.join("01-notype.conf"), r#"{"name":"x"}"#).unwrap();
    let e = NetConfList::load_file(&d.join("01-notype.conf")).unwrap_err();
    assert!(e.msg.contains("missing 'type'"), "{e}");
}
