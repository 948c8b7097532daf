//! Hostile pod specs (issue 8): the JSON and YAML readers under the seeded
//! mutator shared by every crate (`tests/corpus/fuzzkit.rs`), and table
//! tests for pod names, hostnames, container names and mount paths that try
//! path traversal, shell metacharacters, NUL bytes, newlines, very long
//! strings and unicode.
//!
//! Properties: no panic, no hang; a refused spec names the field
//! (`SpecError.path`) and says what is wrong; an accepted spec only has
//! DNS-label names (no `/`, `.`, `..`, shell characters: they name
//! containerd objects, state directories and cgroups) and absolute,
//! `..`-free mount and working-dir paths.
//!
//! The spec module is compiled in from `src/spec` (podrun is a binary).

#![allow(dead_code, unused_imports)]

#[path = "../../tests/corpus/fuzzkit.rs"]
mod fuzzkit;
#[path = "../src/spec/mod.rs"]
mod spec;

use std::path::{Component, Path};

use spec::{PodSpec, SpecError};

const DEFAULT_CASES: u32 = 256;

fn is_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn safe_abs(p: &Path) -> bool {
    p.is_absolute() && !p.components().any(|c| c == Component::ParentDir)
}

fn check_accepted(s: &PodSpec) -> Result<(), String> {
    if !is_label(&s.name, 40) {
        return Err(format!("accepted pod name {:?}", s.name));
    }
    if s.containers.is_empty() {
        return Err("accepted a pod without containers".into());
    }
    for c in &s.containers {
        if !is_label(&c.name, 24) {
            return Err(format!("accepted container name {:?}", c.name));
        }
        for m in &c.mounts {
            if !safe_abs(&m.host_path) || !safe_abs(&m.container_path) {
                return Err(format!("accepted mount {m:?}"));
            }
        }
        if let Some(wd) = &c.working_dir {
            if !safe_abs(Path::new(wd)) {
                return Err(format!("accepted workingDir {wd:?}"));
            }
        }
    }
    Ok(())
}

fn judge(r: Result<PodSpec, SpecError>) -> Result<bool, String> {
    match r {
        Ok(s) => check_accepted(&s).map(|()| true),
        Err(e) if !e.path.is_empty() && !e.msg.is_empty() => Ok(false),
        Err(e) => Err(format!("error without a field or a reason: {e:?}")),
    }
}

fn check_json(bytes: &[u8]) -> Result<bool, String> {
    judge(PodSpec::from_json(&String::from_utf8_lossy(bytes)))
}

fn check_yaml(bytes: &[u8]) -> Result<bool, String> {
    judge(PodSpec::from_yaml(&String::from_utf8_lossy(bytes)))
}

const DICT: &[&str] = &[
    "\"name\":",
    "\"containers\":",
    "\"mounts\":",
    "\"hostPath\":",
    "\"containerPath\":",
    "\"resources\":",
    "\"memory\":",
    "\"cpuset\":",
    "\"env\":",
    "name: ",
    "containers:\n  - ",
    "mounts:\n  - hostPath: ",
    "  ",
    "- ",
];

#[test]
fn fuzz_podspec_json() {
    fuzzkit::run("podspec_json", DEFAULT_CASES, DICT, check_json);
}

#[test]
fn fuzz_podspec_yaml() {
    fuzzkit::run("podspec_yaml", DEFAULT_CASES, DICT, check_yaml);
}

#[test]
fn corpus_replays() {
    for (name, bytes) in fuzzkit::corpus("podspec_json") {
        check_json(&bytes).unwrap_or_else(|e| panic!("podspec_json/{name}: {e}"));
        check_yaml(&bytes).unwrap_or_else(|e| panic!("podspec_json/{name} as YAML: {e}"));
    }
    for (name, bytes) in fuzzkit::corpus("podspec_yaml") {
        check_yaml(&bytes).unwrap_or_else(|e| panic!("podspec_yaml/{name}: {e}"));
    }
}

/// Values that must never become a pod or container name, a hostname, or
/// a mount or working-dir path that climbs out.
const HOSTILE_NAMES: &[&str] = &[
    "../../etc",
    "..",
    ".",
    "a/b",
    "/abs",
    "a\0b",
    "a\nb",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "a;b",
    "a|b",
    "a b",
    "Web",
    "-web",
    "web-",
    "wéb",
    "\u{202e}web",
    "",
];

fn spec_with(name: &str, container: &str, hostname: Option<&str>) -> serde_json::Value {
    let mut s = serde_json::json!({
        "name": name,
        "containers": [{"name": container, "image": "busybox"}],
    });
    if let Some(h) = hostname {
        s["hostname"] = h.into();
    }
    s
}

#[test]
fn hostile_names_are_refused_naming_the_field() {
    let long = "a".repeat(4096);
    let names: Vec<&str> = HOSTILE_NAMES
        .iter()
        .copied()
        .chain([long.as_str()])
        .collect();
    for bad in &names {
        for (spec, field) in [
            (spec_with(bad, "c", None), "name"),
            (spec_with("p", bad, None), "containers[0].name"),
            (spec_with("p", "c", Some(bad)), "hostname"),
        ] {
            let text = spec.to_string();
            let e = PodSpec::from_json(&text).expect_err(&format!("{field}={bad:?} accepted"));
            assert_eq!(e.path, field, "{bad:?}: {e}");
            // The YAML reader applies the same rules.
            let e = PodSpec::from_yaml(&text).expect_err(&format!("{field}={bad:?} accepted"));
            assert_eq!(e.path, field, "{bad:?} (YAML): {e}");
        }
    }
}

