//! Kubernetes Pod manifests with env, limits and securityContext, run by
//! podrun on a real containerd and runc, each setting proven from inside
//! the container (or from its cgroup): users and groups, capabilities,
//! no_new_privs, read-only root, privileged, and runAsNonRoot refused.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use netboot_tests::containerd::{PodNode, BUSYBOX, NAMESPACE};
use netboot_tests::exec::CmdOutput;
use netboot_tests::require_root;

/// `podrun run -f <name>.yaml` with `yaml` written to the node's dir.
fn run_manifest(n: &PodNode, name: &str, yaml: &str) -> CmdOutput {
    let file = n.node.dir().join(format!("{name}.yaml"));
    fs::write(&file, yaml).expect("write manifest");
    n.podrun(&["run", "-f", file.to_str().expect("utf-8")])
}

/// `podrun exec POD C -- sh -c SCRIPT`, which must succeed; its stdout.
fn sh(n: &PodNode, pod: &str, c: &str, script: &str) -> String {
    n.podrun(&["exec", pod, c, "--", "sh", "-c", script])
        .expect_ok()
        .stdout
}

/// A `Key:\tvalue` line of a /proc status text.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
}

/// The `CapEff` mask of a /proc status text.
fn cap_eff(status: &str) -> u64 {
    u64::from_str_radix(status_field(status, "CapEff"), 16).expect("hex CapEff")
}

/// A file of container `c`'s cgroup, read on the node: v1 under the
/// controller's hierarchy, v2 in the unified one.
fn cgroup_file(n: &PodNode, pod: &str, c: &str, v1: (&str, &str), v2: &str) -> String {
    let id = format!("{pod}-{}.{c}", n.pr.instance());
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let p = if unified {
        format!("/sys/fs/cgroup/{NAMESPACE}/{id}/{v2}")
    } else {
        format!("/sys/fs/cgroup/{}/{NAMESPACE}/{id}/{}", v1.0, v1.1)
    };
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn env_values_and_limits_reach_the_container() {
    require_root();
    let n = PodNode::new("sv-env", "10.88.42.1/24");
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: envlim, namespace: shop}}
spec:
  containers:
    - name: app
      image: {BUSYBOX}
      command: [sleep, "1000"]
      env:
        - {{name: GREETING, value: "hello manifest"}}
        - name: MY_NS
          valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
      resources:
        limits: {{memory: 32Mi, cpu: 250m}}
        requests: {{cpu: 100m}}
