//! `podrun stop` and `podrun rm`: idempotent; a missing task, container,
//! snapshot, netns or cache entry counts as done. Works from the record
//! alone, so it also cleans up after a crash or a half-created pod. `rm`
//! goes in order (containerd objects, then the network, then the state)
//! and stops at the first layer that fails, keeping everything a retry
//! needs: nothing that is needed to release the pod's IP is ever lost.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::pod::Ctx;
use crate::state::PodRecord;

/// How a container ended, kept in `pods/<pod>/exits.json` once its task
/// is deleted (containerd forgets it then).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Exit {
    pub code: u32,
    pub oom_killed: bool,
    /// Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
}

/// Stops one task: SIGTERM to all its processes, SIGKILL after `grace`,
/// then deletes it. Returns how it ended, if it had a task.
pub async fn stop_task(ctx: &Ctx, id: &str, grace: Duration) -> Result<Option<Exit>> {
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
    let finished_at = match ctx.ctrd.task_state(id, "").await? {
        Some(s) => s.exited_at,
        None => st.exited_at,
    };
    let code = ctx.ctrd.delete_task(id).await?.unwrap_or(st.exit_status);
    Ok(Some(Exit {
        code,
        oom_killed: oom,
        finished_at,
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

/// The record's phase once every task and container of a pod is gone
/// but its network could not be torn down (CNI DEL failed): the netns,
/// libcni's cached result and the record stay, so that a later `rm` or
/// `gc` can still DEL and release the IP.
pub const TEARDOWN_PENDING: &str = "teardown-pending";

/// CNI DEL, then the netns. When DEL fails the netns is kept (a later
/// DEL gets it, as CRI's StopPodSandbox retries do) and so is libcni's
/// cache entry (`Network::del` drops it only after success).
/// A hostNetwork pod has neither: nothing to do.
fn network_down(ctx: &Ctx, rec: &PodRecord, retry: &str) -> Result<()> {
    if rec.spec.host_network {
        return Ok(());
    }
    ctx.network_of(rec)
        .and_then(|net| net.del(&ctx.attachment(rec, true)))
        .map_err(|e| {
            anyhow!(
                "network teardown pending: {e:#} (CNI_PATH {:?}); the pod's netns, \
                 cached CNI result and record are kept so its IP can still be released: \
                 once the plugin works again run {retry}",
                ctx.g.cni_bin_dir,
            )
        })?;
    netkit::delete_named(&rec.netns_name).map_err(|e| anyhow!("{e}"))
}

/// Stop: the supervisor, tasks (apps in reverse order, then pause),
/// then the network.
pub async fn stop(ctx: &Ctx, rec: &PodRecord, grace_secs: u64) -> Result<()> {
    crate::lifecycle::end_supervisor(rec)
        .with_context(|| format!("stop pod {:?}", rec.spec.name))?;
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
    let retry = format!("`podrun stop {0}` or `podrun rm {0}`", rec.spec.name);
    note(&mut errs, network_down(ctx, rec, &retry));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("stop pod {:?}: {}", rec.spec.name, errs.join("; ")))
    }
}

fn note(errs: &mut Vec<String>, r: Result<()>) {
    if let Err(e) = r {
        errs.push(format!("{e:#}"));
    }
}

/// Remove: the supervisor, then every task, container, snapshot and shim of the pod (driven
/// to gone, see [`crate::converge`]), then the network, then the pod's
/// state. If only the network failed, the record stays in phase
/// [`TEARDOWN_PENDING`].
pub async fn remove(ctx: &Ctx, rec: &PodRecord, grace_secs: u64) -> Result<()> {
    let pod = &rec.spec.name;
    crate::lifecycle::end_supervisor(rec).with_context(|| format!("rm pod {pod:?}"))?;
    let mut errs = Vec::new();
    let mut exits = load_exits(ctx, pod);
    let grace = Duration::from_secs(grace_secs);
    note(
        &mut errs,
        crate::converge::containerd_gone(ctx, rec, grace, &mut exits).await,
    );
    note(&mut errs, save_exits(ctx, pod, &exits));
    ctx.cgroups.remove_parent_if_empty(&ctx.g.namespace);
    if !errs.is_empty() {
        return Err(anyhow!("rm pod {pod:?}: {}", errs.join("; ")));
    }
    let retry = format!("`podrun rm {pod}` or `podrun gc`");
    if let Err(e) = network_down(ctx, rec, &retry) {
        if rec.phase != TEARDOWN_PENDING {
            let mut pending = rec.clone();
            pending.phase = TEARDOWN_PENDING.into();
            ctx.store.save(&pending)?;
        }
        return Err(e.context(format!("rm pod {pod:?}")));
    }
    // State goes last: while anything failed, rm can be run again. A
    // memory emptyDir is unmounted first, so only directories are removed.
    crate::volumes::teardown(&ctx.store.pod_dir(pod)).context(format!("rm pod {pod:?}"))?;
    ctx.store.remove_pod_dir(pod)
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
