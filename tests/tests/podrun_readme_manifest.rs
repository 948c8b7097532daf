//! The README's Kubernetes manifest example (`# web.yaml`) runs as it is
//! written, and does what its comments say: the init container fills the
//! memory emptyDir, the server serves it as uid 1000 with no capabilities,
//! knows its pod IP, and is published on its hostPort.

use std::fs;
use std::time::Duration;

use netboot_tests::containerd::{PodNode, BUSYBOX};
use netboot_tests::{exec, require_root};
use serde_json::{json, Value};

/// The YAML block of the README that starts with `# web.yaml`.
fn readme_manifest() -> String {
    let readme = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let start = readme
        .find("# web.yaml\n")
        .expect("README has a `# web.yaml` block");
    let body = &readme[start..];
    body[..body.find("```").expect("end of the block")].to_string()
}

#[test]
fn the_readme_manifest_runs_as_written() {
    require_root();
    let yaml = readme_manifest();
    assert!(
        yaml.contains("kind: Pod") && yaml.contains("initContainers"),
        "{yaml}"
    );
    let n = PodNode::new("readme", "10.88.57.1/24");
    n.declare_capabilities(&json!({"bandwidth": true}));
    let file = n.node.dir().join("web.yaml");
    fs::write(
        &file,
        yaml.replace("docker.io/library/busybox:test", BUSYBOX),
    )
    .unwrap();
    let out = n.podrun(&["run", "-f", file.to_str().unwrap()]).expect_ok();
    let ip = out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("pod IP")
        .to_string();

    let sh = |script: &str| {
        n.podrun(&["exec", "web", "server", "--", "sh", "-c", script])
            .expect_ok()
            .stdout
    };
    assert_eq!(sh("wget -qO- http://127.0.0.1:8080/"), "hi\n");
    assert_eq!(sh("id -u").trim(), "1000");
    assert_eq!(sh("echo $POD_IP").trim(), ip);
    let cap_eff = sh("grep CapEff /proc/self/status");
    assert!(cap_eff.trim().ends_with("0000000000000000"), "{cap_eff}");
    assert!(sh("grep ' /www ' /proc/mounts").contains("tmpfs"));

    // The hostPort, from the node.
    let url = "http://127.0.0.1:18080/";
    let got = exec::run(
        exec::nsenter(n.node.path(), &["curl", "-sS", "-m", "5", url]),
        None,
        Duration::from_secs(30),
    );
    assert_eq!(got.stdout, "hi\n", "{got}");

    let v: Value = serde_json::from_str(&n.podrun(&["inspect", "web"]).expect_ok().stdout)
        .expect("inspect JSON");
    assert_eq!(v["initContainers"][0]["name"], "setup", "{v:#}");
    assert_eq!(v["initContainers"][0]["exit"], 0, "{v:#}");
    n.podrun(&["rm", "web", "--grace", "2"]).expect_ok();
    n.assert_clean();
}
