use std::net::IpAddr;
use std::path::PathBuf;

use super::*;
use crate::spec::{
    env_map, DnsOption, DnsPolicy, EmptyDirSource, HostPathType, MemorySize, RestartPolicy,
};

const FULL: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations:
    kubernetes.io/ingress-bandwidth: 10M
    kubernetes.io/egress-bandwidth: 1Gi
    note: hi
spec:
  hostname: web-1
  subdomain: svc
  hostNetwork: false
  dnsPolicy: None
  dnsConfig:
    nameservers: [10.0.0.10]
    searches: [shop.svc.local]
    options: [{name: ndots, value: "2"}, {name: edns0}]
  terminationGracePeriodSeconds: 5
  restartPolicy: Never
  securityContext: {runAsUser: 1000, fsGroup: 2000, supplementalGroups: [3, 4]}
  volumes:
    - name: www
      hostPath: {path: /srv/www, type: Directory}
    - name: scratch
      emptyDir: {medium: Memory, sizeLimit: 64Mi}
  initContainers:
    - name: setup
      image: busybox
      command: [sh, -c, "true"]
  containers:
    - name: httpd
      image: docker.io/library/busybox:latest
      imagePullPolicy: IfNotPresent
      command: [httpd, -f]
      args: [-p, "80"]
      workingDir: /www
      env:
        - {name: A, value: "1"}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: NS
          valueFrom: {fieldRef: {apiVersion: v1, fieldPath: metadata.namespace}}
        - name: IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
      ports:
        - {name: http, containerPort: 80, hostPort: 8080, hostIP: 127.0.0.1}
        - {containerPort: 53, protocol: UDP}
      resources:
        limits: {cpu: 500m, memory: 64Mi}
        requests: {cpu: 0.25, memory: 1e6}
      volumeMounts:
        - {name: www, mountPath: /www, readOnly: true}
        - {name: www, mountPath: /logs, subPath: logs}
        - {name: scratch, mountPath: /tmp}
      securityContext:
        runAsUser: 1
        readOnlyRootFilesystem: true
        capabilities: {add: [NET_ADMIN], drop: [ALL]}
"#;

fn one(doc: &str) -> KubePod {
    let mut pods = from_yaml(doc, Options::default()).unwrap();
    assert_eq!(pods.len(), 1);
    pods.remove(0)
}

fn err(doc: &str) -> String {
    from_yaml(doc, Options::default()).unwrap_err().to_string()
}

/// A minimal pod with `extra` appended under its only container.
fn with_container(extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers:\n  - name: a\n    image: i\n  - name: b\n    image: i\n{extra}"
    )
}

#[test]
fn metadata_and_pod_fields_map() {
    let p = one(FULL);
    assert_eq!(p.spec.name, "web");
    assert_eq!(p.spec.hostname(), "web-1");
    let k = p.spec.kube.as_ref().unwrap();
    assert_eq!(k.namespace, "shop");
    assert_eq!(k.labels["app"], "web");
    assert_eq!(k.annotations.len(), 3);
    let bw = p.spec.bandwidth.unwrap();
    assert_eq!(bw.ingress_rate, Some(10_000_000));
    assert_eq!(bw.egress_rate, Some(1 << 30));
    assert_eq!(p.spec.subdomain.as_deref(), Some("svc"));
    assert!(!p.spec.host_network);
    assert_eq!(p.spec.dns_policy, Some(DnsPolicy::None));
    let dns = p.spec.dns_config.as_ref().unwrap();
    assert_eq!(
        dns.nameservers,
        vec!["10.0.0.10".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(dns.searches, vec!["shop.svc.local".to_string()]);
    let opt = |name: &str, value: Option<&str>| DnsOption {
        name: name.into(),
        value: value.map(Into::into),
    };
    assert_eq!(
        dns.options,
        vec![opt("ndots", Some("2")), opt("edns0", None)]
    );
    assert_eq!(p.spec.termination_grace_period_seconds, Some(5));
    assert_eq!(p.spec.restart_policy, Some(RestartPolicy::Never));
    let sc = p.spec.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(1000));
    assert_eq!(sc.fs_group, Some(2000));
    assert_eq!(sc.supplemental_groups, vec![3, 4]);
    assert_eq!(p.spec.init_containers[0].name, "setup");
    assert!(p.warnings.is_empty());
}

#[test]
fn container_fields_map() {
    let p = one(FULL);
    let c = &p.spec.containers[0];
    assert_eq!(c.image, "docker.io/library/busybox:latest");
    assert_eq!(
        c.command.as_deref(),
        Some(&["httpd".to_string(), "-f".into()][..])
    );
    assert_eq!(c.args.as_ref().unwrap()[1], "80");
    assert_eq!(c.working_dir.as_deref(), Some("/www"));
    let env = env_map(&c.env);
    assert_eq!(env["A"], "1");
    assert_eq!(env["POD"], "web");
    assert_eq!(env["NS"], "shop");
    assert_eq!(env["IP"], "", "placeholder until the pod has an address");
    assert_eq!(c.pod_ip_env, vec!["IP".to_string()]);
    assert_eq!(c.resources.cpus.unwrap().quota_us(), 50_000);
    assert_eq!(c.resources.memory, Some(MemorySize(64 << 20)));
    assert_eq!(c.resources.cpu_shares, Some(256));
    assert_eq!(c.resources.memory_request, Some(MemorySize(1_000_000)));
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.run_as_user, Some(1));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    let caps = sc.capabilities.as_ref().unwrap();
    assert_eq!(caps.add, vec!["NET_ADMIN".to_string()]);
    assert_eq!(caps.drop, vec!["ALL".to_string()]);
}

