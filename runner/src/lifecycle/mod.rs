//! A pod's life after `run` created it: init containers run to
//! completion ([`init`]), `restartPolicy` kept by a supervisor
//! ([`supervise`], started detached by [`begin`] or run in the
//! foreground by [`attach`]), and the grace period of `stop`/`rm`
//! ([`backoff::grace_secs`]).

pub mod backoff;
pub mod init;
pub mod process;
pub mod status;
mod supervise;

use std::cell::Cell;

use anyhow::Result;

use crate::cli::RunOpts;
use crate::ctx::Ctx;
use crate::state::PodRecord;
use status::{LogRotate, ProcRef};

/// The supervisor's output, in the pod's state directory.
pub const SUPERVISOR_LOG: &str = "supervisor.log";

/// The last step of `run`'s create, once every container started:
/// records what restarts need, and names the pod's supervisor when its
/// policy restarts containers: `run --attach` itself, else a detached
/// `podrun supervise POD` started here. The caller saves the record
/// (the supervisor waits for the pod lock, then for its name in it).
pub fn begin(ctx: &Ctx, rec: &mut PodRecord, opts: &RunOpts) -> Result<()> {
    rec.lifecycle.restart_backoff_ms = Some(opts.restart_backoff.as_millis() as u64);
    rec.lifecycle.log_rotate = Some(LogRotate {
        max_size: opts.log_max_size,
        max_files: opts.log_max_files,
    });
    if !backoff::supervised(backoff::policy(&rec.spec)) {
        return Ok(());
    }
    rec.lifecycle.supervisor = Some(if opts.attach {
        ProcRef::me()?
    } else {
        let log = ctx.store.pod_dir(&rec.spec.name).join(SUPERVISOR_LOG);
        process::spawn(&ctx.g, &rec.spec.name, &log)?
    });
    Ok(())
}

/// Ends the pod's supervisor, if it has one that still runs: `stop` and
/// `rm` do this first, so that nothing restarts what they stop.
pub fn end_supervisor(rec: &PodRecord) -> Result<()> {
    match &rec.lifecycle.supervisor {
        Some(p) => process::end(p),
        None => Ok(()),
    }
}

/// `podrun supervise POD` (started by [`begin`]): in a session of its
/// own, so that the terminal of the `run` that started it can go.
pub async fn supervise_main(ctx: &Ctx, pod: &str) -> Result<i32> {
    // Fails only for a process group leader, which a spawned child is not.
    let _ = nix::unistd::setsid();
    let me = ProcRef::me()?;
    supervise::run(ctx, pod, &me).await?;
    Ok(0)
}

/// `run --attach`: streams the containers' output; when the policy
/// restarts containers, supervises the pod at the same time, until no
/// container is left to restart (never, for `Always`: `stop`/`rm` from
/// elsewhere end it, or an interrupt, which ends the supervision too).
pub async fn attach(ctx: &Ctx, rec: &PodRecord) -> Result<i32> {
    let me = ProcRef::me()?;
    if rec.lifecycle.supervisor.as_ref() != Some(&me) {
        return crate::follow::attach(ctx, rec, None).await;
    }
    let done = Cell::new(false);
    let supervise = async {
        let r = supervise::run(ctx, &rec.spec.name, &me).await;
        done.set(true);
        r
    };
    let (supervised, code) = tokio::join!(supervise, crate::follow::attach(ctx, rec, Some(&done)));
    supervised?;
    code
}
