//! Every Kubernetes Pod field podrun cannot honour is refused with its
//! path, through the real `podrun` binary (`run --dry-run`, which checks
//! and maps the file but creates nothing), and `--ignore-unsupported`
//! turns each refusal into a warning that names the same path.

use std::process::Command;
use std::time::Duration;

use netboot_tests::exec;

/// A pod with two containers; `pod` is inserted under `spec`, `ctr` under
/// the second container, `meta` under `metadata`.
fn manifest(meta: &str, pod: &str, ctr: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n{meta}spec:\n{pod}  containers:\n  \
         - name: a\n    image: busybox\n  - name: b\n    image: busybox\n{ctr}"
    )
}

fn dry_run(doc: &str, extra: &[&str]) -> exec::CmdOutput {
    let mut cmd = Command::new(netboot_tests::bin_path("podrun"));
    cmd.args(["run", "-f", "-", "--dry-run"]).args(extra);
    exec::run(cmd, Some(doc.as_bytes()), Duration::from_secs(30))
}

/// (where, text, expected path)
const CASES: &[(&str, &str, &str)] = &[
    ("pod", "  nodeSelector: {disk: ssd}\n", "spec.nodeSelector"),
    ("pod", "  affinity: {}\n", "spec.affinity"),
    ("pod", "  tolerations: [{key: k}]\n", "spec.tolerations"),
    (
        "pod",
        "  serviceAccountName: sa\n",
        "spec.serviceAccountName",
    ),
    ("pod", "  hostPID: true\n", "spec.hostPID"),
    ("pod", "  hostIPC: true\n", "spec.hostIPC"),
    (
        "pod",
        "  shareProcessNamespace: true\n",
        "spec.shareProcessNamespace",
    ),
    (
        "pod",
        "  hostAliases: [{ip: 10.0.0.1, hostnames: [x]}]\n",
        "spec.hostAliases",
    ),
    (
        "pod",
        "  imagePullSecrets: [{name: s}]\n",
        "spec.imagePullSecrets",
    ),
    (
        "pod",
        "  runtimeClassName: gvisor\n",
        "spec.runtimeClassName",
    ),
    (
        "pod",
        "  priorityClassName: high\n",
        "spec.priorityClassName",
    ),
    (
        "pod",
        "  activeDeadlineSeconds: 5\n",
        "spec.activeDeadlineSeconds",
    ),
    (
        "pod",
        "  ephemeralContainers: [{name: e, image: i}]\n",
        "spec.ephemeralContainers",
    ),
    (
        "pod",
        "  securityContext: {sysctls: [{name: a, value: b}]}\n",
        "spec.securityContext.sysctls",
    ),
    (
        "pod",
        "  securityContext: {seccompProfile: {type: RuntimeDefault}}\n",
        "spec.securityContext.seccompProfile",
    ),
    (
        "pod",
        "  volumes: [{name: v, configMap: {name: c}}]\n",
        "spec.volumes[0].configMap",
    ),
    (
        "pod",
        "  volumes: [{name: v, secret: {secretName: s}}]\n",
        "spec.volumes[0].secret",
    ),
    (
        "pod",
        "  volumes: [{name: v, persistentVolumeClaim: {claimName: c}}]\n",
        "spec.volumes[0].persistentVolumeClaim",
    ),
    (
        "pod",
        "  volumes: [{name: v, emptyDir: {medium: HugePages}}]\n",
        "spec.volumes[0].emptyDir.medium",
    ),
    (
        "pod",
        "  initContainers: [{name: i, image: busybox, ports: [{containerPort: 80}]}]\n",
        "spec.initContainers[0].ports",
    ),
    (
        "pod",
        "  initContainers: [{name: i, image: busybox, startupProbe: {}}]\n",
        "spec.initContainers[0].startupProbe",
    ),
    (
        "ctr",
        "    livenessProbe: {exec: {command: [\"true\"]}}\n",
        "spec.containers[1].livenessProbe",
    ),
    (
        "ctr",
        "    readinessProbe: {}\n",
        "spec.containers[1].readinessProbe",
    ),
    (
        "ctr",
        "    lifecycle: {preStop: {}}\n",
        "spec.containers[1].lifecycle",
    ),
    (
        "ctr",
        "    envFrom: [{configMapRef: {name: c}}]\n",
        "spec.containers[1].envFrom",
    ),
    ("ctr", "    stdin: true\n", "spec.containers[1].stdin"),
    ("ctr", "    tty: true\n", "spec.containers[1].tty"),
    (
        "ctr",
        "    terminationMessagePath: /x\n",
        "spec.containers[1].terminationMessagePath",
    ),
    (
        "ctr",
        "    imagePullPolicy: Always\n",
        "spec.containers[1].imagePullPolicy",
    ),
    (
        "ctr",
        "    env: [{name: S, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n",
        "spec.containers[1].env[0].valueFrom.secretKeyRef",
    ),
    (
        "ctr",
        "    env: [{name: N, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]\n",
        "spec.containers[1].env[0].valueFrom.fieldRef.fieldPath",
    ),
    (
        "ctr",
        "    resources: {limits: {nvidia.com/gpu: 1}}\n",
        "spec.containers[1].resources.limits.nvidia.com/gpu",
    ),
    (
        "ctr",
        "    securityContext: {seLinuxOptions: {level: s0}}\n",
        "spec.containers[1].securityContext.seLinuxOptions",
    ),
    (
        "ctr",
        "    securityContext: {procMount: Unmasked}\n",
        "spec.containers[1].securityContext.procMount",
    ),
    (
        "meta",
        "  ownerReferences: [{kind: X}]\n",
        "metadata.ownerReferences",
    ),
    ("meta", "  finalizers: [x]\n", "metadata.finalizers"),
];

