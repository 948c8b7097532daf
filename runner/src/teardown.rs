//! `podrun stop` and `podrun rm`: best-effort and idempotent. Every step
//! runs even when an earlier one failed; a missing task, container,
//! snapshot, netns or cache entry counts as done. Works from the record
//! alone, so it also cleans up after a crash or a half-created pod.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};

use crate::pod::Ctx;
use crate::state::PodRecord;

/// How a container ended, kept in `pods/<pod>/exits.json` once its task
/// is deleted (containerd forgets it then).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exit {
    pub code: u32,
    pub oom_killed: bool,
}

/// Stops one task: SIGTERM to all its processes, SIGKILL after `grace`,
/// then deletes it. Returns how it ended, if it had a task.
async fn stop_task(ctx: &Ctx, id: &str, grace: Duration) -> Result<Option<Exit>> {
    let Some(st) = ctx.ctrd.task_state(id, "").await? else {
        return Ok(None);
    };
    if st.running {
        ctx.ctrd.kill(id, libc::SIGTERM, true).await?;
        if !wait_stopped(ctx, id, grace).await? {
            ctx.ctrd.kill(id, libc::SIGKILL, true).await?;
            wait_stopped(ctx, id, Duration::from_secs(10)).await?;
        }
    }
    // Read the OOM counter while the cgroup still exists.
    let oom = ctx.cgroups.oom_kills(&ctx.cgroups_path(id)).unwrap_or(0) > 0;
    let code = ctx.ctrd.delete_task(id).await?.unwrap_or(st.exit_status);
    Ok(Some(Exit {
        code,
        oom_killed: oom,
    }))
}

/// Polls until the task's init is stopped or gone; false on timeout.
pub async fn wait_stopped(ctx: &Ctx, id: &str, limit: Duration) -> Result<bool> {
    let end = Instant::now() + limit;
    loop {
        match ctx.ctrd.task_state(id, "").await? {
            Some(s) if s.running => {}
            _ => return Ok(true),
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits, after a `run` died mid-way, until containerd has finished the
/// requests that run left in flight. A task Create spawns the pod's shim
/// and runs `runc create` before the task is visible; deleting the
/// container under it orphans the shim. So: wait while a shim of one of
/// the pod's IDs exists without its task, and until that has held for
/// [`SETTLED`] (which covers a Create that reached containerd but has not
/// spawned its shim yet). Gives up after 10 s and lets `rm` proceed.
pub async fn settle(ctx: &Ctx, rec: &PodRecord) -> Result<()> {
    let end = Instant::now() + Duration::from_secs(10);
    let ids: Vec<&String> = rec
        .container_ids
        .iter()
        .chain(std::iter::once(&rec.sandbox_id))
        .collect();
    let mut quiet_since = Instant::now();
    loop {
        let shims = shim_ids(&ctx.g.namespace);
        let mut starting = false;
        for id in &ids {
            if shims.iter().any(|s| s == *id) && ctx.ctrd.task_state(id, "").await?.is_none() {
                starting = true;
            }
        }
        if starting {
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= SETTLED {
            return Ok(());
        }
        if Instant::now() >= end {
            eprintln!(
                "podrun: containerd did not settle for pod {:?}",
                rec.spec.name
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long no shim may be starting before a dead run's pod counts as
/// settled.
const SETTLED: Duration = Duration::from_millis(300);

/// Container IDs of the runc shims (`containerd-shim-runc-v2 -namespace
/// NS -id ID …`) running for containerd namespace `ns`, from /proc.
fn shim_ids(ns: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if !args
            .first()
            .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"))
        {
            continue;
        }
        let flag = |name: &[u8]| {
            args.windows(2)
                .find(|w| w[0] == name)
                .map(|w| String::from_utf8_lossy(w[1]).into_owned())
        };
        if flag(b"-namespace").as_deref() == Some(ns) {
            out.extend(flag(b"-id"));
        }
    }
    out
}

fn note(errs: &mut Vec<String>, r: Result<()>) {
    if let Err(e) = r {
        errs.push(format!("{e:#}"));
    }
}

/// Stop: tasks (apps in reverse order, then pause), CNI DEL, netns.
pub async fn stop(ctx: &Ctx, rec: &PodRecord, grace_secs: u64) -> Result<()> {
    let grace = Duration::from_secs(grace_secs);
    let mut errs = Vec::new();
    let mut exits = load_exits(ctx, &rec.spec.name);
    for (i, id) in rec.container_ids.iter().enumerate().rev() {
        match stop_task(ctx, id, grace).await {
            Ok(Some(e)) => {
                exits.insert(rec.spec.containers[i].name.clone(), e);
            }
            Ok(None) => {}
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    note(&mut errs, save_exits(ctx, &rec.spec.name, &exits));
    note(
        &mut errs,
        stop_task(ctx, &rec.sandbox_id, grace).await.map(|_| ()),
    );
    // CNI DEL, with the netns when it still exists (CRI's second DEL
    // passes none; plugins must clean host state either way).
    let del = ctx
        .network_of(rec)
        .and_then(|net| net.del(&ctx.attachment(rec, true)));
    note(&mut errs, del);
    note(
        &mut errs,
        netkit::delete_named(&rec.netns_name).map_err(|e| anyhow!("{e}")),
    );
    if errs.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("stop pod {:?}: {}", rec.spec.name, errs.join("; ")))
    }
}

/// Remove: stop, then containers, snapshots and the pod's state.
pub async fn remove(ctx: &Ctx, rec: &PodRecord, grace_secs: u64) -> Result<()> {
    let mut errs = Vec::new();
    note(&mut errs, stop(ctx, rec, grace_secs).await);
    for id in rec
        .container_ids
        .iter()
        .chain(std::iter::once(&rec.sandbox_id))
    {
        note(&mut errs, ctx.ctrd.delete_container(id).await);
        note(&mut errs, ctx.ctrd.remove_snapshot(id).await);
    }
    ctx.cgroups.remove_parent_if_empty(&ctx.g.namespace);
    if errs.is_empty() {
        // State goes last: while anything failed, rm can be run again.
        ctx.store.remove_pod_dir(&rec.spec.name)
    } else {
        Err(anyhow!("rm pod {:?}: {}", rec.spec.name, errs.join("; ")))
    }
}

fn exits_path(ctx: &Ctx, pod: &str) -> std::path::PathBuf {
    ctx.store.pod_dir(pod).join("exits.json")
}

pub fn load_exits(ctx: &Ctx, pod: &str) -> std::collections::BTreeMap<String, Exit> {
    std::fs::read(exits_path(ctx, pod))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn save_exits(
    ctx: &Ctx,
    pod: &str,
    exits: &std::collections::BTreeMap<String, Exit>,
) -> Result<()> {
    if !ctx.store.pod_dir(pod).exists() {
        return Ok(());
    }
    crate::state::write_atomic(&exits_path(ctx, pod), &serde_json::to_vec(exits)?, 0o600)
}
