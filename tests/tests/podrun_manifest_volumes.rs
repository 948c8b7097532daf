//! Kubernetes Pod manifests with volumes, run by podrun on a real
//! containerd and runc: emptyDir shared between containers, a memory
//! emptyDir as a tmpfs of its sizeLimit, fsGroup, subPath, hostPath
//! types checked (and created) before anything exists, and `rm` leaving
//! no directory and no mount behind.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netboot_tests::containerd::{PodNode, BUSYBOX};
use netboot_tests::exec::CmdOutput;
use netboot_tests::{require_root, retry};

/// `podrun run -f <name>.yaml` with `yaml` written to the node's dir.
fn run_manifest(n: &PodNode, name: &str, yaml: &str) -> CmdOutput {
    let file = n.node.dir().join(format!("{name}.yaml"));
    fs::write(&file, yaml).expect("write manifest");
    n.podrun(&["run", "-f", file.to_str().expect("utf-8")])
}

/// `podrun exec POD C -- sh -c SCRIPT`.
fn sh(n: &PodNode, pod: &str, c: &str, script: &str) -> CmdOutput {
    n.podrun(&["exec", pod, c, "--", "sh", "-c", script])
}

/// Mount points of this process's mount namespace (podrun's) under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&dir))
        .map(String::from)
        .collect()
}

#[test]
fn empty_dirs_are_shared_memory_ones_are_tmpfs_and_rm_removes_both() {
    require_root();
    let n = PodNode::new("sv-vol", "10.88.40.1/24");
    let yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: vols
spec:
  securityContext:
    fsGroup: 4321
  volumes:
    - name: shared
      emptyDir: {{}}
    - name: mem
      emptyDir:
        medium: Memory
        sizeLimit: 8Mi
  containers:
    - name: writer
      image: {BUSYBOX}
      command: [sh, -c, "echo from-writer > /shared/msg; echo in-memory > /mem/m; sleep 1000"]
      volumeMounts:
        - {{name: shared, mountPath: /shared}}
        - {{name: mem, mountPath: /mem}}
    - name: reader
      image: {BUSYBOX}
      command: [sleep, "1000"]
      securityContext:
        runAsUser: 1234
      volumeMounts:
        - {{name: shared, mountPath: /in, readOnly: true}}
        - {{name: shared, mountPath: /sub, subPath: deep/dir}}
        - {{name: mem, mountPath: /mem}}
"#
    );
    run_manifest(&n, "vols", &yaml).expect_ok();
    // The reader sees what the writer wrote, in both volumes.
    let got = retry(40, Duration::from_millis(250), || {
        let o = sh(&n, "vols", "reader", "cat /in/msg /mem/m");
        o.success().then_some(o.stdout)
    });
    assert_eq!(got.as_deref(), Some("from-writer\nin-memory\n"));
    // readOnly is enforced; the subPath was made inside the volume and
    // is the same directory for both containers.
    let w = sh(&n, "vols", "reader", "touch /in/x");
    assert!(!w.success() && w.stderr.contains("Read-only"), "{w}");
    sh(&n, "vols", "reader", "echo s > /sub/f").expect_ok();
    let o = sh(&n, "vols", "writer", "cat /shared/deep/dir/f").expect_ok();
    assert_eq!(o.stdout, "s\n");
    // fsGroup: the volume is group-owned and setgid, the non-root reader
    // has the group and can write there.
    let o = sh(&n, "vols", "reader", "stat -c '%a %g' /in /mem; id -G").expect_ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[..2], ["2777 4321", "2777 4321"], "{o}");
    assert!(lines[2].split_whitespace().any(|g| g == "4321"), "{o}");
    let o = sh(
        &n,
        "vols",
        "reader",
        "echo mine > /mem/r; stat -c '%u %g' /mem/r",
    )
    .expect_ok();
    assert_eq!(o.stdout, "1234 4321\n", "new files take the fsGroup");
    // The memory volume is a tmpfs of sizeLimit, inside and on the node.
    let o = sh(&n, "vols", "reader", "grep ' /mem ' /proc/mounts").expect_ok();
    assert!(o.stdout.starts_with("tmpfs /mem tmpfs "), "{o}");
    assert!(o.stdout.contains("size=8192k"), "{o}");
    let full = sh(
        &n,
        "vols",
        "writer",
        "dd if=/dev/zero of=/mem/big bs=1M count=16",
    );
    assert!(!full.success(), "wrote 16M into an 8Mi tmpfs: {full}");
    let pod_dir = n.pr.pod_dir("vols").canonicalize().expect("pod dir");
    let vol_dir = pod_dir.join("volumes");
    assert_eq!(
        mounts_under(&vol_dir),
        [vol_dir.join("mem").display().to_string()]
    );
    assert!(vol_dir.join("shared/msg").is_file());

    n.podrun(&["rm", "vols", "--grace", "0"]).expect_ok();
    assert_eq!(mounts_under(&vol_dir), Vec::<String>::new(), "tmpfs left");
    assert!(!pod_dir.exists(), "pod dir left");
    n.assert_clean();
}

