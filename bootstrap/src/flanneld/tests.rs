//! flanneld's command line and variables → `netboot agent`'s options.

use std::collections::HashMap;
use std::ffi::OsString;
use std::time::Duration;

use clap::{Command, CommandFactory, FromArgMatches};

use super::flags::{self, Does, FLAGS};
use super::given::arg_by_long;
use super::{prepare, settle};
use crate::agent::AgentArgs;
use crate::cli::{Cli, Cmd};

/// The CLI blind to this process's own environment: clap reads `NETBOOT_*`
/// when the command is built, and a test gives its variables through the
/// getter instead. An option whose variable this process has loses its
/// variable (the rest keep their names, which `prepare` looks at).
fn command() -> Command {
    let mut cmd = Cli::command();
    let set: Vec<(String, Vec<String>)> = cmd
        .get_subcommands()
        .map(|sc| {
            let ids = sc
                .get_arguments()
                .filter(|a| a.get_env().is_some_and(|v| std::env::var_os(v).is_some()))
                .map(|a| a.get_id().to_string());
            (sc.get_name().to_string(), ids.collect())
        })
        .collect();
    for (sc, ids) in set {
        cmd = cmd.mut_subcommand(sc, |mut s| {
            for id in ids {
                s = s.mut_arg(id, |a| a.env(None::<&str>));
            }
            s
        });
    }
    cmd
}

fn argv(args: &[&str]) -> Vec<OsString> {
    ["netboot", "agent"]
        .iter()
        .chain(args)
        .map(OsString::from)
        .collect()
}

/// `prepare` with these variables: the argv for clap, and the notes.
fn prep(args: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    let p = prepare(argv(args), &command(), &|k| vars.get(k).cloned())?;
    let out = p.argv[2..]
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Ok((out, p.notes))
}

/// The agent's options from this command line and these variables.
fn parse(args: &[&str], vars: &[(&str, &str)]) -> anyhow::Result<AgentArgs> {
    let (out, _) = prep(args, vars)?;
    let mut cmd = command();
    let m =
        cmd.try_get_matches_from_mut(argv(&out.iter().map(String::as_str).collect::<Vec<_>>()))?;
    let Cmd::Agent(mut a) = Cli::from_arg_matches(&m)?.cmd else {
        panic!("not the agent")
    };
    settle(&mut a, m.subcommand_matches("agent").unwrap())?;
    Ok(a)
}

