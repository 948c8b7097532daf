//! From an image's top descriptor down to its layers: check that every
//! blob this platform needs is stored, label each parent with its children
//! (containerd's GC follows `containerd.io/gc.ref.content.*` labels from an
//! image record to everything it needs, `images.SetChildrenLabels`), and
//! unpack each manifest. Index entries for other platforms are skipped, as
//! `ctr images import` skips them (their blobs are usually not in the
//! archive).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use containerd_client::types::Descriptor;
use serde_json::Value;

use super::archive::{blob_path, descriptor, Archive};
use super::unpack;
use crate::ctrd::Ctrd;
use crate::image::{goarch, INDEX_TYPES};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Whether an index entry is for this machine: linux on our architecture,
/// or no platform at all.
pub fn platform_ok(entry: &Value) -> bool {
    let p = &entry["platform"];
    p.is_null() || (p["os"] == "linux" && p["architecture"] == goarch())
}

/// The label a parent gets for a child of media type `media`, before its
/// number (containerd's `images.ChildGCLabels`).
fn child_label(media: &str, is_config: bool) -> &'static str {
    if is_config {
        "containerd.io/gc.ref.content.config"
    } else if media == OCI_MANIFEST || media == DOCKER_MANIFEST {
        "containerd.io/gc.ref.content.m."
    } else if media.starts_with("application/vnd.oci.image.layer.")
        || media.starts_with("application/vnd.docker.image.rootfs.")
    {
        "containerd.io/gc.ref.content.l."
    } else {
        "containerd.io/gc.ref.content."
    }
}

/// Labels for `children` (`(descriptor, is the config)`): keys ending in
/// `.` are numbered per key, others only from their second use on.
pub fn child_labels<'a>(
    children: impl IntoIterator<Item = (&'a Descriptor, bool)>,
) -> HashMap<String, String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut labels = HashMap::new();
    for (d, is_config) in children {
        let key = child_label(&d.media_type, is_config);
        let n = seen.entry(key).or_default();
        let full = if *n > 0 || key.ends_with('.') {
            format!("{key}{n}")
        } else {
            key.to_string()
        };
        *n += 1;
        labels.insert(full, d.digest.clone());
    }
    labels
}

/// Fails unless blob `d` is in the archive or already in the store.
async fn present(c: &Ctrd, a: &Archive, d: &Descriptor, what: &str) -> Result<()> {
    if a.has(&d.digest) || c.blob_exists(&d.digest).await? {
        return Ok(());
    }
    bail!(
        "{what} {} is missing: the archive has no {}",
        d.digest,
        blob_path(&d.digest)
    )
}

async fn read_json(c: &Ctrd, d: &Descriptor, what: &str) -> Result<Value> {
    let blob = c.read_blob(&d.digest).await?;
    serde_json::from_slice(&blob).with_context(|| format!("{what} {} is not JSON", d.digest))
}

/// Stores, labels and unpacks what `d` (an index or a manifest) needs
/// on this machine. `at` names it in errors (`index.json manifests[0]`).
pub async fn walk(c: &Ctrd, a: &Archive, d: &Descriptor, at: &str) -> Result<()> {
    let media = d.media_type.as_str();
    if INDEX_TYPES.contains(&media) {
        present(c, a, d, &format!("{at}: index")).await?;
        let idx = read_json(c, d, &format!("{at}: index")).await?;
        let mut children = Vec::new();
        for (i, m) in idx["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if platform_ok(m) {
                let child = descriptor(m).with_context(|| format!("{at}: manifests[{i}]"))?;
                children.push(child);
            }
        }
        if children.is_empty() {
            bail!(
                "{at}: index {} has no linux/{} manifest",
                d.digest,
                goarch()
            );
        }
        for child in &children {
            let at = format!("{at}: manifest {}", child.digest);
            Box::pin(walk(c, a, child, &at)).await?;
        }
        c.label_blob(&d.digest, child_labels(children.iter().map(|d| (d, false))))
            .await
    } else if media == OCI_MANIFEST || media == DOCKER_MANIFEST {
        present(c, a, d, &format!("{at}: manifest")).await?;
        let m = read_json(c, d, &format!("{at}: manifest")).await?;
        let config = descriptor(&m["config"]).with_context(|| format!("{at}: config"))?;
        present(c, a, &config, &format!("{at}: config")).await?;
        let mut layers = Vec::new();
        for (i, l) in m["layers"].as_array().into_iter().flatten().enumerate() {
            let layer = descriptor(l).with_context(|| format!("{at}: layers[{i}]"))?;
            present(c, a, &layer, &format!("{at}: layer {i}")).await?;
            layers.push(layer);
        }
        let children = std::iter::once((&config, true)).chain(layers.iter().map(|l| (l, false)));
        c.label_blob(&d.digest, child_labels(children)).await?;
        unpack::unpack(c, &config, &layers, at).await
    } else {
        bail!("{at}: media type {media:?} is neither an image index nor an image manifest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(media: &str, digest: &str) -> Descriptor {
        Descriptor {
            media_type: media.into(),
            digest: digest.into(),
            ..Default::default()
        }
    }

    #[test]
    fn gc_labels_as_containerd_numbers_them() {
        let config = d("application/vnd.oci.image.config.v1+json", "c");
        let l0 = d("application/vnd.oci.image.layer.v1.tar+gzip", "l0");
        let l1 = d("application/vnd.docker.image.rootfs.diff.tar", "l1");
        let got = child_labels([(&config, true), (&l0, false), (&l1, false)]);
        let want: HashMap<String, String> = [
            ("containerd.io/gc.ref.content.config", "c"),
            ("containerd.io/gc.ref.content.l.0", "l0"),
            ("containerd.io/gc.ref.content.l.1", "l1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
        assert_eq!(got, want);
        let m0 = d(OCI_MANIFEST, "m0");
        let m1 = d(DOCKER_MANIFEST, "m1");
        let nested = d("application/vnd.oci.image.index.v1+json", "i");
        let got = child_labels([(&m0, false), (&m1, false), (&nested, false)]);
        assert_eq!(got["containerd.io/gc.ref.content.m.0"], "m0");
        assert_eq!(got["containerd.io/gc.ref.content.m.1"], "m1");
        assert_eq!(got["containerd.io/gc.ref.content.0"], "i");
    }

    #[test]
    fn platforms() {
        assert!(platform_ok(&serde_json::json!({"digest": "x"})));
        let ours = serde_json::json!({"platform": {"os": "linux", "architecture": goarch()}});
        assert!(platform_ok(&ours));
        let other = serde_json::json!({"platform": {"os": "linux", "architecture": "s390x"}});
        assert_eq!(platform_ok(&other), goarch() == "s390x");
        assert!(!platform_ok(
            &serde_json::json!({"platform": {"os": "windows", "architecture": goarch()}})
        ));
    }
}
