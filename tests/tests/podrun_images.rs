//! `podrun image import` against our own containerd (issue 16, section 3):
//! an OCI image layout and a `docker save` archive, built here from the
//! node's static busybox with layers no other test has (so that each is
//! really unpacked), are imported and then run by `podrun run`; bad
//! archives are refused by name and leave nothing; no lease outlives a
//! command; `CONTAINERD_NAMESPACE` picks the namespace.
//!
//! Needs root; nothing touches the root netns.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netboot_tests::containerd::{Containerd, PodNode, NAMESPACE};
use netboot_tests::image_archive::{
    busybox_layer, config, digest, docker, extra_layer, goarch, gzip, hex, oci, Archive, Layer,
    OCI_MANIFEST,
};
use netboot_tests::{bin_path, exec, require_root, retry};
use serde_json::json;

const OCI_NAME: &str = "docker.io/library/busybox:oci-imported";
const DOCKER_NAME: &str = "docker.io/library/busybox:docker-imported";

/// An architecture that is not ours, for an index entry to skip.
fn other_arch() -> &'static str {
    if goarch() == "s390x" {
        "riscv64"
    } else {
        "s390x"
    }
}

/// The test's OCI archive: an uncompressed busybox layer marked `oci`
/// and a gzip one; its index also lists another platform's manifest,
/// which the archive does not hold (as `ctr images export` of one
/// platform of a multi-platform image writes it).
fn oci_archive() -> Archive {
    let layers = [
        Layer::plain(busybox_layer("oci\n")),
        Layer::gzipped(extra_layer("oci second layer\n")),
    ];
    let elsewhere = json!({
        "mediaType": OCI_MANIFEST,
        "digest": digest(b"not in the archive"),
        "size": 18,
        "platform": {"os": "linux", "architecture": other_arch()},
        "annotations": {"io.containerd.image.name": "docker.io/library/busybox:elsewhere"},
    });
    let names = json!({
        "io.containerd.image.name": OCI_NAME,
        "org.opencontainers.image.ref.name": "oci-imported",
    });
    oci(&layers, names, &[elsewhere])
}

/// The test's docker archive: a gzip busybox layer marked `docker` and an
/// uncompressed one, tagged the short way docker writes tags.
fn docker_archive() -> Archive {
    let layers = [
        Layer::gzipped(busybox_layer("docker\n")),
        Layer::plain(extra_layer("docker second layer\n")),
    ];
    docker(&layers, &["busybox:docker-imported"], None)
}

fn write(dir: &Path, name: &str, a: &Archive) -> String {
    let p = dir.join(name);
    std::fs::write(&p, &a.tar).expect("write archive");
    p.display().to_string()
}

/// Leases in the test namespace.
fn leases(ctd: &Containerd) -> Vec<String> {
    ctd.ids("leases")
}

/// Makes containerd collect garbage now: a lease deleted with `--sync`
/// runs the collector before the call returns.
fn collect_garbage(ctd: &Containerd) {
    let out = ctd.ctr(&["leases", "create"]).expect_ok();
    let id = out
        .stdout
        .split_whitespace()
        .last()
        .expect("lease id")
        .to_string();
    ctd.ctr(&["leases", "delete", "--sync", &id]).expect_ok();
}

/// The target digest of image `name` in namespace `ns`.
fn target(ctd: &Containerd, ns: &str, name: &str) -> String {
    let out = ctd.ctr_in(ns, &["images", "ls"]).expect_ok().stdout;
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name));
    let line = line.unwrap_or_else(|| panic!("no image {name} in {ns}: {out}"));
    line.split_whitespace()
        .nth(2)
        .expect("digest column")
        .to_string()
}

/// Blobs in the content store.
fn content(ctd: &Containerd) -> Vec<String> {
    ctd.ids("content")
}

