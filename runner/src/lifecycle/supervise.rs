//! The supervisor: keeps a pod's `restartPolicy` while it runs.
//!
//! It waits on the app containers' tasks (containerd's Tasks.Wait), and
//! when one exits and the policy restarts that exit, waits out the
//! back-off ([`Backoff`]) and starts the container again: its task is
//! deleted, its rootfs snapshot made afresh from the image (a restarted
//! container starts from a clean image, as the kubelet's new container
//! does), and a new task is started with the same log files.
//!
//! Everything it knows lives in the pod record; it changes the record,
//! and the containers, only while holding the pod lock, and only while
//! the record still names it as the pod's supervisor and the pod is
//! running. So `stop`/`rm`, which take the lock and end it first (see
//! [`super::process::end`]), never race a restart.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::backoff::{self, Backoff};
use super::status::{now_ms, ProcRef};
use crate::ctx::Ctx;
use crate::lock::PodLock;
use crate::spec::RestartPolicy;
use crate::state::PodRecord;

/// How often the supervisor looks at the record even when no container
/// exits (a pod whose record is gone ends it).
const RECHECK: Duration = Duration::from_secs(30);
/// Between retries when containerd cannot be asked.
const RETRY: Duration = Duration::from_secs(1);

/// What the supervisor expects of one app container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// Its task runs: wait for its exit.
    Running,
    /// Exited; start it again at this time.
    Waiting(Instant),
    /// Exited for good (the policy does not restart this exit), or has
    /// no task to watch.
    Done,
}

/// One supervisor of one pod.
struct Sup<'a> {
    ctx: &'a Ctx,
    pod: &'a str,
    me: &'a ProcRef,
    policy: RestartPolicy,
    backoff: Backoff,
    /// containerd IDs and names of the app containers, in spec order.
    ids: Vec<String>,
    names: Vec<String>,
}

/// Supervises `pod` until every container is done, or the pod is no
/// longer running or no longer names `me` as its supervisor (Ok), or
/// the pod is broken (Err).
pub async fn run(ctx: &Ctx, pod: &str, me: &ProcRef) -> Result<()> {
    let rec = {
        let _lock = PodLock::acquire(&ctx.store, pod)?;
        match claim(ctx, pod, me)? {
            Some(rec) => rec,
            None => {
                tracing::info!("podrun supervise: pod {pod:?} is not mine to supervise");
                return Ok(());
            }
        }
    };
    let initial = rec.lifecycle.restart_backoff_ms.map(Duration::from_millis);
    let sup = Sup {
        ctx,
        pod,
        me,
        policy: backoff::policy(&rec.spec),
        backoff: Backoff {
            initial: initial.unwrap_or(backoff::INITIAL),
        },
        ids: rec.container_ids.clone(),
        names: rec.spec.containers.iter().map(|c| c.name.clone()).collect(),
    };
    tracing::info!(
        "podrun supervise: pod {pod:?}, restartPolicy {:?}, pid {}",
        sup.policy,
        me.pid
    );
    let mut watch = Vec::new();
    for i in 0..sup.ids.len() {
        match sup.look(i).await? {
            Some(w) => watch.push(w),
            None => return Ok(()),
        }
    }
    sup.watch(watch).await
}

/// The pod's record if `me` may act on it: it exists, is running and
/// names `me` as its supervisor. Call with the pod lock held.
fn claim(ctx: &Ctx, pod: &str, me: &ProcRef) -> Result<Option<PodRecord>> {
    Ok(ctx
        .store
        .load(pod)?
        .filter(|r| r.phase == "running" && r.lifecycle.supervisor.as_ref() == Some(me)))
}

/// What happened while the supervisor waited.
enum Event {
    /// A container's Tasks.Wait returned.
    Exit(usize, Result<(u32, Option<u64>)>),
    /// A restart is due.
    Due,
    Recheck,
}