"#
    );
    run_manifest(&n, "envlim", &yaml).expect_ok();
    assert_eq!(
        sh(&n, "envlim", "app", "echo \"$GREETING/$MY_NS\""),
        "hello manifest/shop\n"
    );
    // The init process has it too, not only exec'd ones.
    let environ = sh(&n, "envlim", "app", "tr '\\0' '\\n' < /proc/1/environ");
    assert!(
        environ.lines().any(|l| l == "GREETING=hello manifest"),
        "{environ}"
    );
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let mem = cgroup_file(
        &n,
        "envlim",
        "app",
        ("memory", "memory.limit_in_bytes"),
        "memory.max",
    );
    assert_eq!(mem, "33554432");
    if unified {
        let cpu = cgroup_file(&n, "envlim", "app", ("cpu", ""), "cpu.max");
        assert_eq!(cpu, "25000 100000");
    } else {
        let quota = cgroup_file(&n, "envlim", "app", ("cpu", "cpu.cfs_quota_us"), "");
        assert_eq!(quota, "25000");
        let shares = cgroup_file(&n, "envlim", "app", ("cpu", "cpu.shares"), "");
        assert_eq!(shares, "102", "100m requested: 102 shares, as the kubelet");
        // Seen from inside as well (v1 mounts the container's own cgroup).
        let inside = sh(
            &n,
            "envlim",
            "app",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
        );
        assert_eq!(inside, "33554432\n");
    }
    n.podrun(&["rm", "envlim", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

#[test]
fn security_context_sets_users_groups_caps_and_read_only_root() {
    require_root();
    let n = PodNode::new("sv-sec", "10.88.43.1/24");
    let sleeper = |name: &str, sc: &str| {
        format!(
            "    - name: {name}\n      image: {BUSYBOX}\n      command: [sleep, \"1000\"]\n      \
             securityContext: {sc}\n      volumeMounts: [{{name: scratch, mountPath: /scratch}}]\n"
        )
    };
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: sec}}\nspec:\n  securityContext:\n    \
         runAsUser: 1234\n    runAsGroup: 5678\n    supplementalGroups: [11, 12]\n  \
         volumes: [{{name: scratch, emptyDir: {{}}}}]\n  containers:\n{}{}{}{}",
        sleeper("ids", "{}"),
        sleeper(
            "caps",
            "{runAsUser: 0, allowPrivilegeEscalation: false, \
             capabilities: {add: [NET_ADMIN], drop: [CHOWN, CAP_KILL]}}"
        ),
        sleeper("ro", "{readOnlyRootFilesystem: true}"),
        sleeper("priv", "{runAsUser: 0, privileged: true}"),
    );
    run_manifest(&n, "sec", &yaml).expect_ok();

    // Pod-level user and groups, in the container's init and in exec.
    let init = sh(&n, "sec", "ids", "cat /proc/1/status");
    assert!(status_field(&init, "Uid").starts_with("1234\t"), "{init}");
    assert!(status_field(&init, "Gid").starts_with("5678\t"), "{init}");
    let groups: BTreeSet<&str> = status_field(&init, "Groups").split_whitespace().collect();
    assert_eq!(groups, BTreeSet::from(["11", "12", "5678"]));
    assert_eq!(sh(&n, "sec", "ids", "id -u; id -g"), "1234\n5678\n");
    assert_eq!(
        status_field(&init, "NoNewPrivs"),
        "0",
        "Kubernetes' default"
    );
    assert_eq!(
        cap_eff(&init),
        0,
        "a non-root process has no effective caps"
    );

    // Container settings over the pod's; add and drop reach CapEff.
    let caps = sh(&n, "sec", "caps", "cat /proc/1/status");
    assert!(status_field(&caps, "Uid").starts_with("0\t"), "{caps}");
    let eff = cap_eff(&caps);
    let bit = |b: u32| eff & (1 << b) != 0;
    assert!(bit(12), "NET_ADMIN added: {eff:x}");
    assert!(!bit(0) && !bit(5), "CHOWN and KILL dropped: {eff:x}");
    assert!(
        bit(1) && bit(10),
        "DAC_OVERRIDE, NET_BIND_SERVICE kept: {eff:x}"
    );
    assert!(!bit(21), "SYS_ADMIN not in the default set: {eff:x}");
    assert_eq!(status_field(&caps, "NoNewPrivs"), "1");
    let chown = n.podrun(&[
        "exec",
        "sec",
        "caps",
        "--",
        "sh",
        "-c",
        "touch /tmp/f && chown 5 /tmp/f",
    ]);
    assert!(
        !chown.success() && chown.stderr.contains("not permitted"),
        "{chown}"
    );

    // Read-only root: writes fail but to volumes.
    let w = n.podrun(&["exec", "sec", "ro", "--", "touch", "/newfile"]);
    assert!(
        !w.success() && w.stderr.contains("Read-only file system"),
        "{w}"
    );
    sh(&n, "sec", "ro", "echo ok > /scratch/from-ro");
    // (The ids container, writable root, for contrast.)
    assert_eq!(sh(&n, "sec", "caps", "touch /newfile && echo ok"), "ok\n");

    // Privileged: every capability podrun has, /sys writable, nothing
    // masked, the node's devices present and allowed.
    let priv_status = sh(&n, "sec", "priv", "cat /proc/1/status");
    let mine = fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(cap_eff(&priv_status), cap_eff(&mine));
    let mounts = sh(&n, "sec", "priv", "cat /proc/mounts");
    assert!(
        mounts
            .lines()
            .any(|l| l.starts_with("sysfs /sys sysfs rw,")),
        "{mounts}"
    );
    assert!(
        !mounts.contains(" /proc/kcore "),
        "masked in privileged: {mounts}"
    );
    let plain = sh(&n, "sec", "caps", "cat /proc/mounts");
    assert!(
        plain.lines().any(|l| l.starts_with("sysfs /sys sysfs ro,")),
        "{plain}"
    );
    assert!(plain.contains(" /proc/keys "), "keys not masked: {plain}");
    assert!(
        plain.contains("proc /proc/sys proc ro,"),
        "/proc/sys writable: {plain}"
    );
    if Path::new("/dev/kmsg").exists() {
        assert_eq!(
            sh(&n, "sec", "priv", "test -c /dev/kmsg && echo dev"),
            "dev\n"
        );
        assert_eq!(
            sh(&n, "sec", "caps", "test -e /dev/kmsg || echo none"),
            "none\n"
        );
    }
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let list = cgroup_file(&n, "sec", "priv", ("devices", "devices.list"), "");
        assert_eq!(list, "a *:* rwm");
    }
    n.podrun(&["rm", "sec", "--grace", "0"]).expect_ok();
    n.assert_clean();
}

#[test]
fn refusals_name_the_container_or_the_field_and_leave_nothing() {
    require_root();
    let n = PodNode::new("sv-root", "10.88.44.1/24");
    let pod = |name: &str, pod_extra: &str, c_extra: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n{pod_extra}  containers:\n  \
             - name: first\n    image: {BUSYBOX}\n    command: [sleep, \"1000\"]\n  \
             - name: web\n    image: {BUSYBOX}\n    command: [sleep, \"1000\"]\n{c_extra}"
        )
    };
    let cases = [
        (
            pod("nonroot", "", "    securityContext: {runAsNonRoot: true}\n"),
            "container has runAsNonRoot and image will run as root (pod: \"nonroot\", container: web)",
        ),
        (
            pod(
                "nonroot0",
                "",
                "    securityContext: {runAsNonRoot: true, runAsUser: 0}\n",
            ),
            "container's runAsUser breaks non-root policy",
        ),
        (
            pod("badcap", "", "    securityContext: {capabilities: {add: [NET_ADMIN, WIZARD]}}\n"),
            "spec.containers[1].securityContext.capabilities.add[1]: \"WIZARD\" is not a Linux capability",
        ),
        (
            pod("sizelimit", "  volumes: [{name: v, emptyDir: {sizeLimit: 1Gi}}]\n", ""),
            "spec.volumes[0].emptyDir.sizeLimit",
        ),
    ];
    for (yaml, want) in cases {
        let out = run_manifest(&n, "refused", &yaml);
        assert!(!out.success(), "{out}");
        assert!(out.stderr.contains(want), "want {want:?}: {out}");
        n.assert_clean();
    }
    // The same pod with a non-root user runs.
    let ok = pod(
        "nonroot",
        "",
        "    securityContext: {runAsNonRoot: true, runAsUser: 1000}\n",
    );
    run_manifest(&n, "ok", &ok).expect_ok();
    assert_eq!(sh(&n, "nonroot", "web", "id -u"), "1000\n");
    n.podrun(&["rm", "nonroot", "--grace", "0"]).expect_ok();
    n.assert_clean();
}
