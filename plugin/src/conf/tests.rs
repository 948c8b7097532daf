use super::*;
use crate::ip_ranges::IpRange;
use cni::error::codes;
use serde_json::json;
use std::path::Path;

fn conf(json: &str) -> Result<PluginConf, CniError> {
    PluginConf::from_netconf(NetConf::parse_as(json.as_bytes(), &SCHEMA).unwrap())
}

/// A plain netboot-cni config whose runtimeConfig has `key` = `value`
/// (JSON text).
fn with_runtime(key: &str, value: &str) -> PluginConf {
    conf(&format!(
        r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","runtimeConfig":{{"{key}":{value}}}}}"#
    ))
    .unwrap()
}

#[test]
fn defaults_match_flannel() {
    let c = conf(r#"{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni"}"#).unwrap();
    assert_eq!(c.mode, Mode::Auto);
    assert_eq!(c.subnet_file, Path::new(DEFAULT_SUBNET_FILE));
    assert_eq!(c.data_dir, Path::new(DEFAULT_DATA_DIR));
    assert!(c.delegate.is_empty());
}

#[test]
fn rejects_bad_values_naming_the_field() {
    for (json, field) in [
        (r#""mode":"turbo""#, "mode"),
        (r#""mode":3"#, "mode"),
        (r#""subnetFile":"relative/subnet.env""#, "subnetFile"),
        (r#""dataDir":"/var/lib/../../etc""#, "dataDir"),
        (r#""delegate":{"name":"x"}"#, "delegate.name"),
        (r#""delegate":{"ipam":{}}"#, "delegate.ipam"),
        (r#""delegate":{"type":7}"#, "delegate.type"),
        (r#""delegate":[]"#, "delegate"),
        (r#""logLevel":"loud""#, "logLevel"),
        (r#""delegateTimeout":-1"#, "delegateTimeout"),
        (r#""ipam":"host-local""#, "ipam"),
        // Security review (docs/security.md F1/F2): the IPAM store base is a
        // path netboot writes to, and no path may carry a control char.
        (r#""ipam":{"dataDir":"../../tmp"}"#, "ipam.dataDir"),
        (r#""ipam":{"dataDir":"var/lib/cni"}"#, "ipam.dataDir"),
        (
            r#""ipam":{"dataDir":"/var/lib/cni/../../etc"}"#,
            "ipam.dataDir",
        ),
        (r#""ipam":{"dataDir":7}"#, "ipam.dataDir"),
        (r#""dataDir":"/var/lib/cni/flannel\u0000x""#, "dataDir"),
        (r#""subnetFile":"/run/flannel/subnet.env\nX""#, "subnetFile"),
        (r#""logFile":"/var/log/netboot\r.log""#, "logFile"),
    ] {
        let full = format!(r#"{{"cniVersion":"1.0.0","name":"cbr0","type":"netboot-cni",{json}}}"#);
        let err = conf(&full).unwrap_err();
        assert_eq!(err.code, codes::INVALID_CONFIG, "{json}");
        assert!(err.msg.contains(field), "{json}: {}", err.msg);
    }
}

#[test]
fn refuses_port_mappings_portmap_cannot_parse() {
    let with = |rc: &str, pm: &str| {
        conf(&format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","portmap":{pm},"runtimeConfig":{{"portMappings":[{rc}]}}}}"#
        ))
        .unwrap()
        .check_port_mappings()
    };
    assert!(with(
        r#"{"hostPort":8080,"containerPort":80,"protocol":"tcp"}"#,
        "{}"
    )
    .is_ok());
    for ip in ["", "192.0.2.1", "0.0.0.0", "2001:db8::1", "::"] {
        let m = format!(r#"{{"hostPort":8080,"containerPort":80,"hostIP":"{ip}"}}"#);
        assert!(with(&m, "{}").is_ok(), "{m}");
    }
    assert!(
        with("", r#"{"markMasqBit":99}"#).is_ok(),
        "no mappings, no portmap"
    );
    for (rc, pm, field) in [
        (r#"{"hostPort":0,"containerPort":80}"#, "{}", "hostPort"),
        (
            r#"{"hostPort":80,"containerPort":70000}"#,
            "{}",
            "containerPort",
        ),
        (r#"{"hostPort":"80","containerPort":80}"#, "{}", "hostPort"),
        (r#"{"containerPort":80}"#, "{}", "hostPort"),
        (
            r#"{"hostPort":80,"containerPort":80,"hostIP":"10.0.0.300"}"#,
            "{}",
            "hostIP",
        ),
        (
            r#"{"hostPort":80,"containerPort":80,"hostIP":"eth0"}"#,
            "{}",
            "hostIP",
        ),
        (
            r#"{"hostPort":80,"containerPort":80,"protocol":6}"#,
            "{}",
            "protocol",
        ),
        (
            r#"{"hostPort":80,"containerPort":80}"#,
            r#"{"markMasqBit":32}"#,
            "markMasqBit",
        ),
        (
            r#"{"hostPort":80,"containerPort":80}"#,
            r#"{"markMasqBit":3,"externalSetMarkChain":"X"}"#,
            "markMasqBit",
        ),
    ] {
        let e = with(rc, pm).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG, "{rc}");
        assert!(e.msg.contains(field), "{rc}: {}", e.msg);
    }
}

#[test]
fn reads_bandwidth_in_go_and_lower_case_spelling() {
    let with = |bw: &str| with_runtime("bandwidth", bw).bandwidth();
    let go =
        with(r#"{"IngressRate":8000000,"IngressBurst":4294967295,"EgressRate":0,"EgressBurst":0}"#)
            .unwrap()
            .unwrap();
    let lower = with(r#"{"ingressRate":8000000,"ingressBurst":4294967295}"#)
        .unwrap()
        .unwrap();
    assert_eq!(go, lower);
    assert_eq!(go.ingress.map(|s| s.rate), Some(8_000_000));
    assert_eq!(go.egress, None);
    assert_eq!(
        with(r#"{"IngressRate":0,"IngressBurst":0,"EgressRate":0,"EgressBurst":0}"#).unwrap(),
        None
    );
    let e = with(r#"{"EgressRate":1000}"#).unwrap_err();
    assert_eq!(e.code, codes::INVALID_CONFIG);
    assert!(
        e.msg.contains("runtimeConfig.bandwidth.egressBurst"),
        "{}",
        e.msg
    );
    assert!(with("7")
        .unwrap_err()
        .msg
        .contains("runtimeConfig.bandwidth"));
    let none = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni"}"#).unwrap();
    assert_eq!(none.bandwidth().unwrap(), None);
}

#[test]
fn reads_own_keys_in_any_spelling() {
    let c = conf(
        r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","Mode":"bridge","SUBNETFILE":"/a",
            "subnetfile":"/b","DataDir":"/d","Portmap":{"MarkMasqBit":40},"Delegate":{"HairpinMode":true},
            "LogLevel":"debug","delegatetimeout":5,"IPAM":{"DataDir":"/s"}}"#,
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Bridge);
    assert_eq!(c.subnet_file, Path::new("/b"), "last wins");
    assert_eq!(c.data_dir, Path::new("/d"));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.delegate_timeout, Duration::from_secs(5));
    // flannel's `delegate` and `ipam` are Go maps: keys stay as written.
    assert_eq!(c.delegate["HairpinMode"], true);
    assert_eq!(c.ipam["DataDir"], "/s");
    assert_eq!(c.portmap["markMasqBit"], 40);
    // ...and the portmap option is checked under its canonical name.
    let e = conf(
        r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","Portmap":{"MarkMasqBit":40},
            "runtimeConfig":{"portMappings":[{"HostPort":80,"ContainerPort":80}]}}"#,
    )
    .unwrap()
    .check_port_mappings()
    .unwrap_err();
    assert!(e.msg.contains("portmap.markMasqBit"), "{}", e.msg);
    // host-local folds the ipam map: a relative "DataDir" is refused too.
    let e = conf(r#"{"cniVersion":"1.0.0","name":"n","type":"x","ipam":{"DATADIR":"rel"}}"#);
    assert!(e.unwrap_err().msg.contains("ipam.dataDir"));
}

#[test]
fn every_capability_reads_canonically_through_the_plugin_schema() {
    let want = serde_json::json!({
        "portMappings": [{"hostPort":80,"containerPort":8080,"protocol":"tcp","hostIP":""}],
        "bandwidth": {"ingressRate":1,"ingressBurst":2,"egressRate":3,"egressBurst":4},
        "ipRanges": [[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.2","rangeEnd":"10.1.0.9","gateway":"10.1.0.1"}]],
        "dns": {"servers":["10.96.0.10"],"searches":["svc"],"options":["ndots:5"]},
    });
    // lower camel (libcni, podman), Go field names (go-cni), mixed.
    let spellings: [fn(&str) -> String; 3] = [
        |k| k.to_string(),
        |k| k[..1].to_uppercase() + &k[1..],
        |k| {
            k.chars()
                .map(|c| {
                    if c.is_ascii_lowercase() {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect()
        },
    ];
    for spell in spellings {
        let mut text = want.to_string();
        for key in [
            "hostPort",
            "containerPort",
            "protocol",
            "hostIP",
            "ingressRate",
            "ingressBurst",
            "egressRate",
            "egressBurst",
            "subnet",
            "rangeStart",
            "rangeEnd",
            "gateway",
            "servers",
            "searches",
            "options",
        ] {
            text = text.replace(&format!("\"{key}\""), &format!("\"{}\"", spell(key)));
        }
        let c = conf(&format!(
            r#"{{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","runtimeConfig":{text}}}"#
        ))
        .unwrap();
        assert_eq!(c.net.runtime_config.as_ref(), Some(&want), "{text}");
        assert!(c.check_port_mappings().is_ok(), "{text}");
    }
}

#[test]
fn go_spelled_port_mappings_are_checked_by_canonical_path() {
    let check = |m: &str| with_runtime("portMappings", &format!("[{m}]")).check_port_mappings();
    for ok in [
        r#"{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":""}"#,
        r#"{"hOSTpORT":18080,"cONTAINERpORT":80,"pROTOCOL":"udp","hOSTip":"10.0.0.1"}"#,
        r#"{"hostPort":0,"HostPort":18080,"containerPort":80,"Unknown":"x"}"#,
    ] {
        assert!(check(ok).is_ok(), "{ok}");
    }
    for (bad, field, shown) in [
        (
            r#"{"HostPort":"x","ContainerPort":80}"#,
            "hostPort",
            r#""x""#,
        ),
        (
            r#"{"hostPort":80,"HostPort":0,"ContainerPort":80}"#,
            "hostPort",
            "0",
        ),
        (
            r#"{"HostPort":80,"CONTAINERPORT":70000}"#,
            "containerPort",
            "70000",
        ),
        (
            r#"{"HostPort":80,"ContainerPort":80,"HostIP":"eth0"}"#,
            "hostIP",
            "eth0",
        ),
    ] {
        let e = check(bad).unwrap_err();
        assert_eq!(e.code, codes::INVALID_CONFIG, "{bad}");
        let want = format!("runtimeConfig.portMappings[0].{field}: ");
        assert!(
            e.msg.contains(&want) && e.msg.contains(shown),
            "{bad}: {}",
            e.msg
        );
    }
    let e = conf(
        r#"{"cniVersion":"1.0.0","name":"n","type":"x","runtimeConfig":{"PortMappings":"x"}}"#,
    )
    .unwrap()
    .check_port_mappings()
    .unwrap_err();
    assert!(
        e.msg.contains("runtimeConfig.portMappings: must be a list"),
        "{}",
        e.msg
    );
}

#[test]
fn reads_port_mappings() {
    let c = conf(
        r#"{"cniVersion":"1.0.0","name":"n","type":"netboot-cni","mode":"bridge",
            "runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}}"#,
    )
    .unwrap();
    assert_eq!(c.mode, Mode::Bridge);
    assert_eq!(c.port_mappings().len(), 1);
}

/// Through the plugin's config reader, which canonicalises the keys.
fn via_conf(rc: Value) -> Result<Vec<Vec<IpRange>>, CniError> {
    let text = json!({"cniVersion":"1.0.0","name":"n","type":"netboot-cni",
                      "runtimeConfig":{"ipRanges": rc}})
    .to_string();
    let net = cni::NetConf::parse_as(text.as_bytes(), &SCHEMA)?;
    PluginConf::from_netconf(net)?.ip_ranges()
}

#[test]
fn reads_go_and_camel_keys_alike() {
    let camel = json!([[{"subnet":"10.2.1.0/24","rangeStart":"10.2.1.100","rangeEnd":"10.2.1.110","gateway":"10.2.1.1"}]]);
    let go = json!([[{"Subnet":"10.2.1.0/24","RangeStart":"10.2.1.100","RangeEnd":"10.2.1.110","Gateway":"10.2.1.1"}]]);
    let mixed = json!([[{"sUBNET":"10.2.1.0/24","rANGEsTART":"10.2.1.100","rANGEeND":"10.2.1.110","gATEWAY":"10.2.1.1"}]]);
    let a = crate::ip_ranges::parse(&camel).unwrap();
    assert_eq!(a, via_conf(go).unwrap());
    assert_eq!(a, via_conf(mixed).unwrap());
    let e = via_conf(json!([[{"Subnet":"10.2.1.0/24","RangeStart":"x"}]])).unwrap_err();
    assert!(
        e.msg.contains("runtimeConfig.ipRanges[0][0].rangeStart: "),
        "{}",
        e.msg
    );
    assert_eq!(a[0][0].range_start, Some("10.2.1.100".parse().unwrap()));
    assert_eq!(a[0][0].to_json(), camel[0][0]);
    // go-cni leaves unset fields as "".
    let sparse = json!([[{"Subnet":"fd00::/64","RangeStart":"","RangeEnd":"","Gateway":""}]]);
    assert_eq!(
        via_conf(sparse).unwrap()[0][0].to_json(),
        json!({"subnet":"fd00::/64"})
    );
}
