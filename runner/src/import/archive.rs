//! One pass over an image archive (tar, or tar.gz): every regular file
//! goes into containerd's content store as it streams past, as containerd's
//! own importer does (`images/archive/importer.go`), because a docker
//! archive names its layers only in `manifest.json`, written last. The
//! layout files (`oci-layout`, `index.json`, `manifest.json`) are kept in
//! memory. Works on a pipe: nothing is read twice.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};
use containerd_client::types::Descriptor;

use crate::ctrd::{BlobWrite, Ctrd};

/// A layout file larger than this is refused (containerd: 20 MiB).
const JSON_LIMIT: u64 = 20 << 20;

/// What the archive held.
#[derive(Debug, Default)]
pub struct Archive {
    /// `oci-layout`, `index.json`, `manifest.json` when present.
    pub oci_layout: Option<Vec<u8>>,
    pub index: Option<Vec<u8>>,
    pub manifest: Option<Vec<u8>>,
    /// Every other regular file by its clean path, as stored.
    pub blobs: HashMap<String, BlobWrite>,
    /// Symlinks by clean path: their clean target (docker save links a
    /// layer it already wrote).
    pub links: HashMap<String, String>,
}

impl Archive {
    /// The blob at `path`, following one symlink.
    pub fn file(&self, path: &str) -> Option<&BlobWrite> {
        let path = clean(path);
        self.blobs
            .get(&path)
            .or_else(|| self.links.get(&path).and_then(|t| self.blobs.get(t)))
    }

    /// Whether the archive holds blob `digest` (at `blobs/<alg>/<hex>`).
    pub fn has(&self, digest: &str) -> bool {
        self.file(&blob_path(digest))
            .is_some_and(|b| b.digest == digest)
    }
}

/// Where an OCI layout keeps blob `digest`: `blobs/sha256/<hex>`.
pub fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// `sha256:<64 hex>`: the only digest podrun stores by name.
pub fn is_sha256(digest: &str) -> bool {
    digest
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A tar member name as Go's `path.Clean` leaves it, relative:
/// `./blobs//sha256/x` → `blobs/sha256/x`.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

/// Whether the first bytes are gzip's magic number.
pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// The digest an OCI layout's path promises: `Some` for
/// `blobs/sha256/<hex>`.
fn promised(path: &str) -> Option<String> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    let d = format!("sha256:{hex}");
    is_sha256(&d).then_some(d)
}

/// Reads the archive from `r` into the content store through `c` (a
/// leased handle: what is written stays collectable until an image
/// references it). Errors name the member.
pub async fn ingest(c: &Ctrd, r: Box<dyn Read + '_>) -> Result<Archive> {
    let mut r = BufReader::new(r);
    let gz = is_gzip(r.fill_buf().context("read the archive")?);
    let r: Box<dyn Read + '_> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    };
    let mut tar = tar::Archive::new(r);
    let mut a = Archive::default();
    let entries = tar.entries().context("not a tar archive")?;
    for (n, entry) in entries.enumerate() {
        let mut e = entry.with_context(|| {
            if n == 0 {
                "not a tar archive (nor a gzip-compressed one)".to_string()
            } else {
                format!("archive member {} is damaged", n + 1)
            }
        })?;
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let path = clean(&raw);
        let kind = e.header().entry_type();
        if kind.is_symlink() {
            if let Some(target) = e.link_name_bytes() {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let to = clean(&format!("{dir}/{}", String::from_utf8_lossy(&target)));
                a.links.insert(path, to);
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let size = e.size();
        match path.as_str() {
            "oci-layout" | "index.json" | "manifest.json" => {
                if size > JSON_LIMIT {
                    bail!("{path}: {size} bytes, more than a layout file may have");
                }
                let mut buf = Vec::with_capacity(size as usize);
                e.read_to_end(&mut buf)
                    .with_context(|| format!("{path}: read"))?;
                let slot = match path.as_str() {
                    "oci-layout" => &mut a.oci_layout,
                    "index.json" => &mut a.index,
                    _ => &mut a.manifest,
                };
                *slot = Some(buf);
            }
            _ => {
                let expected = promised(&path);
                let ingest = format!("podrun-import-{}-{path}", std::process::id());
                let blob = c
                    .write_blob(&ingest, &mut e, size, expected.as_deref())
                    .await
                    .with_context(|| path.clone())?;
                a.blobs.insert(path, blob);
            }
        }
    }
    Ok(a)
}

/// A descriptor from its JSON (`mediaType`, `digest`, `size`,
/// `annotations`).
pub fn descriptor(v: &serde_json::Value) -> Result<Descriptor> {
    let digest = v["digest"].as_str().unwrap_or_default();
    if !is_sha256(digest) {
        bail!("digest {digest:?} is not sha256:<64 hex digits>");
    }
    let size = v["size"].as_i64().context("no size")?;
    let annotations = v["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Descriptor {
        media_type: v["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: digest.to_string(),
        size,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_are_cleaned() {
        assert_eq!(clean("./index.json"), "index.json");
        assert_eq!(clean("/blobs//sha256/ab"), "blobs/sha256/ab");
        assert_eq!(clean("abc/../def/layer.tar"), "def/layer.tar");
        let hex = "a".repeat(64);
        assert_eq!(
            promised(&format!("blobs/sha256/{hex}")),
            Some(format!("sha256:{hex}"))
        );
        assert_eq!(promised("blobs/sha256/abc"), None);
        assert_eq!(promised("abc/layer.tar"), None);
        assert_eq!(
            blob_path(&format!("sha256:{hex}")),
            format!("blobs/sha256/{hex}")
        );
    }

    #[test]
    fn descriptors_need_a_sha256_digest_and_size() {
        let hex = "0".repeat(64);
        let d = descriptor(&serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{hex}"), "size": 12,
            "annotations": {"io.containerd.image.name": "x/y:1"},
        }))
        .unwrap();
        assert_eq!(d.size, 12);
        assert_eq!(d.annotations["io.containerd.image.name"], "x/y:1");
        let e = descriptor(&serde_json::json!({"digest": "sha256:12", "size": 1})).unwrap_err();
        assert!(e.to_string().contains("not sha256"), "{e}");
        let e = descriptor(&serde_json::json!({"digest": format!("sha256:{hex}")})).unwrap_err();
        assert!(e.to_string().contains("no size"), "{e}");
    }
}
