//! `podrun stop` and `podrun rm`: idempotent; a missing task, container,
//! snapshot, netns or cache entry counts as done. Works from the record
//! alone, so it also cleans up after a crash or a half-created pod. `rm`
//! goes in order (containerd objects, then the network, then the state)
//! and stops at the first layer that fails, keeping everything a retry
//! needs: nothing that is needed to release the pod's IP is ever lost.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};

use crate::converge::stop_task;
use crate::ctx::Ctx;
use crate::exits::{load_exits, save_exits};
use crate::state::PodRecord;

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
