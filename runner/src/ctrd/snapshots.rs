//! Snapshots of podrun's snapshotter: the active ones under containers,
//! and the committed ones an import unpacks layers into.

use std::collections::HashMap;

use anyhow::Result;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Mount;

use super::client::{ctx, missing, Ctrd};

impl Ctrd {
    pub async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        let mut c = SnapshotsClient::new(self.ch.clone());
        let r = StatSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.into(),
        };
        match c.stat(self.req(r)).await {
            Ok(_) => Ok(true),
            Err(s) if missing(&s) => Ok(false),
            Err(s) => Err(ctx(format!("stat snapshot {key}"))(s)),
        }
    }

    /// An active snapshot `key` on top of committed `parent`; its mounts.
    /// The parent of snapshot `key`, `None` when it does not exist.
    pub async fn snapshot_parent(&self, key: &str) -> Result<Option<String>> {
        let mut c = SnapshotsClient::new(self.ch.clone());
        let r = StatSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.into(),
        };
        match c.stat(self.req(r)).await {
            Ok(r) => Ok(r.into_inner().info.map(|i| i.parent)),
            Err(s) if missing(&s) => Ok(None),
            Err(s) => Err(ctx(format!("stat snapshot {key}"))(s)),
        }
    }

    pub async fn prepare_snapshot(&self, key: &str, parent: &str) -> Result<Vec<Mount>> {
        self.prepare_labeled(key, parent, HashMap::new()).await
    }

    pub async fn remove_snapshot(&self, key: &str) -> Result<()> {
        let mut c = SnapshotsClient::new(self.ch.clone());
        let r = RemoveSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.into(),
        };
        match c.remove(self.req(r)).await {
            Ok(_) => Ok(()),
            Err(s) if missing(&s) => Ok(()),
            Err(s) => Err(ctx(format!("remove snapshot {key}"))(s)),
        }
    }

    /// An active snapshot `key` on `parent` ("" for none) with `labels`.
    pub async fn prepare_labeled(
        &self,
        key: &str,
        parent: &str,
        labels: HashMap<String, String>,
    ) -> Result<Vec<Mount>> {
        let mut c = SnapshotsClient::new(self.ch.clone());
        let r = PrepareSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            key: key.into(),
            parent: parent.into(),
            labels,
        };
        Ok(c.prepare(self.req(r))
            .await
            .map_err(ctx(format!("prepare snapshot {key}")))?
            .into_inner()
            .mounts)
    }

    /// Commits active snapshot `key` as `name`. `Ok(false)` if a
    /// snapshot `name` exists already (another unpack won the race).
    pub async fn commit_snapshot(
        &self,
        name: &str,
        key: &str,
        labels: HashMap<String, String>,
    ) -> Result<bool> {
        let mut c = SnapshotsClient::new(self.ch.clone());
        let r = CommitSnapshotRequest {
            snapshotter: self.snapshotter.clone(),
            name: name.into(),
            key: key.into(),
            labels,
        };
        match c.commit(self.req(r)).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::AlreadyExists => Ok(false),
            Err(s) => Err(ctx(format!("commit snapshot {name}"))(s)),
        }
    }
}