#[test]
fn pod_ip_placeholder_is_resolved_then_references_expanded() {
    let mut p = one(FULL);
    p.spec.resolve(Some("10.1.2.3".parse().unwrap()));
    assert_eq!(env_map(&p.spec.containers[0].env)["IP"], "10.1.2.3");
    assert_eq!(env_map(&p.spec.containers[0].env)["A"], "1");
    let doc = with_container(
        "    env:\n    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: URL, value: \"http://$(IP):$(PORT)\"}\n    - {name: PORT, value: \"80\"}\n    args: [\"$(URL)\", \"$(PORT)\", \"$$(IP)\"]\n",
    );
    let mut p = one(&doc);
    p.spec.resolve(Some("fd00::5".parse().unwrap()));
    let c = &p.spec.containers[1];
    // PORT is defined after URL, so URL keeps its reference (as Kubernetes).
    assert_eq!(env_map(&c.env)["URL"], "http://fd00::5:$(PORT)");
    assert_eq!(
        c.args.as_ref().unwrap(),
        &["http://fd00::5:$(PORT)", "80", "$(IP)"]
    );
}

#[test]
fn ports_become_pod_ports() {
    let p = one(FULL);
    assert_eq!(p.spec.ports.len(), 2);
    assert_eq!(p.spec.ports[0].host_port, Some(8080));
    assert_eq!(p.spec.ports[0].host_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(p.spec.ports[1].protocol, "udp");
    assert_eq!(p.spec.ports[0].protocol, "tcp");
    assert_eq!(p.spec.ports[0].name.as_deref(), Some("http"));
    assert_eq!(p.spec.port_mappings().len(), 1);
}

#[test]
fn volumes_map_to_mounts_or_are_kept() {
    let p = one(FULL);
    let m = &p.spec.containers[0].volume_mounts;
    assert_eq!(m.len(), 3);
    assert_eq!((m[0].name.as_str(), m[0].read_only), ("www", true));
    assert_eq!(m[1].sub_path.as_deref(), Some("logs"));
    assert_eq!(m[1].mount_path, PathBuf::from("/logs"));
    assert_eq!(m[2].name, "scratch");
    assert_eq!(m[2].mount_path, PathBuf::from("/tmp"));
    let by_name = |n: &str| p.spec.volumes.iter().find(|v| v.name == n).unwrap();
    let www = by_name("www").host_path.as_ref().unwrap();
    assert_eq!(www.path, PathBuf::from("/srv/www"));
    assert_eq!(www.kind, Some(HostPathType::Directory));
    assert_eq!(
        by_name("scratch").empty_dir,
        Some(EmptyDirSource {
            medium: Some("Memory".into()),
            size_limit: Some(MemorySize(64 << 20))
        })
    );
}

#[test]
fn json_and_multi_document_yaml() {
    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
        "spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":1,"memory":1e7}}}]}}"#;
    let p = &from_json(json, Options::default()).unwrap()[0];
    assert_eq!(p.spec.name, "j");
    assert_eq!(p.spec.kube.as_ref().unwrap().namespace, "default");
    assert_eq!(
        p.spec.containers[0].resources.memory,
        Some(MemorySize(10_000_000))
    );
    let two = format!(
        "---\n{}\n---\n{}\n---\n",
        with_container(""),
        with_container("").replace("name: p", "name: q")
    );
    let pods = from_yaml(&two, Options::default()).unwrap();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[1].spec.name, "q");
    // A bad field in the second document is named with the document.
    let bad = format!(
        "{}\n---\n{}",
        with_container(""),
        with_container("    livenessProbe: {}\n")
    );
    assert_eq!(
        err(&bad),
        "documents[1].spec.containers[1].livenessProbe: field \"livenessProbe\" is not supported by podrun"
    );
    assert!(err(&format!(
        "{}\n---\n{}",
        with_container(""),
        with_container("")
    ))
    .contains("twice"));
}

