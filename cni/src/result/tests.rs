use serde_json::json;

use super::*;

/// The example result from SPEC.md "ADD success" (1.1.0).
fn spec_v1() -> Value {
    json!({
        "cniVersion": "1.1.0",
        "interfaces": [
            {"name": "cni0", "mac": "00:11:22:33:44:55"},
            {"name": "veth3243", "mac": "55:44:33:22:11:11"},
            {"name": "eth0", "mac": "99:88:77:66:55:44", "sandbox": "/var/run/netns/blue"}
        ],
        "ips": [{"interface": 2, "address": "10.1.0.5/16", "gateway": "10.1.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.1.0.1"]}
    })
}

/// A 0.4.0 result as libcni's `types040` tests write it.
fn sample_v04() -> Value {
    json!({
        "cniVersion": "0.4.0",
        "interfaces": [{"name": "eth0", "mac": "00:11:22:33:44:55", "sandbox": "/proc/3553/ns/net"}],
        "ips": [
            {"version": "4", "interface": 0, "address": "1.2.3.4/24", "gateway": "1.2.3.1"},
            {"version": "6", "interface": 0, "address": "abcd:1234:ffff::cdde/64", "gateway": "abcd:1234:ffff::1"}
        ],
        "routes": [
            {"dst": "15.5.6.0/24", "gw": "15.5.6.8"},
            {"dst": "1111:dddd::/80", "gw": "1111:dddd::aaaa"}
        ],
        "dns": {
            "nameservers": ["1.2.3.4", "1::cafe"],
            "domain": "acompany.com",
            "search": ["somedomain.com", "otherdomain.net"],
            "options": ["foo", "bar"]
        }
    })
}

/// The same content in the 0.2.0 `ip4`/`ip6` shape (libcni `types020`).
fn sample_v02() -> Value {
    json!({
        "cniVersion": "0.2.0",
        "ip4": {"ip": "1.2.3.4/24", "gateway": "1.2.3.1", "routes": [{"dst": "15.5.6.0/24", "gw": "15.5.6.8"}]},
        "ip6": {
            "ip": "abcd:1234:ffff::cdde/64",
            "gateway": "abcd:1234:ffff::1",
            "routes": [{"dst": "1111:dddd::/80", "gw": "1111:dddd::aaaa"}]
        },
        "dns": sample_v04()["dns"].clone()
    })
}

fn parse(v: &Value) -> CniResult {
    CniResult::from_value(v, "").unwrap()
}

#[test]
fn v1_roundtrip_is_exact() {
    let r = parse(&spec_v1());
    assert_eq!(r.cni_version, "1.1.0");
    assert_eq!(r.ips[0].interface, Some(2));
    assert_eq!(
        r.ips[0].address.to_string(),
        "10.1.0.5/16",
        "host bits kept"
    );
    assert_eq!(
        r.interface_of(&r.ips[0]).map(|i| i.name.as_str()),
        Some("eth0")
    );
    assert_eq!(r.to_value("1.1.0").unwrap(), spec_v1());
    let mut v100 = spec_v1();
    v100["cniVersion"] = json!("1.0.0");
    assert_eq!(r.to_value("1.0.0").unwrap(), v100);
}

#[test]
fn v04_to_v1_drops_version_and_back_adds_it() {
    let r = parse(&sample_v04());
    let v1 = r.to_value("1.0.0").unwrap();
    let mut want = sample_v04();
    want["cniVersion"] = json!("1.0.0");
    for ip in want["ips"].as_array_mut().unwrap() {
        ip.as_object_mut().unwrap().remove("version");
    }
    assert_eq!(v1, want);
    // And back down, through the 1.x model again.
    let back = parse(&v1).to_value("0.4.0").unwrap();
    assert_eq!(back, sample_v04());
    // Key order on the wire matches Go's struct order: version first.
    let text = parse(&v1).to_json("0.4.0").unwrap();
    assert!(
        text.contains(
            r#"{"version":"4","interface":0,"address":"1.2.3.4/24","gateway":"1.2.3.1"}"#
        ),
        "{text}"
    );
}

#[test]
fn v03x_shape_matches_v04() {
    let r = parse(&sample_v04());
    for v in ["0.3.0", "0.3.1"] {
        let mut want = sample_v04();
        want["cniVersion"] = json!(v);
        assert_eq!(r.to_value(v).unwrap(), want);
        assert_eq!(parse(&want).cni_version, v);
    }
}

#[test]
fn v02_up_and_down() {
    let up = parse(&sample_v02());
    assert_eq!(up.cni_version, "0.2.0");
    assert!(up.interfaces.is_empty());
    assert_eq!(up.ips.len(), 2);
    assert_eq!(up.ips[0].interface, None);
    assert_eq!(up.routes.len(), 2);
    let mut want = sample_v04();
    want["cniVersion"] = json!("0.4.0");
    want.as_object_mut().unwrap().remove("interfaces");
    for ip in want["ips"].as_array_mut().unwrap() {
        ip.as_object_mut().unwrap().remove("interface");
    }
    assert_eq!(up.to_value("0.4.0").unwrap(), want);
    // 0.4.0 -> 0.2.0 is the libcni down-conversion, and 0.1.0 the same shape.
    assert_eq!(
        parse(&sample_v04()).to_value("0.2.0").unwrap(),
        sample_v02()
    );
    let mut v010 = sample_v02();
    v010["cniVersion"] = json!("0.1.0");
    assert_eq!(parse(&sample_v04()).to_value("0.1.0").unwrap(), v010);
}

