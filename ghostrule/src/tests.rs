use super::*;
use serde_json::json;

fn result(sandbox: &str) -> Value {
    json!({"interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": sandbox}]})
}

fn none_exist(_: &Path) -> bool {
    false
}
fn all_exist(_: &Path) -> bool {
    true
}

#[test]
fn earlier_boot_is_a_ghost_even_when_its_netns_path_exists() {
    // /proc/<pid>/ns/net of the old boot may name a new process now.
    let r = result("/proc/42/ns/net");
    assert_eq!(
        reason(Some("boot-a"), Some(&r), Some("boot-b"), &all_exist),
        Some(Ghost::EarlierBoot)
    );
    // An unfinished ADD of an earlier boot is a ghost too.
    assert_eq!(
        reason(Some("boot-a"), None, Some("boot-b"), &all_exist),
        Some(Ghost::EarlierBoot)
    );
}

#[test]
fn same_boot_needs_every_sandbox_gone() {
    let r = result("/run/netns/p1");
    let a = Some("boot-a");
    assert_eq!(reason(a, Some(&r), a, &all_exist), None);
    assert_eq!(reason(a, Some(&r), a, &none_exist), Some(Ghost::NetnsGone));
    // Unknown boot ids (old records, unreadable kernel file) fall back to
    // the netns rule only.
    assert_eq!(reason(a, Some(&r), None, &all_exist), None);
    assert_eq!(reason(None, Some(&r), Some("boot-b"), &all_exist), None);
    assert_eq!(
        reason(None, Some(&r), Some("boot-b"), &none_exist),
        Some(Ghost::NetnsGone)
    );
    // Two sandboxes: both must be gone.
    let two = json!({"interfaces": [{"sandbox": "/run/netns/p1"}, {"sandbox": "/run/netns/p2"}]});
    let only_p2 = |p: &Path| p == Path::new("/run/netns/p2");
    assert_eq!(reason(a, Some(&two), a, &only_p2), None);
}

#[test]
fn an_add_in_flight_or_without_sandboxes_is_never_a_ghost() {
    let b = Some("b");
    // No result (absent or JSON null): the ADD may be running now.
    assert_eq!(reason(b, None, b, &none_exist), None);
    assert_eq!(reason(b, Some(&Value::Null), b, &none_exist), None);
    // A result naming no sandbox, or a relative one, proves nothing.
    assert_eq!(reason(b, Some(&result("x")), b, &none_exist), None);
    let no_sandbox = json!({"interfaces": [{"name": "cni0"}]});
    assert_eq!(reason(b, Some(&no_sandbox), b, &none_exist), None);
}

#[test]
fn boot_ids_of_different_sources_are_not_compared() {
    assert!(other_boot("a", "b"));
    assert!(other_boot("file:a", "file:b"));
    assert!(!other_boot("a", "file:b"));
    assert!(!other_boot("file:a", "a"));
    assert!(!other_boot("file:a", "file:a"));
    let r = result("/proc/self/ns/net");
    assert_eq!(reason(Some("a"), Some(&r), Some("file:b"), &is_netns), None);
}

#[test]
fn only_a_namespace_counts_as_one() {
    assert!(is_netns(Path::new("/proc/self/ns/net")));
    let dir = tempfile::tempdir().unwrap();
    // A bind-mount target with nothing mounted on it.
    let placeholder = dir.path().join("cni-1234");
    std::fs::write(&placeholder, b"").unwrap();
    assert!(!is_netns(&placeholder));
    assert!(!is_netns(&dir.path().join("missing")));
}

#[test]
fn a_boot_id_file_must_be_absolute_and_one_line() {
    // One test touches the variable, so no other test races it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("boot_id");
    let with = |value: &Path| {
        std::env::set_var(BOOT_ID_ENV, value);
        let got = boot_id();
        std::env::remove_var(BOOT_ID_ENV);
        got
    };
    std::fs::write(&file, "abc\n").unwrap();
    assert_eq!(with(&file), Ok(Some("file:abc".into())));
    for bad in ["", "\n", "a\nb\n"] {
        std::fs::write(&file, bad).unwrap();
        let e = with(&file).unwrap_err().to_string();
        assert!(e.contains("not a boot id"), "{bad:?}: {e}");
        assert!(
            e.starts_with(&format!("{BOOT_ID_ENV}={}", file.display())),
            "{e}"
        );
    }
    assert!(with(Path::new("rel/boot_id"))
        .unwrap_err()
        .to_string()
        .contains("not an absolute path"));
    assert!(with(&dir.path().join("missing")).is_err());
    assert!(boot_id()
        .unwrap()
        .is_some_and(|id| !id.starts_with(FILE_BOOT_ID_PREFIX)));
}