impl Sup<'_> {
    async fn watch(&self, mut watch: Vec<Watch>) -> Result<()> {
        loop {
            if watch.iter().all(|w| *w == Watch::Done) {
                tracing::info!(
                    "podrun supervise: pod {:?}: no container is left to restart \
                     (restartPolicy {:?})",
                    self.pod,
                    self.policy
                );
                return Ok(());
            }
            let mut waits = JoinSet::new();
            for (i, w) in watch.iter().enumerate() {
                if *w == Watch::Running {
                    let (ctrd, id) = (self.ctx.ctrd.clone(), self.ids[i].clone());
                    waits.spawn(async move { (i, ctrd.wait(&id).await) });
                }
            }
            let due = watch
                .iter()
                .filter_map(|w| match w {
                    Watch::Waiting(t) => Some(*t),
                    _ => None,
                })
                .min();
            let event = tokio::select! {
                Some(j) = waits.join_next(), if !waits.is_empty() => {
                    let (i, r) = j.map_err(|e| anyhow!("wait task: {e}"))?;
                    Event::Exit(i, r)
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    Event::Due
                }
                _ = tokio::time::sleep(RECHECK) => Event::Recheck,
            };
            // Dropping the set cancels the other waits; the next round
            // asks again.
            drop(waits);
            let next = match event {
                Event::Exit(i, Ok((code, at))) => self.exited(i, code, at).await?.map(|w| (i, w)),
                Event::Exit(i, Err(e)) => {
                    tracing::warn!("podrun supervise: {e:#}; looking again in {RETRY:?}");
                    tokio::time::sleep(RETRY).await;
                    self.look(i).await?.map(|w| (i, w))
                }
                Event::Due => {
                    let now = Instant::now();
                    match watch
                        .iter()
                        .position(|w| matches!(w, Watch::Waiting(t) if *t <= now))
                    {
                        Some(i) => self.restart(i).await?.map(|w| (i, w)),
                        None => continue,
                    }
                }
                Event::Recheck => {
                    let _lock = PodLock::acquire(&self.ctx.store, self.pod)?;
                    match claim(self.ctx, self.pod, self.me)? {
                        Some(_) => continue,
                        None => None,
                    }
                }
            };
            let Some((i, w)) = next else {
                tracing::info!(
                    "podrun supervise: pod {:?} is stopped, removed or supervised by \
                     another process",
                    self.pod
                );
                return Ok(());
            };
            watch[i] = w;
        }
    }

    /// Container `i` as containerd has it now; `None` when the pod is
    /// no longer ours.
    async fn look(&self, i: usize) -> Result<Option<Watch>> {
        loop {
            match self.ctx.ctrd.task_state(&self.ids[i], "").await {
                Ok(Some(s)) if s.running => return Ok(Some(Watch::Running)),
                Ok(Some(s)) => return self.exited(i, s.exit_status, s.exited_at).await,
                Ok(None) => {
                    tracing::warn!(
                        "podrun supervise: container {:?} has no task: not watched",
                        self.names[i]
                    );
                    return Ok(Some(Watch::Done));
                }
                Err(e) if crate::ctrd::transient(&e) => {
                    tracing::warn!("podrun supervise: {e:#}; asking again in {RETRY:?}");
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Container `i` exited with `code` at `at`: records it and decides.
    async fn exited(&self, i: usize, code: u32, at: Option<u64>) -> Result<Option<Watch>> {
        let _lock = PodLock::acquire(&self.ctx.store, self.pod)?;
        let Some(mut rec) = claim(self.ctx, self.pod, self.me)? else {
            return Ok(None);
        };
        let name = &self.names[i];
        let now = now_ms();
        let life = rec.lifecycle.containers.entry(name.clone()).or_default();
        let finished = at.unwrap_or(now);
        let ran = finished.saturating_sub(life.started_at.unwrap_or(finished));
        life.backoff_step = Backoff::step_after_run(life.backoff_step, Duration::from_millis(ran));
        life.exit = Some(code);
        life.finished_at = Some(finished);
        let watch = if backoff::restarts(self.policy, code) {
            let delay = self.backoff.delay(life.backoff_step);
            life.next_restart_at = Some(now + delay.as_millis() as u64);
            tracing::info!(
                "podrun supervise: container {name:?} exited with code {code}: restart {} in {delay:?}",
                life.restarts + 1
            );
            Watch::Waiting(Instant::now() + delay)
        } else {
            life.next_restart_at = None;
            tracing::info!(
                "podrun supervise: container {name:?} exited with code {code}: \
                 not restarted (restartPolicy {:?})",
                self.policy
            );
            Watch::Done
        };
        self.ctx.store.save(&rec)?;
        Ok(Some(watch))
    }

    /// Starts container `i` again. A failed attempt is retried after the
    /// next back-off; a broken pod (pause not running: the namespaces
    /// are gone) ends the supervisor.
    async fn restart(&self, i: usize) -> Result<Option<Watch>> {
        let _lock = PodLock::acquire(&self.ctx.store, self.pod)?;
        let Some(mut rec) = claim(self.ctx, self.pod, self.me)? else {
            return Ok(None);
        };
        let name = self.names[i].clone();
        if let Some(why) = crate::inspect::pause_down(self.ctx, &rec).await? {
            bail!(
                "pod {:?} is broken: its pause container {why}; container {name:?} is not \
                 restarted (podrun rm {})",
                self.pod,
                self.pod
            );
        }
        let began = now_ms();
        let result = self.start_again(&rec, i).await;
        let life = rec.lifecycle.containers.entry(name.clone()).or_default();
        let watch = match result {
            Ok(started) => {
                life.restarted(began, started);
                tracing::info!(
                    "podrun supervise: container {name:?} started again (restart {})",
                    life.restarts
                );
                Watch::Running
            }
            Err(e) => {
                life.backoff_step = life.backoff_step.saturating_add(1);
                let delay = self.backoff.delay(life.backoff_step);
                life.next_restart_at = Some(now_ms() + delay.as_millis() as u64);
                tracing::warn!(
                    "podrun supervise: restart of container {name:?} failed: {e:#}; \
                     next attempt in {delay:?}"
                );
                Watch::Waiting(Instant::now() + delay)
            }
        };
        self.ctx.store.save(&rec)?;
        Ok(Some(watch))
    }

    /// A new task for container `i` on a fresh rootfs; returns when it
    /// was asked to start (Unix ms).
    async fn start_again(&self, rec: &PodRecord, i: usize) -> Result<u64> {
        let ctx = self.ctx;
        let (id, c) = (&self.ids[i], &rec.spec.containers[i]);
        // The image layers the container was made from (its snapshot's
        // parent), else the image as it is now.
        let parent = match ctx.ctrd.snapshot_parent(id).await? {
            Some(p) => p,
            None => {
                crate::image::resolve(&ctx.ctrd, &c.image)
                    .await?
                    .ok_or_else(|| anyhow!("image {:?} is no longer in containerd", c.image))?
                    .chain_id
            }
        };
        ctx.ctrd.delete_task(id).await?;
        ctx.ctrd.remove_snapshot(id).await?;
        let mounts = ctx.ctrd.prepare_snapshot(id, &parent).await?;
        let podrun = std::env::current_exe()?;
        let base = ctx.store.log_base(self.pod, &c.name);
        let io = match rec.lifecycle.log_rotate {
            Some(r) => crate::logdriver::uri_rotated(
                &podrun,
                &base,
                crate::logdriver::Rotate {
                    max_size: r.max_size,
                    max_files: r.max_files,
                },
            ),
            None => crate::logdriver::uri(&podrun, &base),
        };
        ctx.create_task(id, mounts, &io).await?;
        let at = now_ms();
        ctx.ctrd.start(id, "").await?;
        Ok(at)
    }
}