#[test]
fn v02_down_keeps_first_of_each_family_and_drops_orphan_routes() {
    let r = parse(&json!({
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.0.0.2/24"}, {"address": "10.0.1.2/24"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1", "mtu": 1400}, {"dst": "::/0"}]
    }));
    assert_eq!(
        r.to_value("0.2.0").unwrap(),
        json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "routes": [{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]}})
    );
}

#[test]
fn v02_needs_an_address() {
    let r = parse(&json!({"cniVersion": "1.0.0", "interfaces": [{"name": "eth0"}]}));
    let e = r.to_value("0.2.0").unwrap_err();
    assert_eq!(e.code, codes::INCOMPATIBLE_VERSION);
    assert!(e.msg.contains("no IP addresses"), "{}", e.msg);
}

#[test]
fn v11_fields_survive_v1_and_drop_in_v04() {
    let v = json!({
        "cniVersion": "1.1.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1450, "sandbox": "/run/netns/x",
                        "socketPath": "/run/vhost.sock", "pciID": "0000:00:1f.0"}],
        "ips": [{"interface": 0, "address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
        "routes": [{"dst": "10.0.0.0/8", "gw": "10.244.1.1", "mtu": 1400, "advmss": 1360,
                    "priority": 100, "table": 10, "scope": 0}]
    });
    let r = parse(&v);
    assert_eq!(r.to_value("1.1.0").unwrap(), v);
    assert_eq!(
        r.to_value("0.4.0").unwrap(),
        json!({
            "cniVersion": "0.4.0",
            "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}],
            "ips": [{"version": "4", "interface": 0, "address": "10.244.1.5/24", "gateway": "10.244.1.1"}],
            "routes": [{"dst": "10.0.0.0/8", "gw": "10.244.1.1"}]
        })
    );
}

#[test]
fn version_defaults() {
    // No cniVersion: the caller's (config) version decides, like fixupResultVersion.
    let v = json!({"ips": [{"version": "4", "address": "10.0.0.2/24"}]});
    assert_eq!(
        CniResult::from_value(&v, "0.4.0").unwrap().cni_version,
        "0.4.0"
    );
    let v = json!({"cniVersion": "", "ips": [{"address": "10.0.0.2/24"}]});
    assert_eq!(
        CniResult::from_value(&v, "1.0.0").unwrap().cni_version,
        "1.0.0"
    );
    // Nothing at all: libcni's create treats it as 0.1.0 (ip4 shape).
    let v = json!({"ip4": {"ip": "10.0.0.2/24"}});
    let r = CniResult::from_value(&v, "").unwrap();
    assert_eq!((r.cni_version.as_str(), r.ips.len()), ("0.1.0", 1));
}

#[test]
fn empty_dns_and_gateway_handling() {
    let r = parse(
        &json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "gateway": ""}], "dns": {}}),
    );
    assert_eq!(r.ips[0].gateway, None);
    assert_eq!(
        r.to_value("1.0.0").unwrap(),
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]})
    );
    assert_eq!(
        CniResult::default().to_json("1.1.0").unwrap(),
        r#"{"cniVersion":"1.1.0"}"#
    );
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let cases: &[(&[u8], u32)] = &[
        (b"", codes::DECODE),
        (b"{", codes::DECODE),
        (b"[]", codes::DECODE),
        (br#"{"cniVersion": 1}"#, codes::DECODE),
        (br#"{"cniVersion": "9.9.9"}"#, codes::INCOMPATIBLE_VERSION),
        (br#"{"cniVersion": "1.0"}"#, codes::INCOMPATIBLE_VERSION),
        (
            br#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2"}]}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/33"}]}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24", "interface": -1}]}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "1.0.0", "routes": [{"dst": "x"}]}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "1.0.0", "routes": [{"dst": "0.0.0.0/0", "gw": "nope"}]}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "0.2.0", "ip4": {"ip": 5}}"#,
            codes::DECODE,
        ),
        (
            br#"{"cniVersion": "1.0.0", "interfaces": {}}"#,
            codes::DECODE,
        ),
    ];
    for (input, code) in cases {
        let e = CniResult::parse(input, "1.0.0").unwrap_err();
        assert_eq!(e.code, *code, "{}: {e}", String::from_utf8_lossy(input));
    }
    assert_eq!(
        CniResult::default().to_value("2.0.0").unwrap_err().code,
        codes::INCOMPATIBLE_VERSION
    );
    assert_eq!(
        CniResult::default().to_value("").unwrap_err().code,
        codes::INCOMPATIBLE_VERSION
    );
}

#[test]
fn parse_error_has_position() {
    let e = CniResult::parse(b"{\n \"cniVersion\": \"1.0.0\",\n \"ips\": [}", "").unwrap_err();
    assert!(e.msg.contains("line 3"), "{}", e.msg);
}
