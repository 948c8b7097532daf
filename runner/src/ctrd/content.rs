//! containerd's content store, image records and diff service: what
//! `podrun image import` needs besides snapshots.
//!
//! A blob is written as the Go client's content writer does over the
//! `Content.Write` stream (proxy `content_writer.go`): STAT (takes the
//! ingest's lock; fails with AlreadyExists when the expected digest is
//! stored already), WRITE messages with offsets, then COMMIT with the size
//! and digest, which containerd verifies. Each message gets one answer.

use std::collections::HashMap;
use std::io::Read;

use anyhow::{bail, Context, Result};
use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    AbortRequest, ApplyRequest, CreateImageRequest, Image, Info, InfoRequest, ReadContentRequest,
    UpdateImageRequest, UpdateRequest, WriteAction, WriteContentRequest, WriteContentResponse,
};
use containerd_client::tonic::{Code, Status, Streaming};
use containerd_client::types::{Descriptor, Mount};
use prost_types::FieldMask;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::client::{ctx, missing, Ctrd};

/// Bytes per WRITE message (the Go client copies through 1 MiB buffers).
const CHUNK: usize = 1 << 20;

/// What a blob write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobWrite {
    /// `sha256:<hex>` of the bytes read.
    pub digest: String,
    pub size: u64,
    /// Its first bytes (up to 8), to tell a gzip layer from a tar.
    pub head: Vec<u8>,
}

