//! Image archives built byte by byte for `podrun image import` tests: an
//! OCI image layout (what `ctr images export`, skopeo and buildah write)
//! and a `docker save` archive, from layers of the node's static busybox.
//! Each builder returns the archive and the digests of what it holds, so a
//! test can check what reached containerd's content store.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `sha256:<hex>` of `b`.
pub fn digest(b: &[u8]) -> String {
    let sum = Sha256::digest(b);
    let hex: String = sum.iter().map(|x| format!("{x:02x}")).collect();
    format!("sha256:{hex}")
}

/// The hex part of a digest.
pub fn hex(d: &str) -> &str {
    d.strip_prefix("sha256:").expect("sha256 digest")
}

/// GOARCH of this machine.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// One tar member.
pub enum Member {
    Dir(String),
    File(String, Vec<u8>, u32),
    Link(String, String),
}

/// A reproducible tar of `members` (owner root, mtime 0).
pub fn tar(members: &[Member]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match m {
            Member::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, &[][..]).expect("tar dir");
            }
            Member::File(p, data, mode) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, data.as_slice()).expect("tar file");
            }
            Member::Link(p, to) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, to).expect("tar link");
            }
        }
    }
    b.into_inner().expect("tar")
}

pub fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).expect("gzip");
    e.finish().expect("gzip")
}

/// A rootfs layer: static busybox as /bin/busybox with sh, cat and sleep,
/// and `/imported` holding `marker`.
pub fn busybox_layer(marker: &str) -> Vec<u8> {
    let busybox = std::env::var("BUSYBOX").unwrap_or_else(|_| "/bin/busybox".into());
    let bin = std::fs::read(&busybox).unwrap_or_else(|e| panic!("read {busybox}: {e}"));
    let mut m = vec![
        Member::Dir("bin".into()),
        Member::Dir("etc".into()),
        Member::Dir("tmp".into()),
        Member::File("bin/busybox".into(), bin, 0o755),
    ];
    for app in ["sh", "cat", "sleep"] {
        m.push(Member::Link(format!("bin/{app}"), "busybox".into()));
    }
    m.push(Member::File(
        "imported".into(),
        marker.as_bytes().to_vec(),
        0o644,
    ));
    tar(&m)
}

/// A layer with the single file `/extra` holding `text`.
pub fn extra_layer(text: &str) -> Vec<u8> {
    tar(&[Member::File(
        "extra".into(),
        text.as_bytes().to_vec(),
        0o644,
    )])
}

/// A layer as it goes into an archive: its blob, its media type, and the
/// digest of its uncompressed tar (the config's diff ID).
pub struct Layer {
    pub blob: Vec<u8>,
    pub media: &'static str,
    pub diff_id: String,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Layer {
        let diff_id = digest(&tar);
        Layer {
            blob: tar,
            media: OCI_LAYER,
            diff_id,
        }
    }

    pub fn gzipped(tar: Vec<u8>) -> Layer {
        Layer {
            blob: gzip(&tar),
            media: OCI_LAYER_GZIP,
            diff_id: digest(&tar),
        }
    }
}

/// An image config running `sleep 1000` with PATH=/bin over `diff_ids`.
pub fn config(diff_ids: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": goarch(),
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sleep", "1000"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

/// A built archive and the digests of the blobs it holds (manifest,
/// config, layers).
pub struct Archive {
    pub tar: Vec<u8>,
    pub digests: Vec<String>,
}

fn descriptor(media: &str, blob: &[u8]) -> Value {
    json!({"mediaType": media, "digest": digest(blob), "size": blob.len()})
}

/// An OCI image layout of one image with `layers`, its index entry
/// annotated with `annotations`. `extra_entries` go into `index.json`
/// after it (e.g. another platform's manifest, absent from the archive).
pub fn oci(layers: &[Layer], annotations: Value, extra_entries: &[Value]) -> Archive {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = config(&diff_ids);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, &config),
        "layers": layers.iter().map(|l| descriptor(l.media, &l.blob)).collect::<Vec<_>>(),
    }))
    .expect("json");
    let mut entry = descriptor(OCI_MANIFEST, &manifest);
    entry["platform"] = json!({"os": "linux", "architecture": goarch()});
    entry["annotations"] = annotations;
    let mut manifests = vec![entry];
    manifests.extend(extra_entries.iter().cloned());
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    let mut blobs: Vec<&[u8]> = vec![&manifest, &config];
    blobs.extend(layers.iter().map(|l| l.blob.as_slice()));
    let mut members = vec![
        Member::File(
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            0o644,
        ),
        Member::File(
            "index.json".into(),
            serde_json::to_vec(&index).expect("json"),
            0o644,
        ),
        Member::Dir("blobs".into()),
        Member::Dir("blobs/sha256".into()),
    ];
    for b in &blobs {
        members.push(Member::File(
            format!("blobs/sha256/{}", hex(&digest(b))),
            b.to_vec(),
            0o644,
        ));
    }
    Archive {
        tar: tar(&members),
        digests: blobs.iter().map(|b| digest(b)).collect(),
    }
}

/// A `docker save` archive (v1.2: `manifest.json`, `<id>.json` config,
/// `<dir>/layer.tar` per layer) of one image tagged `repo_tags`; `config`
/// overrides the config built from the layers' diff IDs.
pub fn docker(layers: &[Layer], repo_tags: &[&str], config_blob: Option<Vec<u8>>) -> Archive {
    let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
    let config = config_blob.unwrap_or_else(|| config(&diff_ids));
    let config_name = format!("{}.json", hex(&digest(&config)));
    let mut members = Vec::new();
    let mut layer_names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let dir = format!("{}{i}", &hex(&l.diff_id)[..16]);
        members.push(Member::Dir(dir.clone()));
        members.push(Member::File(
            format!("{dir}/VERSION"),
            b"1.0".to_vec(),
            0o644,
        ));
        members.push(Member::File(
            format!("{dir}/layer.tar"),
            l.blob.clone(),
            0o644,
        ));
        layer_names.push(format!("{dir}/layer.tar"));
    }
    members.push(Member::File(config_name.clone(), config.clone(), 0o644));
    let manifest = json!([{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}]);
    members.push(Member::File(
        "manifest.json".into(),
        serde_json::to_vec(&manifest).expect("json"),
        0o644,
    ));
    let mut digests = vec![digest(&config)];
    digests.extend(layers.iter().map(|l| digest(&l.blob)));
    Archive {
        tar: tar(&members),
        digests,
    }
}