#[test]
fn hostile_mount_paths_are_refused_naming_the_field() {
    for (host, ctr, field) in [
        ("/var/lib/x", "../../etc", "containerPath"),
        ("/var/lib/x", "etc", "containerPath"),
        ("/var/lib/x", "/srv/../../etc", "containerPath"),
        ("/var/lib/x", "/", "containerPath"),
        ("../../etc", "/x", "hostPath"),
        ("relative/dir", "/x", "hostPath"),
        ("/var/lib/../../etc/shadow", "/x", "hostPath"),
        ("$(touch /tmp/pwned)", "/x", "hostPath"),
        ("", "/x", "hostPath"),
    ] {
        let spec = serde_json::json!({
            "name": "p",
            "containers": [{"name": "c", "image": "busybox",
                "mounts": [{"hostPath": host, "containerPath": ctr}]}],
        });
        let e = PodSpec::from_json(&spec.to_string())
            .expect_err(&format!("mount {host:?} -> {ctr:?} accepted"));
        assert_eq!(e.path, format!("containers[0].mounts[0].{field}"), "{e}");
    }
    for wd in ["srv", "../x", "/srv/../.."] {
        let spec = serde_json::json!({
            "name": "p", "containers": [{"name": "c", "image": "busybox", "workingDir": wd}],
        });
        let e = PodSpec::from_json(&spec.to_string()).expect_err(wd);
        assert_eq!(e.path, "containers[0].workingDir", "{e}");
    }
}

/// Shell metacharacters in command, args and env values are plain data:
/// podrun passes them to the OCI spec as argv/env entries, never to a shell,
/// so the parser keeps them byte for byte.
#[test]
fn shell_metacharacters_in_argv_and_env_are_kept_verbatim() {
    let evil = "$(touch /tmp/pwned); `id` | rm -rf / && echo \"'\n";
    let spec = serde_json::json!({
        "name": "p",
        "containers": [{"name": "c", "image": "busybox",
            "command": [evil], "args": [evil], "env": {"E": evil}}],
    });
    let s = PodSpec::from_json(&spec.to_string()).unwrap();
    let c = &s.containers[0];
    assert_eq!(c.command.as_deref(), Some(&[evil.to_string()][..]));
    assert_eq!(c.args.as_deref(), Some(&[evil.to_string()][..]));
    assert_eq!(c.env.0, vec![("E".to_string(), evil.to_string())]);
    // A NUL or '=' in an env name cannot be passed to execve: refused.
    for k in ["A=B", "A\u{0}B", ""] {
        let spec = serde_json::json!({
            "name": "p", "containers": [{"name": "c", "image": "busybox", "env": {k: "v"}}],
        });
        let e = PodSpec::from_json(&spec.to_string()).expect_err(k);
        assert_eq!(e.path, "containers[0].env[0]", "{e}");
    }
}

/// Security review F3: an unknown key containing '.' made the error's
/// field path empty (the parent was cut at the last '.' of the text).
#[test]
fn unknown_keys_with_dots_name_their_object() {
    for (doc, want) in [
        (
            r#"{"name":"p",".etwork":"x","containers":[{"name":"c","image":"i"}]}"#,
            ".",
        ),
        (
            r#"{"name":"p","containers":[{"name":"c","image":"i","a.b":1}]}"#,
            "containers[0]",
        ),
        (
            r#"{"name":"p","containers":[{"name":"c","image":"i","resources":{"x.y.z":1}}]}"#,
            "containers[0].resources",
        ),
    ] {
        let e = PodSpec::from_json(doc).unwrap_err();
        assert_eq!(e.path, want, "{doc}: {e}");
        assert!(e.msg.starts_with("unknown field"), "{e}");
        let e = PodSpec::from_yaml(doc).unwrap_err();
        assert_eq!(e.path, want, "{doc} (YAML): {e}");
    }
}

/// YAML alias expansion ("billion laughs") must stay bounded.
#[test]
fn yaml_alias_bombs_are_bounded() {
    let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='j' {
        doc.push_str(&format!(
            "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = c;
    }
    doc.push_str("name: p\ncontainers: [{name: c, image: busybox}]\n");
    let t = std::time::Instant::now();
    let r = PodSpec::from_yaml(&doc);
    assert!(r.is_err(), "alias bomb accepted");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

/// The mutator starts from valid specs, so the valid seeds must stay valid.
#[test]
fn valid_seeds_are_accepted() {
    let root = fuzzkit::corpus_root();
    let json = std::fs::read_to_string(root.join("podspec_json/web.json")).unwrap();
    PodSpec::from_json(&json).unwrap();
    let yaml = std::fs::read_to_string(root.join("podspec_yaml/web.yaml")).unwrap();
    PodSpec::from_yaml(&yaml).unwrap();
}
