//! The two ways netkit programs hostPort rules, nf_tables netlink and the
//! `nft` binary, against the real kernel: they must leave the very same
//! rule set (`nft list ruleset`, text and JSON, handles aside), delete each
//! other's rules, and the netlink path must not exec anything once the
//! tables exist. Everything runs inside throwaway named namespaces (through
//! `Netns::run`); nothing touches the root netns.
//!
//! The path is chosen as an operator would: `NETBOOT_NFT_CLI=1` in the
//! environment forces `nft`. The environment is the process's, so every
//! call that reads it holds [`PATH_LOCK`] (this binary's tests run in
//! parallel threads).

mod common;

use std::net::IpAddr;
use std::sync::Mutex;

use common::hostport::{HostportLab, POD_IP};
use common::portmap::{ip, map, run};
use common::{need_root, root_ns, TestNs};
use netkit::firewall::{self, PortMapping, PortmapSpec, Proto};

/// How the rules reach the kernel: nf_tables netlink (the default) or the
/// `nft` binary (`NETBOOT_NFT_CLI=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NftPath {
    Netlink,
    Cli,
}

static PATH_LOCK: Mutex<()> = Mutex::new(());

/// `f` in `ns`, with `NETBOOT_NFT_CLI` set for `path`.
fn run_via<T: Send>(ns: &TestNs, path: NftPath, f: impl FnOnce() -> T + Send) -> T {
    let _held = PATH_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match path {
        NftPath::Cli => std::env::set_var("NETBOOT_NFT_CLI", "1"),
        NftPath::Netlink => std::env::remove_var("NETBOOT_NFT_CLI"),
    }
    let out = run(ns, f);
    std::env::remove_var("NETBOOT_NFT_CLI");
    out
}

struct Case {
    id: &'static str,
    ips: Vec<IpAddr>,
    maps: Vec<PortMapping>,
    snat: bool,
    masq_all: bool,
}

impl Case {
    fn spec(&self) -> PortmapSpec<'_> {
        PortmapSpec {
            network: "cbr0",
            container_id: self.id,
            ifname: "eth0",
            container_ips: &self.ips,
            mappings: &self.maps,
            snat: self.snat,
            masq_all: self.masq_all,
        }
    }
}

/// Every rule shape: tcp/udp/sctp, v4 and v6 hostIP, unspecified hostIP,
/// dual-stack / v4-only / v6-only pods, snat on/off, masqAll.
fn cases() -> Vec<Case> {
    let all_protos = vec![
        map(8080, 80, Proto::Tcp, None),
        map(5353, 53, Proto::Udp, Some("192.0.2.1")),
        map(9999, 99, Proto::Sctp, None),
        map(8443, 443, Proto::Tcp, Some("fd99::1")),
        map(7000, 7001, Proto::Udp, Some("0.0.0.0")),
        map(7100, 7101, Proto::Sctp, Some("::")),
        map(65535, 1, Proto::Tcp, Some("198.51.100.200")),
    ];
    vec![
        Case {
            id: "dual-snat",
            ips: vec![ip("10.99.0.2"), ip("fd99::2")],
            maps: all_protos.clone(),
            snat: true,
            masq_all: false,
        },
        Case {
            id: "dual-masqall",
            ips: vec![ip("10.99.0.3"), ip("fd99::3")],
            maps: all_protos.clone(),
            snat: true,
            masq_all: true,
        },
        Case {
            id: "v4-nosnat",
            ips: vec![ip("10.99.0.4")],
            maps: all_protos.clone(),
            snat: false,
            masq_all: false,
        },
        Case {
            id: "v6-only",
            ips: vec![ip("fd99::5"), ip("fd99::6")],
            maps: all_protos,
            snat: true,
            masq_all: false,
        },
        Case {
            id: "a.b_c:d@e-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ips: vec![ip("10.99.0.7")],
            maps: vec![map(1, 65535, Proto::Tcp, None)],
            snat: true,
            masq_all: false,
        },
    ]
}

/// Creates both tables with every chain (the state of any node after its
/// first port-mapped pod).
fn seed() -> Case {
    Case {
        id: "seed",
        ips: vec![ip("10.99.0.100"), ip("fd99::100")],
        maps: vec![map(1000, 100, Proto::Tcp, None)],
        snat: true,
        masq_all: false,
    }
}

/// `add_port_mappings` through `path` in `ns`, returning how many tool
/// processes it started.
fn add(ns: &TestNs, path: NftPath, c: &Case) -> u64 {
    run_via(ns, path, || {
        let before = firewall::tool_execs_on_this_thread();
        firewall::add_port_mappings(&c.spec()).unwrap();
        firewall::tool_execs_on_this_thread() - before
    })
}

fn del(ns: &TestNs, path: NftPath, id: &str) -> u64 {
    run_via(ns, path, || {
        let before = firewall::tool_execs_on_this_thread();
        firewall::del_port_mappings("cbr0", id).unwrap();
        firewall::tool_execs_on_this_thread() - before
    })
}

/// `nft -j list ruleset` without handles (pretty-printed), and `nft list
/// ruleset`.
fn ruleset(ns: &TestNs) -> (String, String) {
    let (text, v) = common::portmap::ruleset(ns);
    (serde_json::to_string_pretty(&v).unwrap(), text)
}

fn assert_same(a: &TestNs, b: &TestNs, when: &str) {
    let (ja, ta) = ruleset(a);
    let (jb, tb) = ruleset(b);
    assert_eq!(ta, tb, "nft list ruleset differs {when}");
    assert_eq!(ja, jb, "nft -j list ruleset differs {when}");
}

