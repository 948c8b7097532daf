//! Driving a pod's containerd objects to gone, deterministically.
//!
//! `rm` holds the pod's flock, so no `run` of the pod is alive (the kernel
//! released the lock of a killed one). What a dead `run` can leave is
//! observable: tasks, containers and snapshots under the IDs its record
//! names, its lease, and shim processes (see [`crate::shims`]). Each pass deletes what
//! it sees; a pass that sees nothing left ends it. The only thing worth
//! waiting for is a Create containerd is still executing for the dead run
//! (a shim whose bundle exists while its task is not visible): the pass
//! asks containerd to delete that task, and containerd either finishes or
//! fails the Create (the next pass deletes the task, or sees the shim
//! gone, or orphaned and kills it). Known transient errors (containerd restarting, a shim gone
//! under a call, a task not yet stopped) are retried the same way. No
//! quiet periods: every wait is on a condition a pass observed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

use crate::ctx::Ctx;
use crate::exits::Exit;
use crate::shims;
use crate::state::PodRecord;

/// Between passes that found something still in progress.
const POLL: Duration = Duration::from_millis(50);
/// After this, `rm` fails naming what is still in progress (and can be
/// run again).
const LIMIT: Duration = Duration::from_secs(60);

/// What one pass saw.
#[derive(Default)]
struct Pass {
    /// Still in progress or transiently failing: wait and look again.
    waiting: Vec<String>,
    /// Failed for good.
    errors: Vec<String>,
}

impl Pass {
    fn note(&mut self, r: Result<()>) {
        if let Err(e) = r {
            if crate::ctrd::transient(&e) {
                self.waiting.push(format!("{e:#}"));
            } else {
                self.errors.push(format!("{e:#}"));
            }
        }
    }
}

/// The pod's containerd IDs, apps in reverse spec order, init
/// containers (left by an interrupted `run`), then the pause.
fn ids(rec: &PodRecord) -> Vec<String> {
    let mut ids: Vec<String> = rec.container_ids.iter().rev().cloned().collect();
    ids.extend(rec.init_container_ids.iter().cloned());
    ids.push(rec.sandbox_id.clone());
    ids
}

/// Stops and deletes every task of the pod (recording how the apps
/// ended in `exits`), then deletes its containers and snapshots and any
/// orphaned shim, until a pass finds nothing left.
pub async fn containerd_gone(
    ctx: &Ctx,
    rec: &PodRecord,
    grace: Duration,
    exits: &mut BTreeMap<String, Exit>,
) -> Result<()> {
    let end = Instant::now() + LIMIT;
    let mut had_task = BTreeSet::new();
    loop {
        let pass = one_pass(ctx, rec, grace, exits, &mut had_task).await;
        if !pass.errors.is_empty() {
            return Err(anyhow!("{}", pass.errors.join("; ")));
        }
        if pass.waiting.is_empty() {
            return Ok(());
        }
        if Instant::now() >= end {
            return Err(anyhow!(
                "still in progress after {}s: {} (run `podrun rm {}` again)",
                LIMIT.as_secs(),
                pass.waiting.join("; "),
                rec.spec.name
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn one_pass(
    ctx: &Ctx,
    rec: &PodRecord,
    grace: Duration,
    exits: &mut BTreeMap<String, Exit>,
    had_task: &mut BTreeSet<String>,
) -> Pass {
    let mut pass = Pass::default();
    let ids = ids(rec);
    for id in &ids {
        match stop_task(ctx, id, grace).await {
            Ok(Some(e)) => {
                had_task.insert(id.clone());
                if let Some(i) = rec.container_ids.iter().position(|c| c == id) {
                    exits.insert(rec.spec.containers[i].name.clone(), e);
                }
            }
            Ok(None) => {}
            Err(e) => pass.note(Err(e)),
        }
    }
    let want = |id: &str| ids.iter().any(|x| x == id);
    for shim in shims::find(&ctx.g.namespace, &ctx.g.address, &want) {
        if shim.bundle_exists {
            // A task whose runc container does not exist (yet) is not
            // visible to Get, but Delete finds it once containerd lists
            // its shim: mid-Create, or loaded at a containerd restart
            // after a Create that never finished. Its shim then shuts
            // down (the container is kept for this: Delete needs it).
            let what = match ctx.ctrd.delete_task(&shim.id).await {
                Ok(Some(_)) => {
                    tracing::info!(
                        "podrun: deleted half-created task of {} (shim pid {})",
                        shim.id,
                        shim.pid
                    );
                    "deleted its half-created task".to_string()
                }
                Ok(None) => "containerd is still creating or deleting its task".into(),
                Err(e) => format!("{e:#}"),
            };
            pass.waiting
                .push(format!("shim pid {} of {}: {what}", shim.pid, shim.id));
        } else {
            // A shim that just shut down after its task's delete looks
            // the same; only one without any task is worth a word.
            kill_orphan(ctx, &shim, !had_task.contains(&shim.id));
        }
    }
    if !pass.waiting.is_empty() {
        // Containers stay while a task may still appear under them: a
        // task without its container cannot be deleted by ID later.
        return pass;
    }
    for id in &ids {
        pass.note(ctx.ctrd.delete_container(id).await);
        pass.note(ctx.ctrd.remove_snapshot(id).await);
    }
    // The lease of a `run` killed before it could delete it.
    let lease = crate::ctx::run_lease(&rec.sandbox_id);
    pass.note(ctx.ctrd.delete_lease(&lease, false).await);
    // A Create that completed while this pass ran shows up now.
    for id in &ids {
        match ctx.ctrd.task_state(id, "").await {
            Ok(Some(_)) => pass.waiting.push(format!("task {id} appeared")),
            Ok(None) => {}
            Err(e) => pass.note(Err(e)),
        }
    }
    pass
}

/// Kills an orphaned shim (see [`crate::shims`]); says so when `tell`.
fn kill_orphan(ctx: &Ctx, shim: &shims::Shim, tell: bool) -> bool {
    let killed = shims::kill_orphan(shim, &ctx.g.namespace, &ctx.g.address);
    if killed && tell {
        tracing::info!(
            "podrun: killed orphaned shim (pid {}) of {}: containerd had dropped its bundle",
            shim.pid,
            shim.id
        );
    }
    killed
}

/// Kills every orphaned shim (bundle deleted: containerd has forgotten
/// it) whose container ID `want` accepts; returns how many. `run` does
/// this for its pod before creating anything (a new Create of the same
/// ID would reuse the orphan's socket), `gc` for all of this podrun's
/// IDs: an orphan that appeared after an `rm` (containerd executing a
/// dead run's request late) is caught there.
pub fn sweep_orphans(ctx: &Ctx, want: &dyn Fn(&str) -> bool) -> usize {
    shims::find(&ctx.g.namespace, &ctx.g.address, want)
        .iter()
        .filter(|s| !s.bundle_exists && kill_orphan(ctx, s, true))
        .count()
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
async fn wait_stopped(ctx: &Ctx, id: &str, limit: Duration) -> Result<bool> {
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