#[test]
fn unsupported_fields_are_refused_by_path() {
    let cases = [
        ("    livenessProbe: {}\n", "spec.containers[1].livenessProbe"),
        ("    lifecycle: {}\n", "spec.containers[1].lifecycle"),
        ("    resources: {limits: {nvidia.com/gpu: 1}}\n", "spec.containers[1].resources.limits.nvidia.com/gpu"),
        ("    resources: {requests: {ephemeral-storage: 1Gi}}\n", "spec.containers[1].resources.requests.ephemeral-storage"),
        ("    securityContext: {seccompProfile: {type: RuntimeDefault}}\n", "spec.containers[1].securityContext.seccompProfile"),
        ("    env: [{name: X, valueFrom: {secretKeyRef: {name: s, key: k}}}]\n", "spec.containers[1].env[0].valueFrom.secretKeyRef"),
        ("    env: [{name: X, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}]\n", "spec.containers[1].env[0].valueFrom.fieldRef.fieldPath"),
        ("    volumeMounts: [{name: v, mountPath: /v, mountPropagation: Bidirectional}]\n  volumes: [{name: v, emptyDir: {}}]\n", "spec.containers[1].volumeMounts[0].mountPropagation"),
        ("  volumes: [{name: v, configMap: {name: c}}]\n", "spec.volumes[0].configMap"),
        ("  volumes: [{name: v, emptyDir: {medium: HugePages}}]\n", "spec.volumes[0].emptyDir.medium"),
        ("  nodeSelector: {a: b}\n", "spec.nodeSelector"),
        ("  tolerations: []\n", "spec.tolerations"),
        ("status: {phase: Running}\n", "status"),
        ("  initContainers: [{name: i, image: i, ports: [{containerPort: 1}]}]\n", "spec.initContainers[0].ports"),
    ];
    for (extra, path) in cases {
        let doc = with_container(extra);
        let e = err(&doc);
        assert!(
            e.starts_with(&format!("{path}: ")) && e.contains("not supported"),
            "{extra:?}: {e}"
        );
        // With the flag, the same field is a warning and the pod maps.
        let opts = Options {
            ignore_unsupported: true,
        };
        let p = &from_yaml(&doc, opts).unwrap()[0];
        assert!(
            p.warnings.iter().any(|w| w.path == path),
            "{extra:?}: {:?}",
            p.warnings
        );
    }
    let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: p, uid: x}\nspec: {containers: [{name: a, image: i}]}\n");
    assert!(e.starts_with("metadata.uid: "), "{e}");
}

#[test]
fn bad_values_are_errors_even_when_ignoring() {
    let cases = [
        ("    resources: {limits: {memory: 12Q}}\n", "spec.containers[1].resources.limits.memory"),
        ("    resources: {limits: {cpu: -1}}\n", "spec.containers[1].resources.limits.cpu"),
        ("    resources: {limits: {cpu: 1m}}\n", "spec.containers[1].resources.limits.cpu"),
        ("    ports: [{containerPort: 70000}]\n", "spec.containers[1].ports[0].containerPort"),
        ("    ports: [{containerPort: 80, hostIP: nope}]\n", "spec.containers[1].ports[0].hostIP"),
        ("    env: [{name: X, value: a, valueFrom: {}}]\n", "spec.containers[1].env[0]"),
        ("    volumeMounts: [{name: missing, mountPath: /m}]\n", "spec.containers[1].volumeMounts[0].name"),
        ("    volumeMounts: [{name: v, mountPath: rel}]\n  volumes: [{name: v, emptyDir: {}}]\n", "spec.containers[1].volumeMounts[0].mountPath"),
        ("    volumeMounts: [{name: v, mountPath: /m, subPath: ../x}]\n  volumes: [{name: v, emptyDir: {}}]\n", "spec.containers[1].volumeMounts[0].subPath"),
        ("  volumes: [{name: v, hostPath: {path: /x, type: Weird}}]\n", "spec.volumes[0].hostPath.type"),
        ("  volumes: [{name: v, emptyDir: {}}, {name: v, emptyDir: {}}]\n", "spec.volumes[1].name"),
        ("  restartPolicy: Sometimes\n", "spec.restartPolicy"),
        ("  dnsPolicy: Cluster\n", "spec.dnsPolicy"),
        ("  dnsConfig: {nameservers: [dns.example]}\n", "spec.dnsConfig.nameservers[0]"),
        ("  hostname: Bad_Name\n", "spec.hostname"),
        ("  hostNetwork: yes please\n", "spec.hostNetwork"),
        ("    image: 3\n", "spec.containers[1].image"),
    ];
    for (extra, path) in cases {
        let doc = with_container(extra);
        let opts = Options {
            ignore_unsupported: true,
        };
        let e = from_yaml(&doc, opts).unwrap_err();
        assert_eq!(e.path, path, "{extra:?}: {e}");
    }
}

