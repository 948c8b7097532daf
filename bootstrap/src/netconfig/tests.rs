use super::*;

fn cfg(text: &str) -> NetConfig {
    NetConfig::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn problems(text: &str) -> Vec<String> {
    cfg(text).check().expect_err(text)
}

#[test]
fn seed_config_with_odd_case_loads() {
    let c = cfg(
        r#"{"NetWork":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"vxlan"}}"#,
    );
    assert_eq!(c.network, Some("10.2.0.0/16".parse().unwrap()));
    assert_eq!(
        c.to_json(),
        r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.20.0","Backend":{"Type":"vxlan"}}"#
    );
    let e = c.check().unwrap();
    assert_eq!(e.v4.as_ref().unwrap().subnet_len, 24);
    assert_eq!((e.vni, e.port), (Some(1), Some(8472)));
}

#[test]
fn keys_fold_and_last_one_wins() {
    let c = cfg(
        r#"{"network":"10.1.0.0/16","SUBNETLEN":26,"backend":{"type":"host-gw"},"NETWORK":"10.3.0.0/16"}"#,
    );
    assert_eq!(c.network, Some("10.3.0.0/16".parse().unwrap()));
    assert_eq!(c.subnet_len, Some(26));
    assert_eq!(c.backend.unwrap().kind, "host-gw");
}

#[test]
fn defaults_like_flannel() {
    let e = cfg(r#"{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}"#)
        .check()
        .unwrap();
    let v4 = e.v4.unwrap();
    assert_eq!(v4.subnet_len, 24);
    assert_eq!(v4.subnet_min.to_string(), "10.244.1.0");
    assert_eq!(v4.subnet_max.to_string(), "10.244.255.0");
    let e = cfg(r#"{"Network":"10.0.0.0/25","Backend":{"Type":"vxlan"}}"#)
        .check()
        .unwrap();
    let v4 = e.v4.unwrap();
    assert_eq!(
        (v4.subnet_len, v4.subnet_max.to_string()),
        (27, "10.0.0.96".into())
    );
    let e = cfg(r#"{"EnableIPv6":true,"Network":"10.0.0.0/8","IPv6Network":"fd00::/48","Backend":{"Type":"vxlan"}}"#)
        .check()
        .unwrap();
    let v6 = e.v6.unwrap();
    assert_eq!(v6.subnet_len, 64);
    assert_eq!(v6.subnet_min.to_string(), "fd00:0:0:1::");
    assert_eq!(v6.subnet_max.to_string(), "fd00:0:0:ffff::");
}

#[test]
fn host_bits_are_dropped_like_go_parse_cidr() {
    assert_eq!(
        cfg(r#"{"Network":"10.2.3.4/16"}"#)
            .network
            .unwrap()
            .to_string(),
        "10.2.0.0/16"
    );
}

#[test]
fn each_problem_named() {
    let table: &[(&str, &str)] = &[
        (r#"{"Backend":{"Type":"vxlan"}}"#, "Network is missing"),
        (
            r#"{"Network":"10.0.0.0/29","Backend":{"Type":"vxlan"}}"#,
            "10.0.0.0/29 is too small",
        ),
        (
            r#"{"Network":"10.0.0.0/16","SubnetLen":31,"Backend":{"Type":"vxlan"}}"#,
            "SubnetLen 31 is too long",
        ),
        (
            r#"{"Network":"10.0.0.0/16","SubnetLen":17,"Backend":{"Type":"vxlan"}}"#,
            "SubnetLen 17 does not fit Network 10.0.0.0/16",
        ),
        (
            r#"{"Network":"10.0.0.0/16","SubnetMin":"10.1.0.0","Backend":{"Type":"vxlan"}}"#,
            "SubnetMin 10.1.0.0 is outside",
        ),
        (
            r#"{"Network":"10.0.0.0/16","SubnetMax":"10.0.3.7","Backend":{"Type":"vxlan"}}"#,
            "SubnetMax 10.0.3.7 is not on a subnet boundary",
        ),
        (
            r#"{"Network":"10.0.0.0/16","SubnetMin":"10.0.9.0","SubnetMax":"10.0.3.0","Backend":{"Type":"vxlan"}}"#,
            "SubnetMin 10.0.9.0 is above SubnetMax 10.0.3.0",
        ),
        (r#"{"Network":"10.0.0.0/16"}"#, "Backend is missing"),
        (
            r#"{"Network":"10.0.0.0/16","Backend":{"Type":"udp"}}"#,
            "Backend type \"udp\" is not supported",
        ),
        (
            r#"{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","VNI":16777216}}"#,
            "VNI 16777216 is out of range",
        ),
        (
            r#"{"Network":"10.0.0.0/16","Backend":{"Type":"vxlan","Port":70000}}"#,
            "Port 70000 is out of range",
        ),
        (
            r#"{"EnableIPv6":true,"Network":"10.0.0.0/16","Backend":{"Type":"vxlan"}}"#,
            "IPv6Network is missing",
        ),
        (
            r#"{"EnableIPv4":false,"Backend":{"Type":"vxlan"}}"#,
            "both false",
        ),
    ];
    for (text, want) in table {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert!(p[0].contains(want), "{text}: {p:?} lacks {want:?}");
    }
}

#[test]
fn type_errors_collected() {
    let e = NetConfig::parse(br#"{"Network":"nope","SubnetLen":"24","EnableIPv6":1,"Backend":[]}"#)
        .unwrap_err();
    assert_eq!(e.0.len(), 4, "{e}");
    assert!(
        e.0.iter()
            .any(|m| m.contains("Network must be an IPv4 CIDR, found \"nope\"")),
        "{e}"
    );
}

#[test]
fn semantic_equality_uses_defaults() {
    let a = cfg(r#"{"Network":"10.2.0.0/16","Backend":{"Type":"vxlan"}}"#);
    let b = cfg(
        r#"{"network":"10.2.0.0/16","SubnetLen":24,"SubnetMin":"10.2.1.0","Backend":{"Type":"vxlan","VNI":1,"Port":8472}}"#,
    );
    assert!(same_config(&a, &b));
    let c = cfg(r#"{"Network":"10.2.0.0/16","Backend":{"Type":"vxlan","VNI":2}}"#);
    assert!(!same_config(&a, &c));
    assert_eq!(diff(&a, &c), vec!["  Backend.VNI: 1 -> 2".to_string()]);
}
