//! Unpacking an image for the snapshotter, as containerd's unpacker does
//! (`core/unpack/unpacker.go`): for each layer in order, unless a
//! committed snapshot named by its chain ID exists already, prepare an
//! `extract-…` snapshot on the previous chain ID, apply the layer through
//! the diff service, check the uncompressed digest against the config's
//! diff ID, and commit it as the chain ID. The layer blob then records its
//! uncompressed digest, and the config references the top snapshot, which
//! keeps the whole chain from the garbage collector once the import's lease
//! is gone.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use containerd_client::types::Descriptor;

use crate::ctrd::Ctrd;
use crate::image::{chain_id, strings};

/// Snapshot label naming the chain ID being unpacked (what remote
/// snapshotters key on; containerd's unpacker always sets it).
const SNAPSHOT_REF: &str = "containerd.io/snapshot.ref";
/// Blob label: the digest of the layer uncompressed (its diff ID).
const UNCOMPRESSED: &str = "containerd.io/uncompressed";

/// Unpacks the image of `config` with `layers`; `at` names it in errors.
pub async fn unpack(c: &Ctrd, config: &Descriptor, layers: &[Descriptor], at: &str) -> Result<()> {
    let blob = c.read_blob(&config.digest).await?;
    let cfg: serde_json::Value = serde_json::from_slice(&blob)
        .with_context(|| format!("{at}: config {} is not JSON", config.digest))?;
    let diff_ids = strings(&cfg["rootfs"]["diff_ids"]);
    if diff_ids.len() != layers.len() {
        bail!(
            "{at}: the manifest has {} layers but config {} lists {} diff_ids",
            layers.len(),
            config.digest,
            diff_ids.len()
        );
    }
    let mut chain: Vec<String> = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let parent = chain_id(&chain).unwrap_or_default();
        chain.push(diff_ids[i].clone());
        let id = chain_id(&chain).unwrap_or_default();
        if c.snapshot_exists(&id).await? {
            continue;
        }
        apply(c, layer, &parent, &id, &diff_ids[i])
            .await
            .with_context(|| format!("{at}: layer {i} ({})", layer.digest))?;
    }
    let Some(top) = chain_id(&chain) else {
        bail!("{at}: the image has no layers");
    };
    let key = format!("containerd.io/gc.ref.snapshot.{}", c.snapshotter);
    c.label_blob(&config.digest, HashMap::from([(key, top)]))
        .await
}

/// `extract-<unique> <chain ID>`, containerd's `snapshots.UnpackKeyFormat`.
fn extract_key(chain_id: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!(
        "extract-{}-{} {chain_id}",
        now.subsec_nanos(),
        std::process::id()
    )
}

/// One layer onto `parent`, committed as `id`; the extraction snapshot is
/// removed whatever happens.
async fn apply(c: &Ctrd, layer: &Descriptor, parent: &str, id: &str, diff_id: &str) -> Result<()> {
    let key = extract_key(id);
    let labels = HashMap::from([(SNAPSHOT_REF.to_string(), id.to_string())]);
    let mounts = c.prepare_labeled(&key, parent, labels.clone()).await?;
    let done = async {
        let applied = c.apply_layer(layer.clone(), mounts).await?;
        if applied != diff_id {
            bail!("its content uncompressed is {applied}, but the image config says {diff_id}");
        }
        Ok((applied, c.commit_snapshot(id, &key, labels).await?))
    }
    .await;
    match done {
        Ok((applied, true)) => {
            c.label_blob(
                &layer.digest,
                HashMap::from([(UNCOMPRESSED.into(), applied)]),
            )
            .await
        }
        // Another unpack committed the same chain ID first.
        Ok((_, false)) => c.remove_snapshot(&key).await,
        Err(e) => {
            if let Err(r) = c.remove_snapshot(&key).await {
                tracing::warn!("podrun: remove extraction snapshot {key:?}: {r:#}");
            }
            Err(e)
        }
    }
}