#[test]
fn document_level_errors() {
    assert!(err("apiVersion: apps/v1\nkind: Pod\n").starts_with("apiVersion: "));
    assert!(err("apiVersion: v1\nkind: Service\n").starts_with("kind: "));
    assert!(err("apiVersion: v1\nkind: Pod\nspec: {}\n").starts_with("metadata: "));
    assert!(err("").contains("no Pod"));
    let long = with_container("").replace("name: p", &format!("name: {}", "x".repeat(50)));
    assert!(err(&long).starts_with("metadata.name: "), "{}", err(&long));
    let dup = with_container("").replace("name: b", "name: a");
    assert!(err(&dup).starts_with("spec.containers"), "{}", err(&dup));
    let init_dup = with_container("  initContainers: [{name: a, image: i}]\n");
    assert!(
        err(&init_dup).starts_with("spec.initContainers[0].name: "),
        "{}",
        err(&init_dup)
    );
}

#[test]
fn bandwidth_annotations_are_checked() {
    let doc = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {{kubernetes.io/ingress-bandwidth: \"{v}\"}}\nspec: {{containers: [{{name: a, image: i}}]}}\n"
        )
    };
    assert_eq!(
        one(&doc("1M")).spec.bandwidth.unwrap().ingress_rate,
        Some(1_000_000)
    );
    for bad in ["10", "2P", "fast"] {
        let e = err(&doc(bad));
        assert!(
            e.starts_with("metadata.annotations.kubernetes.io/ingress-bandwidth: "),
            "{e}"
        );
    }
}

#[test]
fn cpu_request_to_shares_follows_the_kubelet() {
    assert_eq!(container::milli_cpu_to_shares(0), 2);
    assert_eq!(container::milli_cpu_to_shares(1), 2);
    assert_eq!(container::milli_cpu_to_shares(1000), 1024);
    assert_eq!(container::milli_cpu_to_shares(100), 102);
    assert_eq!(container::milli_cpu_to_shares(1_000_000), 262_144);
}

#[test]
fn podrun_checks_speak_manifest_paths() {
    let small = with_container("    resources: {limits: {memory: 1Ki}}\n");
    assert!(
        err(&small).starts_with("spec.containers[1].resources.limits.memory: "),
        "{}",
        err(&small)
    );
    // A mount of a skipped (unsupported) volume is a warning, not an error.
    let cm = with_container("    volumeMounts: [{name: v, mountPath: /v}]\n  volumes: [{name: v, configMap: {name: c}}]\n");
    let p = &from_yaml(
        &cm,
        Options {
            ignore_unsupported: true,
        },
    )
    .unwrap()[0];
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
}

#[test]
fn kubectl_dry_run_output_is_accepted_as_is() {
    // `kubectl run web --image=busybox --dry-run=client -o yaml`
    let doc = "apiVersion: v1\nkind: Pod\nmetadata:\n  creationTimestamp: null\n  labels:\n    run: web\n  name: web\nspec:\n  containers:\n  - image: busybox\n    name: web\n    resources: {}\n  dnsPolicy: ClusterFirst\n  restartPolicy: Always\nstatus: {}\n";
    let p = one(doc);
    assert_eq!(p.spec.restart_policy, Some(RestartPolicy::Always));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let e = err(&doc.replace("status: {}", "status: {phase: Running}"));
    assert!(e.starts_with("status: "), "{e}");
}