#[test]
fn every_unsupported_field_is_refused_by_its_path() {
    for (at, text, path) in CASES {
        let doc = match *at {
            "pod" => manifest("", text, ""),
            "ctr" => manifest("", "", text),
            _ => manifest(text, "", ""),
        };
        let out = dry_run(&doc, &[]);
        assert_eq!(out.status.code(), Some(1), "{path}: {out}");
        let want = format!("podrun: <stdin>: {path}: ");
        assert!(out.stderr.starts_with(&want), "want {want:?}: {out}");
        assert!(
            out.stdout.is_empty(),
            "{path}: nothing printed on refusal: {out}"
        );

        let out = dry_run(&doc, &["--ignore-unsupported"]);
        assert!(out.success(), "{path} with --ignore-unsupported: {out}");
        assert!(
            out.stderr.contains(&format!("<stdin>: {path}: ")) && out.stderr.contains("(ignored)"),
            "{path}: the warning names the path: {out}"
        );
        let pods: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
        assert_eq!(pods[0]["name"], "p", "{out}");
    }
}

#[test]
fn bad_values_are_errors_even_with_ignore_unsupported() {
    for (doc, path) in [
        (
            manifest("", "  restartPolicy: Sometimes\n", ""),
            "spec.restartPolicy",
        ),
        (
            manifest("", "", "    resources: {limits: {memory: 12Q}}\n"),
            "spec.containers[1].resources.limits.memory",
        ),
        (
            manifest("", "", "    ports: [{containerPort: 0}]\n"),
            "spec.containers[1].ports[0].containerPort",
        ),
        (
            manifest("", "", "    volumeMounts: [{name: nope, mountPath: /x}]\n"),
            "spec.containers[1].volumeMounts[0].name",
        ),
        (
            manifest(
                "  annotations: {kubernetes.io/ingress-bandwidth: 1}\n",
                "",
                "",
            ),
            "metadata.annotations.kubernetes.io/ingress-bandwidth",
        ),
        (
            manifest("", "", "").replace("name: b", "name: a"),
            "spec.containers[1].name",
        ),
        (
            manifest("", "", "").replace("kind: Pod", "kind: Deployment"),
            "kind",
        ),
    ] {
        let out = dry_run(&doc, &["--ignore-unsupported"]);
        assert_eq!(out.status.code(), Some(1), "{path}: {out}");
        let want = format!("podrun: <stdin>: {path}: ");
        assert!(out.stderr.starts_with(&want), "want {want:?}: {out}");
    }
}

#[test]
fn files_stdin_json_and_several_documents() {
    let dir = tempfile::tempdir().unwrap();
    let two = format!(
        "{}---\n{}",
        manifest("", "", ""),
        manifest("", "", "").replace("name: p\n", "name: q\n")
    );
    let yaml = dir.path().join("pods.yaml");
    std::fs::write(&yaml, &two).unwrap();
    let mut cmd = Command::new(netboot_tests::bin_path("podrun"));
    cmd.args(["run", "--dry-run", "-f"]).arg(&yaml);
    let out = exec::run(cmd, None, Duration::from_secs(30)).expect_ok();
    let pods: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let names: Vec<&str> = pods
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["p", "q"]);
    assert_eq!(pods[0]["kube"]["namespace"], "default");

    // The same pod twice is an error naming the second document.
    let out = dry_run(&format!("{0}---\n{0}", manifest("", "", "")), &[]);
    assert!(
        out.stderr
            .contains("metadata.name: pod \"p\" appears twice"),
        "{out}"
    );

    let json = dir.path().join("pod.json");
    std::fs::write(
        &json,
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j","namespace":"shop"},
            "spec":{"containers":[{"name":"c","image":"busybox","livenessProbe":{}}]}}"#,
    )
    .unwrap();
    let mut cmd = Command::new(netboot_tests::bin_path("podrun"));
    cmd.args(["run", "--dry-run", "-f"]).arg(&json);
    let out = exec::run(cmd, None, Duration::from_secs(30));
    let want = format!(
        "podrun: {}: spec.containers[0].livenessProbe: ",
        json.display()
    );
    assert!(out.stderr.starts_with(&want), "{out}");

    // podrun's own format still works, through the same flag.
    let own = "name: own\ncontainers: [{name: c, image: busybox}]\n";
    let out = dry_run(own, &[]).expect_ok();
    let pods: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(pods[0]["name"], "own");
    assert!(pods[0].get("kube").is_none(), "{out}");
    let out = dry_run(
        "name: own\ncontainers: [{name: c, image: busybox, livenessProbe: {}}]\n",
        &[],
    );
    assert!(
        out.stderr
            .contains("containers[0]: unknown field `livenessProbe`"),
        "{out}"
    );
}