#[test]
fn oci_and_docker_archives_import_and_run() {
    require_root();
    let n = PodNode::new("img-run", "10.88.41.1/24");
    let oci_tar = write(n.node.dir(), "oci.tar", &oci_archive());
    let out = n.podrun(&["image", "import", &oci_tar]).expect_ok();
    assert_eq!(out.stdout, format!("{OCI_NAME}\n"), "{out}");
    // A docker archive, gzip-compressed as `docker save | gzip` makes it,
    // from stdin.
    let docker = docker_archive();
    let cmd = n.podrun_cmd(&["image", "import", "-"]);
    let out = exec::run(cmd, Some(&gzip(&docker.tar)), Duration::from_secs(120)).expect_ok();
    assert_eq!(out.stdout, format!("{DOCKER_NAME}\n"), "{out}");
    assert_eq!(leases(&n.ctd), Vec::<String>::new(), "import left a lease");
    // The manifest made from docker's manifest.json is the one ctr makes.
    let docker_tar = write(n.node.dir(), "docker.tar", &docker);
    n.ctd
        .ctr_in("ctr-import", &["images", "import", &docker_tar])
        .expect_ok();
    assert_eq!(
        target(&n.ctd, NAMESPACE, DOCKER_NAME),
        target(&n.ctd, "ctr-import", DOCKER_NAME)
    );

    // The records name a proper manifest of each kind.
    let images = n.ctd.ctr(&["images", "ls"]).expect_ok().stdout;
    for (name, media) in [
        (OCI_NAME, OCI_MANIFEST),
        (
            DOCKER_NAME,
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ] {
        let line = images.lines().find(|l| l.starts_with(name));
        let line = line.unwrap_or_else(|| panic!("no image {name}: {images}"));
        assert!(line.contains(media), "{line}");
    }
    assert!(!images.contains("elsewhere"), "{images}");
    // Nothing but the records holds the images now: after a collection,
    // every blob must still be there, and the unpacked snapshots the run
    // below builds on.
    collect_garbage(&n.ctd);
    let stored = content(&n.ctd);
    for d in docker.digests.iter().chain(&oci_archive().digests) {
        assert!(stored.contains(d), "{d} was collected: {stored:?}");
    }

    let spec = json!({
        "name": "imported",
        "containers": [
            {"name": "o", "image": OCI_NAME},
            {"name": "d", "image": DOCKER_NAME},
        ],
    });
    n.run_pod(&spec);
    assert_eq!(leases(&n.ctd), Vec::<String>::new(), "run left a lease");
    for (c, want) in [
        ("o", "oci\noci second layer\n"),
        ("d", "docker\ndocker second layer\n"),
    ] {
        let o = n
            .podrun(&["exec", "imported", c, "--", "cat", "/imported", "/extra"])
            .expect_ok();
        assert_eq!(o.stdout, want, "{c}: {o}");
    }
    n.podrun(&["rm", "--grace", "0", "imported"]).expect_ok();

    // A run that fails after containers exist: rolled back, lease gone.
    let bad = json!({"name": "bad", "containers": [
        {"name": "ok", "image": OCI_NAME},
        {"name": "no", "image": DOCKER_NAME, "command": ["/nonexistent"]},
    ]});
    let file = n.write_spec("bad", &bad);
    let out = n.podrun(&["run", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.success(), "{out}");
    assert_eq!(
        leases(&n.ctd),
        Vec::<String>::new(),
        "failed run left a lease"
    );
    n.assert_clean();
}

/// Kills a child of ours (by its PID) when dropped, even on failure,
/// unless the test took it back.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The offset of member `path`'s header in `tar_bytes`.
fn member_offset(tar_bytes: &[u8], path: &str) -> usize {
    let mut a = tar::Archive::new(tar_bytes);
    for e in a.entries().expect("entries") {
        let e = e.expect("entry");
        if e.path().expect("path").display().to_string() == path {
            return e.raw_header_position() as usize;
        }
    }
    panic!("no {path} in the archive")
}

#[test]
fn a_collection_during_an_import_spares_what_its_lease_holds() {
    require_root();
    let n = PodNode::new("img-gc", "10.88.43.1/24");
    let a = oci_archive();
    let (manifest, config, layer) = (&a.digests[0], &a.digests[1], &a.digests[2]);
    // The archive up to the first layer: manifest and config are stored,
    // referenced by nothing but the import's lease.
    let cut = member_offset(&a.tar, &format!("blobs/sha256/{}", hex(layer)));
    let mut cmd = n.podrun_cmd(&["image", "import", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Reap(Some(cmd.spawn().expect("spawn podrun")));
    let mut stdin = child
        .0
        .as_mut()
        .and_then(|c| c.stdin.take())
        .expect("stdin");
    stdin.write_all(&a.tar[..cut]).expect("write");
    stdin.flush().expect("flush");
    let stored = retry(400, Duration::from_millis(50), || {
        let c = content(&n.ctd);
        (c.contains(manifest) && c.contains(config)).then_some(())
    });
    assert!(stored.is_some(), "manifest and config never stored");
    let listed = n.ctd.ctr(&["leases", "ls"]).expect_ok().stdout;
    let lease = listed.lines().find(|l| l.starts_with("podrun-import-"));
    let lease = lease.unwrap_or_else(|| panic!("no import lease: {listed}"));
    assert!(lease.contains("containerd.io/gc.expire="), "{lease}");
    collect_garbage(&n.ctd);
    let c = content(&n.ctd);
    assert!(
        c.contains(manifest) && c.contains(config),
        "collected mid-import: {c:?}"
    );
    stdin.write_all(&a.tar[cut..]).expect("write");
    drop(stdin);
    let out = child
        .0
        .take()
        .expect("child")
        .wait_with_output()
        .expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, format!("{OCI_NAME}\n"));
    assert_eq!(leases(&n.ctd), Vec::<String>::new(), "import left a lease");
}

/// `podrun image import FILE` must fail with `want` in its error, leaving
/// no image, lease, blob of `digests` or extraction snapshot.
#[track_caller]
fn refused(n: &PodNode, file: &str, digests: &[String], want: &[&str]) {
    let out = n.podrun(&["image", "import", file]);
    assert!(!out.success(), "{out}");
    for w in want.iter().chain([&file]) {
        assert!(out.stderr.contains(w), "want {w:?}: {out}");
    }
    let images = n.ctd.ids("images");
    assert!(
        images
            .iter()
            .all(|i| !i.contains("imported") && !i.contains("bad")),
        "{images:?}"
    );
    assert_eq!(leases(&n.ctd), Vec::<String>::new(), "lease left");
    let stored = content(&n.ctd);
    for d in digests {
        assert!(!stored.contains(d), "{d} left in the store");
    }
    let active = n.ctd.active_snapshots();
    assert!(
        active.iter().all(|k| !k.starts_with("extract-")),
        "{active:?}"
    );
}

#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    require_root();
    let n = PodNode::new("img-bad", "10.88.42.1/24");
    let dir = n.node.dir();
    let good = oci_archive();

    // One byte of the busybox layer changed.
    let layer = &good.digests[2];
    let mut corrupt = good.tar.clone();
    let at = corrupt
        .windows(8)
        .rposition(|w| w == b"\x7fELF\x02\x01\x01\x00")
        .expect("busybox in the archive");
    corrupt[at + 100] ^= 0xff;
    let file = write(
        dir,
        "corrupt.tar",
        &Archive {
            tar: corrupt,
            digests: vec![],
        },
    );
    let entry = format!("blobs/sha256/{}", hex(layer));
    refused(&n, &file, &good.digests, &[&entry, "corrupt archive"]);

    // The gzip layer's blob left out.
    let layers = [
        Layer::plain(busybox_layer("bad\n")),
        Layer::gzipped(extra_layer("missing\n")),
    ];
    let missing = digest(&layers[1].blob);
    let full = oci(
        &layers,
        json!({"io.containerd.image.name": "x.io/bad:1"}),
        &[],
    );
    let stripped = strip_blob(&full.tar, &missing);
    let file = write(
        dir,
        "missing.tar",
        &Archive {
            tar: stripped,
            digests: vec![],
        },
    );
    refused(&n, &file, &full.digests, &["is missing", &missing]);

    // Not an archive at all.
    let file = dir.join("not.tar");
    std::fs::write(&file, "just text\n").expect("write");
    refused(
        &n,
        file.to_str().expect("utf-8"),
        &[],
        &["not a tar archive"],
    );

    // A layout whose only image has no name.
    let nameless = oci(&[Layer::plain(busybox_layer("nameless\n"))], json!({}), &[]);
    let file = write(dir, "nameless.tar", &nameless);
    refused(&n, &file, &nameless.digests, &["has a name"]);

    // A docker archive whose config lists another diff ID: the unpack
    // notices and the extraction snapshot goes.
    let layers = [Layer::gzipped(busybox_layer("bad diff\n"))];
    let wrong = digest(b"something else");
    let d = docker(&layers, &["bad:1"], Some(config(&[&wrong])));
    let file = write(dir, "diffid.tar", &d);
    refused(
        &n,
        &file,
        &d.digests,
        &["manifest.json[0]", "layer 0", &wrong],
    );
    n.assert_clean();
}

/// `tar` without the member holding blob `d`.
fn strip_blob(tar_bytes: &[u8], d: &str) -> Vec<u8> {
    let gone = format!("blobs/sha256/{}", hex(d));
    let mut a = tar::Archive::new(tar_bytes);
    let mut b = tar::Builder::new(Vec::new());
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").display().to_string();
        if path == gone {
            continue;
        }
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).expect("read");
        b.append_data(&mut h, &path, data.as_slice())
            .expect("append");
    }
    b.into_inner().expect("tar")
}