/// `sha256:<hex>` of a hasher's state.
pub fn hex_digest(h: Sha256) -> String {
    let sum = h.finalize();
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in sum {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The whole of `buf` from `r`, or less at end of input.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// One open `Content.Write` stream, driven message by answer.
struct Writer {
    tx: mpsc::Sender<WriteContentRequest>,
    rx: Streaming<WriteContentResponse>,
}

impl Writer {
    /// Sends `m`, returns its answer (the stream's error status if the
    /// server ended it).
    async fn call(&mut self, m: WriteContentRequest) -> Result<WriteContentResponse, Status> {
        // A closed request stream means the server ended the call: its
        // status is what `message` returns next.
        let _ = self.tx.send(m).await;
        self.rx
            .message()
            .await?
            .ok_or_else(|| Status::new(Code::Aborted, "write stream closed by containerd"))
    }
}

impl Ctrd {
    /// Streams `r` (`size` bytes) into the content store as one blob under
    /// ingest `ingest`. With `expected`, a blob already stored is not sent
    /// again and bytes of another digest are refused before the commit.
    /// Stores nothing when it fails (the ingest, if any, belongs to the
    /// handle's lease).
    pub async fn write_blob(
        &self,
        ingest: &str,
        r: &mut dyn Read,
        size: u64,
        expected: Option<&str>,
    ) -> Result<BlobWrite> {
        let what = format!("write blob {}", expected.unwrap_or(ingest));
        let mut c = ContentClient::new(self.ch.clone());
        let (tx, rx) = mpsc::channel(1);
        let stat = WriteContentRequest {
            action: WriteAction::Stat as i32,
            r#ref: ingest.into(),
            total: size as i64,
            expected: expected.unwrap_or_default().into(),
            ..Default::default()
        };
        let _ = tx.send(stat).await;
        let exists = |expected: Option<&str>| BlobWrite {
            digest: expected.unwrap_or_default().into(),
            size,
            head: Vec::new(),
        };
        let rx = match c.write(self.req(ReceiverStream::new(rx))).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == Code::AlreadyExists => return Ok(exists(expected)),
            Err(s) => return Err(ctx(what)(s)),
        };
        let mut w = Writer { tx, rx };
        match w.rx.message().await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => return Ok(exists(expected)),
            Err(s) => return Err(ctx(what)(s)),
        }
        let mut hash = Sha256::new();
        let mut head = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let n = fill(r, &mut buf).context("read the archive")?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            if head.is_empty() {
                head = buf[..n.min(8)].to_vec();
            }
            let m = WriteContentRequest {
                action: WriteAction::Write as i32,
                offset: offset as i64,
                data: buf[..n].to_vec(),
                ..Default::default()
            };
            w.call(m).await.map_err(ctx(&what))?;
            offset += n as u64;
        }
        let digest = hex_digest(hash);
        if offset != size || expected.is_some_and(|e| e != digest) {
            drop(w);
            self.abort_ingest(ingest).await;
            if offset != size {
                bail!("{offset} bytes where the archive header says {size}");
            }
            bail!(
                "content is {digest}, not the {} its name says (corrupt archive?)",
                expected.unwrap_or_default()
            );
        }
        let commit = WriteContentRequest {
            action: WriteAction::Commit as i32,
            total: size as i64,
            offset: offset as i64,
            expected: digest.clone(),
            ..Default::default()
        };
        match w.call(commit).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(ctx(what)(s)),
        }
        Ok(BlobWrite { digest, size, head })
    }

    /// Best effort: frees an unfinished ingest now rather than when its
    /// lease goes.
    async fn abort_ingest(&self, ingest: &str) {
        let mut c = ContentClient::new(self.ch.clone());
        let _ = c
            .abort(self.req(AbortRequest {
                r#ref: ingest.into(),
            }))
            .await;
    }

    /// The first `n` bytes of blob `digest` (fewer if it is shorter).
    pub async fn read_head(&self, digest: &str, n: usize) -> Result<Vec<u8>> {
        let mut c = ContentClient::new(self.ch.clone());
        let r = ReadContentRequest {
            digest: digest.into(),
            offset: 0,
            size: n as i64,
        };
        let what = format!("read blob {digest}");
        let mut stream = c.read(self.req(r)).await.map_err(ctx(&what))?.into_inner();
        let mut out = Vec::new();
        while let Some(chunk) = stream.message().await.map_err(ctx(&what))? {
            out.extend_from_slice(&chunk.data);
        }
        out.truncate(n);
        Ok(out)
    }

    /// Whether blob `digest` is in the content store.
    pub async fn blob_exists(&self, digest: &str) -> Result<bool> {
        let mut c = ContentClient::new(self.ch.clone());
        let r = InfoRequest {
            digest: digest.into(),
        };
        match c.info(self.req(r)).await {
            Ok(_) => Ok(true),
            Err(s) if missing(&s) => Ok(false),
            Err(s) => Err(ctx(format!("stat blob {digest}"))(s)),
        }
    }

    /// Sets `labels` on blob `digest`, leaving its other labels alone.
    pub async fn label_blob(&self, digest: &str, labels: HashMap<String, String>) -> Result<()> {
        if labels.is_empty() {
            return Ok(());
        }
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let mut c = ContentClient::new(self.ch.clone());
        let r = UpdateRequest {
            info: Some(Info {
                digest: digest.into(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(FieldMask { paths }),
        };
        c.update(self.req(r))
            .await
            .map_err(ctx(format!("label blob {digest}")))?;
        Ok(())
    }

    /// Points image record `name` at `target`, creating the record if
    /// there is none (`ctr images import` updates, then creates).
    pub async fn put_image(&self, name: &str, target: Descriptor) -> Result<()> {
        let mut c = ImagesClient::new(self.ch.clone());
        let image = Image {
            name: name.into(),
            target: Some(target),
            ..Default::default()
        };
        let update = UpdateImageRequest {
            image: Some(image.clone()),
            update_mask: Some(FieldMask {
                paths: vec!["target".into()],
            }),
            source_date_epoch: None,
        };
        match c.update(self.req(update)).await {
            Ok(_) => return Ok(()),
            Err(s) if missing(&s) => {}
            Err(s) => return Err(ctx(format!("update image {name}"))(s)),
        }
        let create = CreateImageRequest {
            image: Some(image),
            source_date_epoch: None,
        };
        c.create(self.req(create))
            .await
            .map_err(ctx(format!("create image {name}")))?;
        Ok(())
    }

    /// Applies layer `layer` (a blob in the content store; the media type
    /// says its compression) onto `mounts`; returns the digest of the
    /// uncompressed tar, which must equal the layer's diff ID.
    pub async fn apply_layer(&self, layer: Descriptor, mounts: Vec<Mount>) -> Result<String> {
        let what = format!("apply layer {}", layer.digest);
        let mut c = DiffClient::new(self.ch.clone());
        let r = ApplyRequest {
            diff: Some(layer),
            mounts,
            ..Default::default()
        };
        let applied = c
            .apply(self.req(r))
            .await
            .map_err(ctx(&what))?
            .into_inner()
            .applied
            .with_context(|| format!("{what}: containerd returned no descriptor"))?;
        Ok(applied.digest)
    }
}
