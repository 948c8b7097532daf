//! Errors of a pod's network fields name the manifest's paths.

/// A manifest's errors name the manifest's fields: a pod-level port
/// is the container's, a bandwidth limit its annotation.
#[test]
fn manifest_errors_name_manifest_paths() {
    let kube = |spec: &str, annotations: &str| {
        let doc =
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n{annotations}spec:\n{spec}");
        super::from_yaml(&doc, super::Options::default())
            .unwrap_err()
            .to_string()
    };
    let e = kube(
        "  hostNetwork: true\n  containers:\n  - {name: a, image: i}\n  \
         - {name: b, image: i, ports: [{containerPort: 1}, {containerPort: 2, hostPort: 3}]}\n",
        "",
    );
    assert!(
        e.starts_with("spec.containers[1].ports[1].hostPort: 3 must equal"),
        "{e}"
    );
    let e = kube(
        "  hostNetwork: true\n  containers: [{name: a, image: i}]\n",
        "  annotations: {kubernetes.io/egress-bandwidth: 1M}\n",
    );
    assert!(
        e.starts_with("metadata.annotations.kubernetes.io/egress-bandwidth: cannot be applied"),
        "{e}"
    );
    let e = kube(
        "  dnsPolicy: None\n  containers: [{name: a, image: i}]\n",
        "",
    );
    assert!(e.starts_with("spec.dnsConfig: is required"), "{e}");
}
