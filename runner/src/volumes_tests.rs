//! Unit tests of `volumes` on a temp dir: hostPath types, subPath
//! containment, emptyDir modes, mountinfo parsing.

use super::*;
use std::os::unix::fs::MetadataExt;

fn pod_with(volumes: &str) -> PodSpec {
    PodSpec::from_yaml(&format!(
        "name: p\ncontainers:\n  - name: c\n    image: i\nvolumes:\n{volumes}"
    ))
    .unwrap()
}

fn host_path(path: &Path, kind: &str) -> PodSpec {
    pod_with(&format!(
        "  - name: v\n    hostPath: {{path: {}, type: {kind}}}\n",
        path.display()
    ))
}

#[test]
fn host_path_types_are_checked_and_created() {
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("f");
    fs::write(&file, "x").unwrap();
    let sock = d.path().join("s");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let ok = [
        (d.path().to_path_buf(), "Directory"),
        (d.path().to_path_buf(), "DirectoryOrCreate"),
        (file.clone(), "File"),
        (file.clone(), "FileOrCreate"),
        (sock.clone(), "Socket"),
        (PathBuf::from("/dev/null"), "CharDevice"),
    ];
    for (p, kind) in ok {
        preflight(&host_path(&p, kind)).unwrap_or_else(|e| panic!("{kind}: {e:#}"));
    }
    let bad = [
        (d.path().to_path_buf(), "File", "found a directory"),
        (file.clone(), "Directory", "found a regular file"),
        (file.clone(), "DirectoryOrCreate", "found a regular file"),
        (d.path().join("none"), "File", "found nothing"),
        (file.clone(), "Socket", "found a regular file"),
        (
            PathBuf::from("/dev/null"),
            "BlockDevice",
            "found a character device",
        ),
    ];
    for (p, kind, want) in bad {
        let e = preflight(&host_path(&p, kind)).unwrap_err();
        let e = e.downcast::<SpecError>().unwrap();
        assert_eq!(e.path, "volumes[0].hostPath.type", "{kind}");
        assert!(
            e.msg.contains(want) && e.msg.contains(&p.display().to_string()),
            "{e}"
        );
    }
    let new_dir = d.path().join("a/b");
    preflight(&host_path(&new_dir, "DirectoryOrCreate")).unwrap();
    assert_eq!(fs::metadata(&new_dir).unwrap().mode() & 0o7777, 0o755);
    let new_file = d.path().join("nf");
    preflight(&host_path(&new_file, "FileOrCreate")).unwrap();
    let m = fs::metadata(&new_file).unwrap();
    assert!(m.is_file() && m.len() == 0 && m.mode() & 0o777 == 0o644);
    // FileOrCreate does not make the parents, as the kubelet.
    assert!(preflight(&host_path(&d.path().join("no/f"), "FileOrCreate")).is_err());
    // A refusal creates nothing, even for volumes before the bad one.
    let later = d.path().join("later");
    let two = pod_with(&format!(
        "  - name: a\n    hostPath: {{path: {}, type: DirectoryOrCreate}}\n  \
         - name: b\n    hostPath: {{path: {}, type: File}}\n",
        later.display(),
        d.path().display()
    ));
    let e = preflight(&two)
        .unwrap_err()
        .downcast::<SpecError>()
        .unwrap();
    assert_eq!(e.path, "volumes[1].hostPath.type");
    assert!(!later.exists());
}

#[test]
fn manifest_paths_get_spec_prefix() {
    let mut p = host_path(Path::new("/proc/self/status"), "Directory");
    p.kube = Some(Default::default());
    let e = preflight(&p).unwrap_err().downcast::<SpecError>().unwrap();
    assert_eq!(e.path, "spec.volumes[0].hostPath.type");
}

