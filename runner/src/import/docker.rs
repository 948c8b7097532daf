//! `docker save` archives: `manifest.json` lists, per image, its config
//! file, its layer files and its `RepoTags`. Each entry becomes a docker
//! schema 2 manifest (written to the content store: the archive has none),
//! with the media types containerd's importer gives: a gzip layer is
//! `…rootfs.diff.tar.gzip`, anything else `…rootfs.diff.tar`.

use anyhow::{Context, Result};
use containerd_client::types::Descriptor;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::archive::{is_gzip, Archive};
use super::reference::{normalize, object, Named};
use super::walk::{walk, DOCKER_MANIFEST};
use crate::ctrd::{hex_digest, Ctrd};

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// One image of `manifest.json`.
#[derive(Debug, Deserialize)]
pub struct Entry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    pub layers: Vec<String>,
}

pub fn entries(manifest: &[u8]) -> Result<Vec<Entry>> {
    serde_json::from_slice(manifest)
        .context("manifest.json is not a docker save manifest (a list of Config, RepoTags, Layers)")
}

/// The full names of an entry's `RepoTags`.
pub fn names(e: &Entry) -> Result<Vec<String>> {
    e.repo_tags.iter().flatten().map(|t| normalize(t)).collect()
}

/// The image record target for `name`: the manifest, annotated with the
/// name as containerd's importer annotates docker images.
pub fn named(name: String, manifest: &Descriptor) -> Named {
    let mut target = manifest.clone();
    target.annotations = [
        ("io.containerd.image.name".to_string(), name.clone()),
        (
            "org.opencontainers.image.ref.name".to_string(),
            object(&name),
        ),
    ]
    .into_iter()
    .collect();
    Named { name, target }
}

/// Stores a manifest for each named entry, then labels and unpacks it.
/// Entries without `RepoTags` are skipped: nothing could name them.
pub async fn images(c: &Ctrd, a: &Archive, manifest: &[u8]) -> Result<Vec<Named>> {
    let mut out = Vec::new();
    for (i, e) in entries(manifest)?.iter().enumerate() {
        let at = format!("manifest.json[{i}]");
        let names = names(e).with_context(|| format!("{at}: RepoTags"))?;
        if names.is_empty() {
            tracing::warn!("podrun: {at} has no RepoTags: skipped");
            continue;
        }
        let desc = manifest_of(c, a, e, &at).await?;
        walk(c, a, &desc, &at).await?;
        out.extend(names.into_iter().map(|n| named(n, &desc)));
    }
    Ok(out)
}

/// The descriptor of a file the entry names (`what` in errors).
fn file(a: &Archive, path: &str, at: &str, what: &str) -> Result<Descriptor> {
    let b = a
        .file(path)
        .with_context(|| format!("{at}: {what} {path:?} is not in the archive"))?;
    Ok(Descriptor {
        digest: b.digest.clone(),
        size: b.size as i64,
        ..Default::default()
    })
}

/// Builds and stores the schema 2 manifest of entry `e`.
async fn manifest_of(c: &Ctrd, a: &Archive, e: &Entry, at: &str) -> Result<Descriptor> {
    let mut config = file(a, &e.config, at, "config")?;
    config.media_type = DOCKER_CONFIG.into();
    let mut layers = Vec::new();
    for path in &e.layers {
        let mut d = file(a, path, at, "layer")?;
        let mut head = a.file(path).map(|b| b.head.clone()).unwrap_or_default();
        if head.is_empty() && d.size > 0 {
            // Stored before: the write sent nothing, so read its start.
            head = c.read_head(&d.digest, 8).await?;
        }
        d.media_type = if is_gzip(&head) {
            LAYER_GZIP
        } else {
            LAYER_TAR
        }
        .into();
        layers.push(d);
    }
    let desc =
        |d: &Descriptor| json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size});
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": desc(&config),
        "layers": layers.iter().map(desc).collect::<Vec<_>>(),
    }))?;
    let digest = hex_digest(Sha256::new_with_prefix(&body));
    let ingest = format!("podrun-import-manifest-{digest}");
    c.write_blob(
        &ingest,
        &mut body.as_slice(),
        body.len() as u64,
        Some(&digest),
    )
    .await
    .with_context(|| format!("{at}: store its manifest"))?;
    Ok(Descriptor {
        media_type: DOCKER_MANIFEST.into(),
        digest,
        size: body.len() as i64,
        annotations: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_names() {
        let m = br#"[{"Config":"c.json","RepoTags":["busybox:1","me/x"],"Layers":["a/layer.tar"]},
                     {"Config":"d.json","RepoTags":null,"Layers":[]}]"#;
        let e = entries(m).unwrap();
        assert_eq!(
            names(&e[0]).unwrap(),
            ["docker.io/library/busybox:1", "docker.io/me/x:latest"]
        );
        assert!(names(&e[1]).unwrap().is_empty());
        let n = named("docker.io/library/busybox:1".into(), &Descriptor::default());
        assert_eq!(
            n.target.annotations["org.opencontainers.image.ref.name"],
            "1"
        );
        assert!(entries(b"{}")
            .unwrap_err()
            .to_string()
            .contains("docker save"));
    }
}