#[test]
fn containerd_namespace_comes_from_the_environment() {
    require_root();
    // Import needs no network: podrun runs here without a node netns.
    let ctd = Containerd::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let archive = write(dir.path(), "oci.tar", &oci_archive());
    let podrun = |env_ns: &str, flag_ns: Option<&str>| {
        let mut cmd = Command::new(bin_path("podrun"));
        cmd.arg("--address")
            .arg(ctd.socket())
            .arg("--state-dir")
            .arg(dir.path().join("state"));
        if let Some(ns) = flag_ns {
            cmd.args(["--namespace", ns]);
        }
        cmd.args(["image", "import", &archive])
            .env("CONTAINERD_NAMESPACE", env_ns);
        exec::run(cmd, None, Duration::from_secs(120)).expect_ok()
    };
    podrun("podrun-env-ns", None);
    assert_eq!(ctd.ids_in("podrun-env-ns", "images"), [OCI_NAME]);
    assert_eq!(ctd.ids_in("netboot", "images"), Vec::<String>::new());
    // The flag wins over the environment.
    podrun("podrun-env-ns2", Some("podrun-flag-ns"));
    assert_eq!(ctd.ids_in("podrun-flag-ns", "images"), [OCI_NAME]);
    assert_eq!(ctd.ids_in("podrun-env-ns2", "images"), Vec::<String>::new());
    for ns in ["podrun-env-ns", "podrun-flag-ns"] {
        assert_eq!(ctd.ids_in(ns, "leases"), Vec::<String>::new(), "{ns}");
    }
}
