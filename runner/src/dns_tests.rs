use std::path::PathBuf;

use super::*;
use crate::spec::DnsOption;

fn node(text: &str) -> NodeResolv {
    NodeResolv {
        source: Some(PathBuf::from("/etc/resolv.conf")),
        text: text.into(),
    }
}

fn cni_dns() -> Dns {
    Dns {
        nameservers: vec!["10.96.0.10".into()],
        domain: "ns.svc".into(),
        search: vec!["svc".into()],
        options: vec!["ndots:5".into()],
    }
}

/// resolv.conf text and warnings for a pod (not hostNetwork).
fn conf(
    cni: &Dns,
    n: &NodeResolv,
    policy: Option<DnsPolicy>,
    c: Option<&DnsConfig>,
) -> (String, Vec<String>) {
    let (r, w) = resolver(&DnsInput {
        cni,
        node: n,
        policy,
        config: c,
        host_network: false,
    });
    (render(&r), w)
}

fn opt(name: &str, value: Option<&str>) -> DnsOption {
    DnsOption {
        name: name.into(),
        value: value.map(String::from),
    }
}

#[test]
fn cluster_first_takes_the_cni_dns_else_the_nodes() {
    let n = node("# x\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch lan\n");
    for policy in [
        None,
        Some(DnsPolicy::ClusterFirst),
        Some(DnsPolicy::ClusterFirstWithHostNet),
    ] {
        assert_eq!(
            conf(&cni_dns(), &n, policy, None),
            (
                "nameserver 10.96.0.10\nsearch ns.svc svc\noptions ndots:5\n".into(),
                vec![]
            ),
            "{policy:?}"
        );
        assert_eq!(
            conf(&Dns::default(), &n, policy, None).0,
            "nameserver 192.0.2.1\nsearch lan\n"
        );
    }
    // Search/options without nameservers: the node's file is used.
    let partial = Dns {
        search: vec!["svc".into()],
        ..Dns::default()
    };
    assert_eq!(
        conf(&partial, &node("nameserver 192.0.2.1\n"), None, None).0,
        "nameserver 192.0.2.1\n"
    );
}

#[test]
fn default_ignores_the_cni_dns_and_none_starts_empty() {
    let n = node("nameserver 192.0.2.1\nsearch lan\noptions ndots:2\n");
    let d = Some(DnsPolicy::Default);
    assert_eq!(
        conf(&cni_dns(), &n, d, None).0,
        "nameserver 192.0.2.1\nsearch lan\noptions ndots:2\n"
    );
    let c = DnsConfig {
        nameservers: vec!["192.0.2.53".parse().unwrap()],
        searches: vec!["a.example".into()],
        options: vec![opt("ndots", Some("1"))],
    };
    assert_eq!(
        conf(&cni_dns(), &n, Some(DnsPolicy::None), Some(&c)).0,
        "nameserver 192.0.2.53\nsearch a.example\noptions ndots:1\n"
    );
}