/// A host dir of the node for the tests' hostPath volumes.
fn host_dir(n: &PodNode, name: &str) -> PathBuf {
    n.node.data_dir(name).canonicalize().expect("canonical")
}

#[test]
fn host_path_types_are_checked_before_anything_is_created() {
    require_root();
    let n = PodNode::new("sv-host", "10.88.41.1/24");
    let base = host_dir(&n, "host");
    let made = base.join("made/here");
    let yaml = |name: &str, volumes: &str, mounts: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  volumes:\n{volumes}  \
             containers:\n    - name: c\n      image: {BUSYBOX}\n      command: [sleep, \"1000\"]\n      \
             volumeMounts:\n{mounts}"
        )
    };
    // File on a directory is refused naming the field and the path; the
    // DirectoryOrCreate before it is not created, nothing of the pod is.
    let bad = yaml(
        "hp-bad",
        &format!(
            "    - {{name: a, hostPath: {{path: {}, type: DirectoryOrCreate}}}}\n    \
             - {{name: b, hostPath: {{path: {}, type: File}}}}\n",
            made.display(),
            base.display()
        ),
        "        - {name: a, mountPath: /a}\n        - {name: b, mountPath: /b}\n",
    );
    let out = run_manifest(&n, "hp-bad", &bad);
    assert!(!out.success(), "{out}");
    let want = format!(
        "spec.volumes[1].hostPath.type: File wants a regular file at {}, found a directory",
        base.display()
    );
    assert!(out.stderr.contains(&want), "want {want:?}: {out}");
    assert!(!made.exists(), "created before the refusal");
    n.assert_clean();

    // DirectoryOrCreate makes the directory (0755); the container's
    // write lands on the node; FileOrCreate makes an empty file.
    fs::write(base.join("conf"), "setting=1\n").expect("write");
    let good = yaml(
        "hp-good",
        &format!(
            "    - {{name: a, hostPath: {{path: {}, type: DirectoryOrCreate}}}}\n    \
             - {{name: f, hostPath: {{path: {}/conf, type: File}}}}\n    \
             - {{name: n, hostPath: {{path: {}/new.log, type: FileOrCreate}}}}\n",
            made.display(),
            base.display(),
            base.display()
        ),
        "        - {name: a, mountPath: /a}\n        - {name: f, mountPath: /etc/app.conf, readOnly: true}\n        \
         - {name: n, mountPath: /log}\n",
    );
    run_manifest(&n, "hp-good", &good).expect_ok();
    assert_eq!(fs::metadata(&made).expect("made").mode() & 0o7777, 0o755);
    let o = sh(
        &n,
        "hp-good",
        "c",
        "echo hi > /a/x; cat /etc/app.conf; echo line >> /log",
    )
    .expect_ok();
    assert_eq!(o.stdout, "setting=1\n");
    assert_eq!(fs::read_to_string(made.join("x")).expect("x"), "hi\n");
    assert_eq!(
        fs::read_to_string(base.join("new.log")).expect("log"),
        "line\n"
    );
    n.podrun(&["rm", "hp-good", "--grace", "0"]).expect_ok();
    assert!(
        made.join("x").exists(),
        "a hostPath is the node's: rm keeps it"
    );
    n.assert_clean();

    // A subPath that leads out of its volume through a symlink is refused
    // when the container is created: the pod is rolled back.
    std::os::unix::fs::symlink("/etc", base.join("escape")).expect("symlink");
    let esc = yaml(
        "hp-esc",
        &format!(
            "    - {{name: h, hostPath: {{path: {}}}}}\n",
            base.display()
        ),
        "        - {name: h, mountPath: /x, subPath: escape}\n",
    );
    let out = run_manifest(&n, "hp-esc", &esc);
    assert!(!out.success(), "{out}");
    assert!(
        out.stderr
            .contains("spec.containers[0].volumeMounts[0].subPath"),
        "{out}"
    );
    assert!(out.stderr.contains("leads out of the volume"), "{out}");
    n.assert_clean();
}
