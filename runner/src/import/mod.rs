//! `podrun image import FILE`: an OCI image layout archive (`ctr images
//! export`, skopeo, buildah, docker 25+) or a `docker save` archive into
//! containerd's store, unpacked so that `podrun run` can use it at once.
//!
//! All of it happens under one containerd lease (`ctr images import` does
//! the same): blobs, ingests and snapshots written through the leased
//! handle are safe from the garbage collector until the image records
//! exist; then the lease is deleted and the records, through the content
//! labels, keep what they need. On failure the lease is deleted with a
//! synchronous collection, so nothing half-imported stays behind.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use containerd_client::types::Descriptor;
use serde_json::Value;

use crate::ctrd::Ctrd;

mod archive;
mod docker;
mod reference;
mod unpack;
mod walk;

use archive::{blob_path, descriptor, Archive};
use reference::Named;

/// The import lease's lifetime (the Go client's default): long enough for
/// any import, short enough that a crashed one's blobs go the same day.
const IMPORT_TTL: Duration = Duration::from_secs(24 * 3600);
const IMAGE_NAME: &str = "io.containerd.image.name";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The only image layout version there is (containerd checks it too).
const LAYOUT_VERSION: &str = "1.0.0";

/// Imports the archive `file` (`-`: stdin); returns the image names
/// recorded. `base` is ctr's `--base-name`.
pub async fn import(c: &Ctrd, file: &Path, base: Option<&str>) -> Result<Vec<String>> {
    let stdin = file.as_os_str() == "-";
    let shown = if stdin {
        "stdin".to_string()
    } else {
        file.display().to_string()
    };
    let input: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("open {shown}"))?)
    };
    let lease = c
        .create_lease(&Ctrd::unique_lease_id("import"), IMPORT_TTL)
        .await?;
    let done: Result<Vec<String>> = async {
        let images = find(&c.leased(&lease), input, base).await?;
        // Outside the lease: a record is a root of its own.
        for n in &images {
            c.put_image(&n.name, n.target.clone()).await?;
        }
        Ok(images.into_iter().map(|n| n.name).collect())
    }
    .await;
    match done {
        Ok(names) => {
            c.delete_lease(&lease, false).await?;
            Ok(names)
        }
        Err(e) => {
            if let Err(d) = c.delete_lease(&lease, true).await {
                tracing::warn!("podrun: {d:#} (it expires by itself within a day)");
            }
            Err(e.context(format!("import {shown}")))
        }
    }
}

/// Stores and unpacks the archive's images; returns them, not recorded.
async fn find(c: &Ctrd, input: Box<dyn Read + '_>, base: Option<&str>) -> Result<Vec<Named>> {
    let a = archive::ingest(c, input).await?;
    let images = if let Some(layout) = &a.oci_layout {
        let v: Value = serde_json::from_slice(layout).context("oci-layout is not JSON")?;
        let version = v["imageLayoutVersion"].as_str().unwrap_or_default();
        if version != LAYOUT_VERSION {
            bail!("oci-layout: unsupported imageLayoutVersion {version:?} (want {LAYOUT_VERSION})");
        }
        let index = a
            .index
            .as_deref()
            .context("OCI image layout without index.json")?;
        oci(c, &a, index, base).await?
    } else if let Some(index) = &a.index {
        oci(c, &a, index, base).await?
    } else if let Some(manifest) = &a.manifest {
        docker::images(c, &a, manifest).await?
    } else {
        bail!(
            "not an image archive: it has neither index.json (OCI image layout) \
             nor manifest.json (docker save)"
        );
    };
    if images.is_empty() {
        bail!(
            "no image in the archive has a name (index.json annotation {IMAGE_NAME} or \
             {REF_NAME}, or manifest.json RepoTags)"
        );
    }
    Ok(images)
}

/// The images of an OCI layout: each entry of `index.json` for this
/// platform that has a name (see [`names`]).
async fn oci(c: &Ctrd, a: &Archive, index: &[u8], base: Option<&str>) -> Result<Vec<Named>> {
    let idx: Value = serde_json::from_slice(index).context("index.json is not JSON")?;
    let list = idx["manifests"]
        .as_array()
        .context("index.json has no manifests list")?;
    let mut out = Vec::new();
    for (i, m) in list.iter().enumerate() {
        let at = format!("index.json manifests[{i}]");
        if !walk::platform_ok(m) {
            continue;
        }
        let d = descriptor(m).with_context(|| at.clone())?;
        let found = names(c, a, &d, base).await.with_context(|| at.clone())?;
        if found.is_empty() {
            tracing::warn!("podrun: {at} has no name: skipped");
            continue;
        }
        walk::walk(c, a, &d, &at).await?;
        out.extend(found);
    }
    Ok(out)
}

/// The names of index entry `d`, as `ctr images import` gives them:
/// `io.containerd.image.name`, else `org.opencontainers.image.ref.name`
/// (see [`reference::oci_ref_name`]). An archive docker wrote may name
/// its images only in `manifest.json`: then its `RepoTags` for the entry
/// whose config this manifest has.
async fn names(c: &Ctrd, a: &Archive, d: &Descriptor, base: Option<&str>) -> Result<Vec<Named>> {
    let given = d.annotations.get(IMAGE_NAME).filter(|n| !n.is_empty());
    let name = match (given, d.annotations.get(REF_NAME)) {
        (Some(n), _) => Some(n.clone()),
        (None, Some(r)) if !r.is_empty() => reference::oci_ref_name(r, base)?,
        _ => None,
    };
    if let Some(name) = name {
        return Ok(vec![Named {
            name,
            target: d.clone(),
        }]);
    }
    let (Some(manifest), true) = (&a.manifest, a.has(&d.digest)) else {
        return Ok(Vec::new());
    };
    let m: Value = serde_json::from_slice(&c.read_blob(&d.digest).await?)
        .with_context(|| format!("manifest {} is not JSON", d.digest))?;
    let config = blob_path(m["config"]["digest"].as_str().unwrap_or_default());
    let mut out = Vec::new();
    for e in docker::entries(manifest)? {
        if archive::clean(&e.config) == config {
            for name in docker::names(&e).context("manifest.json RepoTags")? {
                out.push(docker::named(name, d));
            }
        }
    }
    Ok(out)
}