#[test]
fn netlink_and_cli_write_identical_rulesets() {
    if !need_root() {
        return;
    }
    let (nl, cli) = (TestNs::new(), TestNs::new());
    // First ADD on an empty node: netlink finds no table (ENOENT) and falls
    // back to the full script; the result is still the same.
    assert!(
        add(&nl, NftPath::Netlink, &seed()) > 0,
        "fallback execs nft"
    );
    add(&cli, NftPath::Cli, &seed());
    assert_same(&nl, &cli, "after the first ADD");
    for c in cases() {
        assert_eq!(add(&nl, NftPath::Netlink, &c), 0, "{}: no exec", c.id);
        assert!(add(&cli, NftPath::Cli, &c) > 0);
        assert_same(&nl, &cli, &format!("after ADD of {}", c.id));
        run(&nl, || firewall::check_port_mappings(&c.spec())).unwrap();
    }
    let owners = |ns: &TestNs, p| run_via(ns, p, firewall::list_port_mapping_owners).unwrap();
    let all = owners(&nl, NftPath::Netlink);
    assert_eq!(all.len(), cases().len() + 1);
    for (ns, p) in [
        (&nl, NftPath::Cli),
        (&cli, NftPath::Netlink),
        (&cli, NftPath::Cli),
    ] {
        assert_eq!(owners(ns, p), all);
    }
    // DEL both ways, crosswise: netlink deletes what either wrote.
    for (i, c) in cases().iter().enumerate() {
        let (p, q) = if i % 2 == 0 {
            (NftPath::Netlink, NftPath::Cli)
        } else {
            (NftPath::Cli, NftPath::Netlink)
        };
        let n = del(&nl, p, c.id);
        assert_eq!(n == 0, p == NftPath::Netlink, "{}: {n} execs", c.id);
        del(&cli, q, c.id);
        assert_same(&nl, &cli, &format!("after DEL of {}", c.id));
    }
    assert_eq!(owners(&nl, NftPath::Netlink), ["seed"]);
}

#[test]
fn netlink_del_removes_cli_rules_and_vice_versa() {
    let Some(node) = root_ns() else {
        return;
    };
    // Nothing at all: DEL is a no-op success without exec, owners empty.
    assert_eq!(del(&node, NftPath::Netlink, "nobody"), 0);
    assert!(
        run_via(&node, NftPath::Netlink, firewall::list_port_mapping_owners)
            .unwrap()
            .is_empty()
    );
    let (_, tables) = node.exec(&["nft", "list", "tables"]);
    assert!(tables.trim().is_empty(), "DEL created {tables}");

    add(&node, NftPath::Cli, &seed());
    let before = ruleset(&node);
    let cs = cases();
    let (x, y) = (&cs[0], &cs[1]);
    add(&node, NftPath::Cli, x);
    assert_eq!(add(&node, NftPath::Netlink, y), 0);
    assert_eq!(del(&node, NftPath::Netlink, x.id), 0);
    run(&node, || firewall::check_port_mappings(&y.spec())).unwrap();
    assert!(run(&node, || firewall::check_port_mappings(&x.spec())).is_err());
    del(&node, NftPath::Cli, y.id);
    assert_eq!(ruleset(&node), before, "back to the seed state");
    // Twice, and for an unknown container: still fine, still no exec.
    assert_eq!(del(&node, NftPath::Netlink, x.id), 0);
    assert_eq!(del(&node, NftPath::Netlink, "nobody"), 0);

    // A chain deleted behind our back: netlink ADD gets ENOENT and the
    // full script rebuilds it.
    node.exec(&[
        "nft",
        "delete",
        "chain",
        "ip",
        "cni_hostport",
        "masquerading",
    ]);
    assert!(add(&node, NftPath::Netlink, x) > 0);
    run(&node, || firewall::check_port_mappings(&x.spec())).unwrap();
    // Many rules: the dump spans several datagrams.
    let many: Vec<PortMapping> = (1..=300)
        .map(|p| map(20000 + p, p, Proto::Tcp, None))
        .collect();
    let big = Case {
        id: "big",
        ips: vec![ip("10.99.1.1"), ip("fd99::1:1")],
        maps: many,
        snat: true,
        masq_all: false,
    };
    assert_eq!(add(&node, NftPath::Netlink, &big), 0);
    run(&node, || firewall::check_port_mappings(&big.spec())).unwrap();
    assert_eq!(del(&node, NftPath::Netlink, "big"), 0);
    assert_eq!(del(&node, NftPath::Netlink, x.id), 0);
    assert_eq!(
        run_via(&node, NftPath::Netlink, firewall::list_port_mapping_owners).unwrap(),
        ["seed"]
    );
}

#[test]
fn netlink_hostport_reaches_the_pod() {
    if !need_root() {
        return;
    }
    let lab = HostportLab::new();
    let node = &lab.node;
    // Tables from an earlier pod, so the mapping below goes over netlink.
    add(node, NftPath::Cli, &seed());
    let c = Case {
        id: "cid-traffic",
        ips: vec![ip(POD_IP)],
        maps: vec![map(8080, 80, Proto::Tcp, None)],
        snat: true,
        masq_all: false,
    };
    lab.assert_unmapped();
    assert_eq!(add(node, NftPath::Netlink, &c), 0);
    lab.assert_mapped();
    assert_eq!(del(node, NftPath::Netlink, "cid-traffic"), 0);
    lab.assert_unmapped();
}