#[test]
fn sub_paths_stay_inside_the_volume() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("vol");
    fs::create_dir(&root).unwrap();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o2775)).unwrap();
    fs::create_dir(root.join("in")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
    std::os::unix::fs::symlink("in", root.join("rel")).unwrap();
    let root_c = root.canonicalize().unwrap();
    assert_eq!(sub_path(&root, "in").unwrap(), root_c.join("in"));
    assert_eq!(sub_path(&root, "rel/x").unwrap(), root_c.join("in/x"));
    let made = sub_path(&root, "new/deep").unwrap();
    assert_eq!(made, root_c.join("new/deep"));
    assert_eq!(fs::metadata(&made).unwrap().mode() & 0o7777, 0o2775);
    let e = sub_path(&root, "out/x").unwrap_err().to_string();
    assert!(e.contains("leads out of the volume"), "{e}");
    assert!(!Path::new("/etc/x").exists());
    assert!(sub_path(&root, "../x").is_err());
}

#[test]
fn empty_dirs_get_mode_and_fs_group_and_binds() {
    let d = tempfile::tempdir().unwrap();
    let mut p =
        pod_with("  - name: cache\n    emptyDir: {}\n  - name: h\n    hostPath: {path: /srv}\n");
    p.containers[0].volume_mounts = vec![
        crate::spec::VolumeMount {
            name: "cache".into(),
            mount_path: "/cache".into(),
            sub_path: Some("a/b".into()),
            read_only: true,
        },
        crate::spec::VolumeMount {
            name: "h".into(),
            mount_path: "/h".into(),
            sub_path: None,
            read_only: false,
        },
    ];
    p.security_context = Some(crate::spec::PodSecurityContext {
        fs_group: Some(4321),
        ..Default::default()
    });
    let vols = setup(&p, d.path()).unwrap();
    let cache = d.path().join("volumes/cache");
    let m = fs::metadata(&cache).unwrap();
    assert_eq!((m.mode() & 0o7777, m.gid()), (0o2777, 4321));
    let binds = vols.binds(&p.containers[0], "containers[0]").unwrap();
    assert_eq!(binds[0].source, cache.canonicalize().unwrap().join("a/b"));
    assert!(binds[0].read_only);
    assert_eq!(binds[1].source, PathBuf::from("/srv"));
    assert_eq!(binds[1].destination, PathBuf::from("/h"));
    teardown(d.path()).unwrap();
}

#[test]
fn mountinfo_escapes() {
    assert_eq!(unescape(r"/a\040b\134c"), r"/a b\c");
    assert_eq!(unescape(r"/plain\04"), r"/plain\04");
}

#[test]
fn memory_empty_dir_size_is_the_kubelets() {
    let mib = |n: u64| n << 20;
    let pod = |containers: &str| {
        PodSpec::from_yaml(&format!(
            "name: p\ncontainers:\n{containers}volumes: [{{name: m, emptyDir: {{medium: Memory}}}}]\n"
        ))
        .unwrap()
    };
    let c = |name: &str, mem: &str| format!("  - {{name: {name}, image: i{mem}}}\n");
    let node = mib(1000);
    let limited =
        pod(&(c("a", ", resources: {memory: 64Mi}") + &c("b", ", resources: {memory: 32Mi}")));
    assert_eq!(tmpfs_size(&limited, None, node), mib(96), "the pod's limit");
    assert_eq!(tmpfs_size(&limited, Some(MemorySize(mib(8))), node), mib(8));
    assert_eq!(
        tmpfs_size(&limited, Some(MemorySize(mib(500))), node),
        mib(96)
    );
    assert_eq!(tmpfs_size(&limited, Some(MemorySize(0)), node), mib(96));
    let open = pod(&(c("a", ", resources: {memory: 64Mi}") + &c("b", "")));
    assert_eq!(
        tmpfs_size(&open, None, node),
        node,
        "no pod limit: the node's"
    );
    assert_eq!(tmpfs_size(&open, Some(MemorySize(mib(8))), node), mib(8));
    let mut init = limited.clone();
    init.init_containers = vec![init.containers[0].clone()];
    init.init_containers[0].name = "i".into();
    init.init_containers[0].resources.memory = Some(MemorySize(mib(200)));
    assert_eq!(
        tmpfs_size(&init, None, node),
        mib(200),
        "a bigger init container"
    );
}
