//! How a pod's containers ended, kept in `pods/<pod>/exits.json` once
//! their tasks are deleted (containerd forgets them then).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::ctx::Ctx;

/// How one container ended.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exit {
    pub code: u32,
    pub oom_killed: bool,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

fn exits_path(ctx: &Ctx, pod: &str) -> std::path::PathBuf {
    ctx.store.pod_dir(pod).join("exits.json")
}

pub fn load_exits(ctx: &Ctx, pod: &str) -> BTreeMap<String, Exit> {
    std::fs::read(exits_path(ctx, pod))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_exits(ctx: &Ctx, pod: &str, exits: &BTreeMap<String, Exit>) -> Result<()> {
    if !ctx.store.pod_dir(pod).exists() {
        return Ok(());
    }
    crate::state::write_atomic(&exits_path(ctx, pod), &serde_json::to_vec(exits)?, 0o600)
}
