//! The CRI harness cleans up after a test that fails with pods running,
//! even when containerd died first: no shim, no pod netns, no mount and no
//! CNI cache entry of the sandbox is left once the node is dropped.

use std::fs;
use std::path::Path;

use netboot_tests::crash_support::Mode;
use netboot_tests::cri::daemon::{mounts_under, CNI_RESULTS};
use netboot_tests::cri::node::CriNode;
use netboot_tests::cri::round_trip::run_pod;
use netboot_tests::plugin_support::list_names;
use netboot_tests::require_root;

/// PIDs whose command line mentions `id` (a shim runs with `-id <id>`).
fn processes_mentioning(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmd).contains(id) {
            out.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn dropping_a_node_removes_pods_whose_containerd_died() {
    require_root();
    let (id, netns, dir) = {
        let mut node = CriNode::new("cri-drop", Mode::Bridge);
        let config = node.sandbox_config("orphan", &[], &[]);
        let pod = run_pod(&node, &config);
        assert!(
            !processes_mentioning(&pod.id).is_empty(),
            "no shim for the sandbox"
        );
        node.ctd.kill();
        (pod.id, pod.netns, node.ctd.dir().to_owned())
    };
    // The restarted containerd is gone too, and so is its temp dir.
    let dir_s = dir.display().to_string();
    assert_eq!(
        processes_mentioning(&dir_s),
        Vec::<String>::new(),
        "containerd left"
    );
    assert_eq!(mounts_under(&dir), Vec::<std::path::PathBuf>::new());
    assert!(!dir.exists(), "{dir_s} left");
    assert!(!netns.exists(), "pod netns left: {}", netns.display());
    let mounts: Vec<_> = mounts_under(Path::new("/"))
        .into_iter()
        .filter(|m| m.to_string_lossy().contains(&id))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    assert_eq!(
        processes_mentioning(&id),
        Vec::<String>::new(),
        "processes left"
    );
    let cached: Vec<String> = list_names(Path::new(CNI_RESULTS))
        .into_iter()
        .filter(|n| n.contains(&id))
        .collect();
    assert_eq!(cached, Vec::<String>::new(), "CNI cache entries left");
}