#[test]
fn dns_config_is_merged_as_kubelet_merges_it() {
    let n = node("nameserver 192.0.2.1\nsearch lan b.example\noptions ndots:2 edns0 timeout:1\n");
    let c = DnsConfig {
        nameservers: vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()],
        searches: vec!["b.example".into(), "c.example".into()],
        options: vec![
            opt("ndots", Some("5")),
            opt("timeout", None),
            opt("rotate", None),
        ],
    };
    let (text, w) = conf(&Dns::default(), &n, Some(DnsPolicy::Default), Some(&c));
    assert_eq!(
        text,
        "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan b.example c.example\n\
         options ndots:5 edns0 timeout rotate\n"
    );
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn limits_cut_and_warn() {
    let n = node("nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch a.\n");
    let c = DnsConfig {
        nameservers: vec!["192.0.2.3".parse().unwrap(), "192.0.2.4".parse().unwrap()],
        searches: (0..40).map(|i| format!("d{i}")).collect(),
        options: vec![],
    };
    let (r, w) = resolver(&DnsInput {
        cni: &Dns::default(),
        node: &n,
        policy: None,
        config: Some(&c),
        host_network: false,
    });
    assert_eq!(r.nameservers, ["192.0.2.1", "192.0.2.2", "192.0.2.3"]);
    assert_eq!(r.searches.len(), 32);
    assert_eq!(
        (r.searches[0].as_str(), r.searches[31].as_str()),
        ("a", "d30")
    );
    assert_eq!(w.len(), 2, "{w:?}");
    // 2048 characters in all; a name over 253 is dropped.
    let long = |c: char| c.to_string().repeat(250);
    let n = node(&format!(
        "search {} {} {} {} {} {} {} {} {} {}\n",
        "x".repeat(254),
        long('a'),
        long('b'),
        long('c'),
        long('d'),
        long('e'),
        long('f'),
        long('g'),
        long('h'),
        long('i')
    ));
    let (r, w) = resolver(&DnsInput {
        cni: &Dns::default(),
        node: &n,
        policy: Some(DnsPolicy::Default),
        config: None,
        host_network: false,
    });
    assert_eq!(r.searches.len(), 8, "{:?}", r.searches);
    assert!(r.searches.join(" ").len() <= 2048);
    assert_eq!(w.len(), 1, "{w:?}");
}

#[test]
fn a_stub_only_node_file_gives_no_nameserver_and_a_warning() {
    for stub in ["127.0.0.53", "127.0.0.1", "::1"] {
        let n = node(&format!(
            "nameserver {stub}\noptions edns0 trust-ad\nsearch lan\n"
        ));
        let (text, warnings) = conf(&Dns::default(), &n, None, None);
        assert_eq!(text, "search lan\noptions edns0 trust-ad\n");
        let w = &warnings[0];
        assert!(w.contains(stub) && w.contains("/etc/resolv.conf"), "{w}");
        assert!(w.contains(SYSTEMD_RESOLVED_UPSTREAM), "{w}");
        assert!(w.contains("network config"), "{w}");
        // With dnsPolicy Default the CNI DNS is not used: not suggested.
        let (_, w) = conf(&cni_dns(), &n, Some(DnsPolicy::Default), None);
        assert!(!w[0].contains("network config"), "{w:?}");
        // A hostNetwork pod shares the node's netns: the stub works there.
        let (r, w) = resolver(&DnsInput {
            cni: &Dns::default(),
            node: &n,
            policy: None,
            config: None,
            host_network: true,
        });
        assert_eq!(r.nameservers, [stub]);
        assert!(w.is_empty());
    }
    // Not loopback: 127-looking names, 10.x.
    let (_, w) = conf(
        &Dns::default(),
        &node("nameserver 10.127.0.1\n"),
        None,
        None,
    );
    assert!(w.is_empty());
}

#[test]
fn host_network_cluster_first_is_default_as_in_kubelet() {
    assert_eq!(Base::of(None, true), Base::Node);
    assert_eq!(Base::of(Some(DnsPolicy::ClusterFirst), true), Base::Node);
    assert_eq!(
        Base::of(Some(DnsPolicy::ClusterFirstWithHostNet), true),
        Base::Cluster
    );
    assert_eq!(Base::of(Some(DnsPolicy::None), true), Base::Empty);
    assert_eq!(Base::of(None, false), Base::Cluster);
}

#[test]
fn the_node_file_is_read_as_kubelet_reads_it() {
    let r = parse("# c\nnameserver 1.1.1.1\nsearch a b.\nsearch c\noptions x\noptions y z\nnameserver 2.2.2.2\ndomain d\n");
    assert_eq!(r.nameservers, ["1.1.1.1", "2.2.2.2"]);
    assert_eq!(r.searches, ["c"]);
    assert_eq!(r.options, ["y", "z"]);
}