fn err(args: &[&str], vars: &[(&str, &str)]) -> String {
    match prep(args, vars) {
        Ok(p) => panic!("{args:?} {vars:?} accepted: {p:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_flanneld_command_line_is_rewritten_flag_by_flag() {
    let (out, notes) = prep(
        &[
            "-etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379",
            "-etcd-prefix",
            "/atomic.io/network",
            "--iface",
            "eth1",
            "-iface=10.0.0.9",
            "-ip-masq",
            "-public-ip=",
            "-v=2",
            "-iface-regex",
            "-dash",
            "--resync-interval",
            "-iface",
            "--",
            "-ip-masq",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        out,
        [
            "--etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379",
            "--etcd-prefix=/atomic.io/network",
            "--iface=eth1",
            "--iface=10.0.0.9",
            "--ip-masq",
            // -public-ip= is flanneld's "not set": dropped.
            "--v=2",
            // Go takes the next argument as the value, dash or not.
            "--iface-regex=-dash",
            // A netboot option's value is left alone.
            "--resync-interval",
            "-iface",
            "--",
            "-ip-masq",
        ]
    );
    assert!(notes.is_empty(), "{notes:?}");
}

#[test]
fn flanneld_flags_mean_what_they_mean_to_flanneld() {
    let a = parse(
        &[
            "-etcd-endpoints=http://10.0.0.1:2379,http://10.0.0.2:2379",
            "-etcd-prefix=/atomic.io/network",
            "-etcd-cafile=/ca.pem",
            "-etcd-certfile=/c.pem",
            "-etcd-keyfile=/k.pem",
            "-etcd-username=flannel",
            "-etcd-password=s3cret",
            "-iface=eth1",
            "-iface",
            "eth0",
            "-iface-regex=^10\\.",
            "-iface-can-reach=10.0.0.1",
            "-public-ip=10.0.0.9",
            "-public-ipv6=fd00::9",
            "-subnet-file=/run/x/subnet.env",
            "-ip-masq",
            "-subnet-lease-renew-margin=30",
            "-healthz-ip=127.0.0.1",
            "-healthz-port=8471",
            "-v",
            "3",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        a.etcd.endpoints,
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(a.etcd.prefix, "/atomic.io/network");
    assert_eq!(a.etcd.cacert.unwrap().to_str(), Some("/ca.pem"));
    assert_eq!(a.etcd.cert.unwrap().to_str(), Some("/c.pem"));
    assert_eq!(a.etcd.key.unwrap().to_str(), Some("/k.pem"));
    assert_eq!(a.etcd.user.as_deref(), Some("flannel"));
    assert_eq!(a.etcd.password.as_deref(), Some("s3cret"));
    assert_eq!(a.ext.iface, ["eth1", "eth0"]);
    assert_eq!(a.ext.iface_regex, ["^10\\."]);
    assert_eq!(a.ext.iface_can_reach, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(a.ext.public_ip, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(a.ext.public_ipv6, Some("fd00::9".parse().unwrap()));
    assert_eq!(a.subnet_file.to_str(), Some("/run/x/subnet.env"));
    assert!(a.ip_masq);
    assert_eq!(a.renew_margin, Duration::from_secs(30 * 60));
    assert_eq!(a.healthz_ip, "127.0.0.1");
    assert_eq!(a.healthz_port, 8471);
    assert_eq!(a.verbosity, 3);
}

#[test]
fn defaults_are_flanneld_s() {
    let a = parse(&[], &[]).unwrap();
    assert_eq!(
        a.etcd.endpoints,
        ["http://127.0.0.1:4001", "http://127.0.0.1:2379"]
    );
    assert_eq!(a.etcd.prefix, "/coreos.com/network");
    assert_eq!(a.subnet_file.to_str(), Some("/run/flannel/subnet.env"));
    assert!(!a.ip_masq);
    assert_eq!(a.renew_margin, Duration::from_secs(3600));
    assert_eq!((a.healthz_ip.as_str(), a.healthz_port), ("0.0.0.0", 0));
    assert_eq!(a.verbosity, 0);
}

#[test]
fn go_spellings_and_the_last_of_a_repeated_flag_wins() {
    let a = parse(
        &[
            "--etcd-endpoints",
            "http://a:2379",
            "-etcd-prefix=/first",
            "-ip-masq=true",
            "-etcd-endpoints=http://b:2379",
            "--etcd-prefix=/second",
            "-ip-masq=false",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(a.etcd.endpoints, ["http://b:2379"]);
    assert_eq!(a.etcd.prefix, "/second");
    assert!(!a.ip_masq);
    // Go never takes a boolean's value from the next argument.
    assert!(parse(&["-ip-masq", "false"], &[]).is_err());
    assert!(parse(&["-ip-masq=yes"], &[]).is_err());
    assert!(parse(&["-ip-masq=T"], &[]).unwrap().ip_masq);
}

#[test]
fn netboot_s_own_names_keep_working() {
    let a = parse(
        &[
            "--etcd",
            "http://e1:2379,http://e2:2379",
            "--prefix",
            "/p",
            "--cacert=/ca",
            "--cert=/c",
            "--key=/k",
            "--user=u",
            "--password=pw",
            "--public-ip",
            "10.1.1.1",
            "--renew-margin",
            "45m",
            "--ip-masq",
            "--keep-tx-checksum-offload",
            "--verbosity=1",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(a.etcd.endpoints, ["http://e1:2379", "http://e2:2379"]);
    assert_eq!(a.etcd.prefix, "/p");
    assert_eq!(a.etcd.user.as_deref(), Some("u"));
    assert_eq!(a.etcd.password.as_deref(), Some("pw"));
    assert_eq!(a.ext.public_ip, Some("10.1.1.1".parse().unwrap()));
    assert_eq!(a.renew_margin, Duration::from_secs(45 * 60));
    assert!(a.ip_masq && a.keep_tx_checksum_offload);
    assert_eq!(a.verbosity, 1);
    let a = parse(&["--password-file=/pf"], &[]).unwrap();
    assert_eq!(a.etcd.password_file.unwrap().to_str(), Some("/pf"));
}

#[test]
fn variable_names_follow_flanneld_s_rule() {
    assert_eq!(flags::env_name("etcd-endpoints"), "FLANNELD_ETCD_ENDPOINTS");
    assert_eq!(
        flags::env_name("subnet-lease-renew-margin"),
        "FLANNELD_SUBNET_LEASE_RENEW_MARGIN"
    );
    assert_eq!(flags::env_name("v"), "FLANNELD_V");
    assert_eq!(
        flags::env_name("log_backtrace_at"),
        "FLANNELD_LOG_BACKTRACE_AT"
    );
}

#[test]
fn flanneld_variables_set_what_the_command_line_does_not() {
    let vars = [
        (
            "FLANNELD_ETCD_ENDPOINTS",
            "http://10.0.0.1:2379,http://10.0.0.2:2379",
        ),
        ("FLANNELD_ETCD_PREFIX", "/from/env"),
        ("FLANNELD_IFACE", "eth0"),
        ("FLANNELD_IP_MASQ", "true"),
        ("FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "20"),
        ("FLANNELD_PUBLIC_IP", ""),
        ("FLANNELD_V", "4"),
        ("FLANNELD_HEALTHZ_PORT", "8471"),
        ("FLANNELD_VERSION", "true"),
        ("FLANNELD_ETCD_PASSWORD", "s3cret"),
    ];
    let (_, notes) = prep(&[], &vars).unwrap();
    let line = notes.join("\n");
    assert!(
        line.contains("FLANNELD_ETCD_ENDPOINTS") && !line.contains("s3cret"),
        "{line}"
    );
    let a = parse(&[], &vars).unwrap();
    assert_eq!(
        a.etcd.endpoints,
        ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    );
    assert_eq!(a.etcd.prefix, "/from/env");
    assert_eq!(a.ext.iface, ["eth0"]);
    assert!(a.ip_masq);
    assert_eq!(a.renew_margin, Duration::from_secs(20 * 60));
    assert_eq!(a.ext.public_ip, None, "an empty variable is unset");
    assert_eq!(a.verbosity, 4);
    assert_eq!(a.healthz_port, 8471);
    assert_eq!(a.etcd.password.as_deref(), Some("s3cret"));

    // The command line wins, under flanneld's name or netboot's.
    let a = parse(
        &[
            "-etcd-prefix=/cmd",
            "--etcd",
            "http://cmd:2379",
            "--renew-margin=5m",
            "-ip-masq=false",
        ],
        &vars,
    )
    .unwrap();
    assert_eq!(a.etcd.prefix, "/cmd");
    assert_eq!(a.etcd.endpoints, ["http://cmd:2379"]);
    assert_eq!(a.renew_margin, Duration::from_secs(300));
    assert!(!a.ip_masq);
    // A repeatable flag given on the command line takes nothing from the
    // variable, as in flanneld.
    assert_eq!(parse(&["-iface=eth9"], &vars).unwrap().ext.iface, ["eth9"]);
}

#[test]
fn netboot_variables_win_over_flanneld_ones() {
    let (out, notes) = prep(
        &[],
        &[
            ("FLANNELD_ETCD_PREFIX", "/flanneld"),
            ("NETBOOT_PREFIX", "/netboot"),
            ("FLANNELD_SUBNET_LEASE_RENEW_MARGIN", "20"),
            ("NETBOOT_RENEW_MARGIN", "2m"),
            ("FLANNELD_IFACE", "eth0"),
            ("NETBOOT_IFACE", ""),
        ],
    )
    .unwrap();
    assert_eq!(out, ["--iface=eth0"]);
    let line = notes.join("\n");
    assert!(
        line.contains("FLANNELD_ETCD_PREFIX not used: NETBOOT_PREFIX is set"),
        "{line}"
    );
    assert!(line.contains("FLANNELD_SUBNET_LEASE_RENEW_MARGIN not used: NETBOOT_RENEW_MARGIN"));
    assert!(
        line.contains("from the environment: NETBOOT_PREFIX, NETBOOT_RENEW_MARGIN, FLANNELD_IFACE")
    );
}

#[test]
fn flags_netboot_cannot_honour_are_refused_by_name() {
    for (args, vars, want) in [
        (
            &["-kube-subnet-mgr"][..],
            &[][..],
            "-kube-subnet-mgr=true: netboot uses etcd",
        ),
        (&["--kube-subnet-mgr=true"], &[], "netboot uses etcd"),
        (
            &[],
            &[("FLANNELD_KUBE_SUBNET_MGR", "1")],
            "FLANNELD_KUBE_SUBNET_MGR=true: netboot uses etcd",
        ),
        (
            &["-iptables-forward-rules=false"],
            &[],
            "always installs forward-accept rules",
        ),
        (&["-ip-blackhole-route"], &[], "blackhole route"),
        (&["-kube-subnet-mgr=yes"], &[], "\"yes\" is not a boolean"),
        (
            &["-iptables-resync=often"],
            &[],
            "-iptables-resync: \"often\" is not an integer",
        ),
        (&["-etcd-prefix"], &[], "-etcd-prefix needs a value"),
        (&["-etcd-foo=1"], &[], "unknown option -etcd-foo"),
        (&["-renew-margin=5m"], &[], "two dashes (--renew-margin)"),
    ] {
        let e = err(args, vars);
        assert!(e.contains(want), "{args:?} {vars:?}: {e}");
    }
    let e = parse(&["--renew-margin=5m", "-subnet-lease-renew-margin=30"], &[]).unwrap_err();
    assert!(format!("{e:#}").contains("give one"), "{e:#}");
    for bad in ["0", "1440", "30m"] {
        assert!(
            parse(&[&format!("-subnet-lease-renew-margin={bad}")], &[]).is_err(),
            "{bad}"
        );
    }
    assert!(parse(&["-healthz-port=70000"], &[]).is_err());
}

#[test]
fn harmless_flags_are_accepted_and_logged_or_silent() {
    let (out, notes) = prep(
        &[
            "-kube-subnet-mgr=false",
            "-iptables-forward-rules",
            "-ip-blackhole-route=false",
            "-iptables-resync=10",
            "-kube-api-url",
            "https://k8s:6443",
            "-ip-masq-fully-random-disable",
            "-vmodule=main=2",
        ],
        &[(
            "FLANNELD_NET_CONFIG_PATH",
            "/etc/kube-flannel/net-conf.json",
        )],
    )
    .unwrap();
    assert!(out.is_empty(), "{out:?}");
    let line = notes.join("\n");
    for name in [
        "ignoring -iptables-resync",
        "ignoring -kube-api-url",
        "ignoring -ip-masq-fully-random-disable",
        "ignoring -vmodule",
        "ignoring FLANNELD_NET_CONFIG_PATH",
    ] {
        assert!(line.contains(name), "{name} not in {line}");
    }
    // Set to what netboot does anyway: silent.
    for quiet in [
        "-kube-subnet-mgr:",
        "-iptables-forward-rules",
        "-ip-blackhole-route",
    ] {
        assert!(!line.contains(quiet), "{quiet} in {line}");
    }
}

#[test]
fn other_commands_are_left_to_clap() {
    let cmd = command();
    let raw: Vec<OsString> = ["netboot", "status", "-etcd-endpoints=x"]
        .iter()
        .map(OsString::from)
        .collect();
    let vars = |_: &str| Some(OsString::from("http://e:2379"));
    let p = prepare(raw.clone(), &cmd, &vars).unwrap();
    assert_eq!(p.argv, raw);
    assert!(p.notes.is_empty());
}

#[test]
fn every_flag_is_an_agent_option_or_accounted_for_and_documented() {
    let cmd = command();
    let agent = cmd.find_subcommand("agent").unwrap();
    let doc = include_str!("../../../docs/agent.md");
    let section = &doc[doc.find("## flanneld's flags").expect("section")..];
    for f in FLAGS {
        if f.does == Does::Same {
            assert!(arg_by_long(agent, f.name).is_some(), "--{} missing", f.name);
        }
        assert!(
            section.contains(&format!("`-{}", f.name)),
            "-{} not in docs/agent.md",
            f.name
        );
    }
}
