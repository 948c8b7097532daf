use std::collections::HashMap;

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

const FULL: &[(&str, &str)] = &[
    ("CNI_CONTAINERID", "abc123"),
    ("CNI_NETNS", "/var/run/netns/x"),
    ("CNI_IFNAME", "eth0"),
    ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=web"),
];

fn with(cmd: &str, overrides: &[(&'static str, &'static str)]) -> Result<CmdArgs, CniError> {
    let mut pairs: Vec<(&str, &str)> = vec![("CNI_COMMAND", cmd)];
    for (k, v) in FULL {
        if !overrides.iter().any(|(ok, _)| ok == k) {
            pairs.push((k, v));
        }
    }
    pairs.extend(overrides.iter().filter(|(_, v)| !v.is_empty()).copied());
    CmdArgs::from_env(&env(&pairs))
}

#[test]
fn command_names_roundtrip() {
    for c in [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Status,
        Command::Version,
        Command::Gc,
    ] {
        assert_eq!(c.as_str().parse::<Command>().unwrap(), c);
        assert_eq!(c.to_string(), c.as_str());
    }
    assert_eq!("add".parse::<Command>().unwrap_err().code, 4);
}

#[test]
fn full_add() {
    let a = with("ADD", &[]).unwrap();
    assert_eq!(a.command, Command::Add);
    assert_eq!(a.container_id, "abc123");
    assert_eq!(a.netns, "/var/run/netns/x");
    assert_eq!(a.ifname, "eth0");
    assert_eq!(
        a.path,
        vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
    );
    assert_eq!(a.arg("K8S_POD_NAME"), Some("web"));
    assert_eq!(a.arg("nope"), None);
    assert!(!a.netns_override);
}

/// (command, variables to unset, expected list in the message)
type MissingCase = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn missing_vars_per_command() {
    let table: &[MissingCase] = &[
        ("ADD", &[("CNI_NETNS", "")], "[CNI_NETNS]"),
        (
            "CHECK",
            &[("CNI_NETNS", ""), ("CNI_PATH", "")],
            "[CNI_NETNS,CNI_PATH]",
        ),
        (
            "ADD",
            &[("CNI_CONTAINERID", ""), ("CNI_IFNAME", "")],
            "[CNI_CONTAINERID,CNI_IFNAME]",
        ),
        ("DEL", &[("CNI_PATH", "")], "[CNI_PATH]"),
        ("GC", &[("CNI_PATH", "")], "[CNI_PATH]"),
        ("STATUS", &[("CNI_PATH", "")], "[CNI_PATH]"),
    ];
    for (cmd, drop, want) in table {
        let e = with(cmd, drop).unwrap_err();
        assert_eq!(e.code, 4, "{cmd}");
        assert_eq!(
            e.msg,
            format!("required env variables {want} missing"),
            "{cmd}"
        );
    }
}

#[test]
fn optional_vars_per_command() {
    // DEL may run after the netns is gone.
    let a = with("DEL", &[("CNI_NETNS", "")]).unwrap();
    assert_eq!(a.netns, "");
    // GC/STATUS only need CNI_PATH; VERSION needs nothing at all.
    let gc = CmdArgs::from_env(&env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/b")])).unwrap();
    assert_eq!(gc.command, Command::Gc);
    let st = CmdArgs::from_env(&env(&[("CNI_COMMAND", "STATUS"), ("CNI_PATH", "/b")])).unwrap();
    assert_eq!(st.command, Command::Status);
    let v = CmdArgs::from_env(&env(&[("CNI_COMMAND", "VERSION"), ("CNI_ARGS", "junk")])).unwrap();
    assert_eq!(v.command, Command::Version);
    assert!(v.args.is_empty());
}

#[test]
fn missing_or_unknown_command() {
    let e = CmdArgs::from_env(&env(&[])).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (4, "required env variables [CNI_COMMAND] missing")
    );
    let e = CmdArgs::from_env(&env(&[("CNI_COMMAND", "")])).unwrap_err();
    assert_eq!(e.code, 4);
    let e = with("FROB", &[]).unwrap_err();
    assert_eq!((e.code, e.msg.as_str()), (4, "unknown CNI_COMMAND: FROB"));
}

#[test]
fn validation_table() {
    let table: &[(&str, &str, u32)] = &[
        ("CNI_CONTAINERID", "../../etc", 4),
        ("CNI_CONTAINERID", "a/b", 4),
        ("CNI_CONTAINERID", ".hidden", 4),
        ("CNI_IFNAME", "1234567890123456", 4),
        ("CNI_IFNAME", ".", 4),
        ("CNI_IFNAME", "..", 4),
        ("CNI_IFNAME", "a:b", 4),
        ("CNI_IFNAME", "a b", 4),
        ("CNI_IFNAME", "a/b", 4),
        ("CNI_ARGS", "A=1;B", 4),
    ];
    for (k, v, code) in table {
        for cmd in ["ADD", "DEL", "CHECK"] {
            let e = with(cmd, &[(k, v)]).unwrap_err();
            assert_eq!(e.code, *code, "{cmd} {k}={v}: {e}");
        }
    }
    assert!(with("ADD", &[("CNI_IFNAME", "123456789012345")]).is_ok());
}

#[test]
fn netns_override() {
    for (v, want) in [
        ("1", true),
        ("true", true),
        ("TRUE", true),
        ("0", false),
        ("no", false),
    ] {
        assert_eq!(
            with("ADD", &[("CNI_NETNS_OVERRIDE", v)])
                .unwrap()
                .netns_override,
            want,
            "{v}"
        );
    }
}

#[test]
fn cni_args_parsing() {
    assert_eq!(parse_cni_args("").unwrap(), vec![]);
    assert_eq!(
        parse_cni_args("A=1;B=two;C=").unwrap(),
        vec![
            ("A".into(), "1".into()),
            ("B".into(), "two".into()),
            ("C".into(), "".into())
        ]
    );
    for bad in ["A", "A=1;B", "A=1;", "=v", "A=1=2", ";"] {
        let e = parse_cni_args(bad).unwrap_err();
        assert_eq!(e.code, 4, "{bad}");
        assert!(e.msg.contains("invalid pair"), "{}", e.msg);
    }
    assert_eq!(
        parse_cni_args("A=1;B").unwrap_err().msg,
        "CNI_ARGS: invalid pair \"B\": want KEY=VALUE"
    );
}

#[test]
fn known_args() {
    let args = parse_cni_args("K8S_POD_NAME=x;FOO=1").unwrap();
    assert!(check_known_args(&args, &["K8S_POD_NAME", "FOO"]).is_ok());
    let e = check_known_args(&args, &["K8S_POD_NAME"]).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (4, "CNI_ARGS: unknown args [\"FOO=1\"]")
    );
    for ig in ["1", "true", "True"] {
        let mut a = args.clone();
        a.push(("IgnoreUnknown".into(), ig.into()));
        assert!(check_known_args(&a, &[]).is_ok(), "{ig}");
    }
    let a = parse_cni_args("IgnoreUnknown=false;FOO=1").unwrap();
    assert!(check_known_args(&a, &[]).is_err());
    let a = parse_cni_args("IgnoreUnknown=maybe").unwrap();
    assert_eq!(check_known_args(&a, &[]).unwrap_err().code, 4);
}

#[test]
fn split_path_skips_empties() {
    assert_eq!(
        split_path("/a::/b:"),
        [PathBuf::from("/a"), PathBuf::from("/b")]
    );
    assert!(split_path("").is_empty());
}
