//! What podrun says about a pod: `podrun inspect POD` (one JSON object)
//! and the containers of `podrun ps` (the same container objects).
//!
//! A container's state comes from containerd while its task exists,
//! then from what `stop`/`rm` kept (`exits.json`), then from the record
//! (init containers, which `run` deletes once they exited).

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::{json, Value};

use crate::ctx::Ctx;
use crate::exits::{self, Exit};
use crate::lifecycle::backoff;
use crate::lifecycle::status::{rfc3339, ContainerLife};
use crate::spec::ContainerSpec;
use crate::state::PodRecord;

/// A pod's phase: the record's, except that a pod recorded as running
/// whose pause container is not running is `broken` (the task that
/// holds its namespaces is gone; `rm` it).
pub async fn phase(ctx: &Ctx, rec: &PodRecord) -> Result<String> {
    if rec.phase == "running" && pause_down(ctx, rec).await?.is_some() {
        return Ok("broken".into());
    }
    Ok(rec.phase.clone())
}

/// Why the pod's pause container is not running, if it is not.
pub async fn pause_down(ctx: &Ctx, rec: &PodRecord) -> Result<Option<String>> {
    Ok(match ctx.ctrd.task_state(&rec.sandbox_id, "").await? {
        Some(s) if s.running => None,
        Some(s) => Some(format!("exited with status {}", s.exit_status)),
        None => Some("has no task".into()),
    })
}

/// `(state, exit code, finished at)` of one container: `running`,
/// `exited`, `oomkilled`, `created`, `pending` (an init container not
/// run yet) or `missing`.
async fn state(
    ctx: &Ctx,
    rec: &PodRecord,
    exits: &BTreeMap<String, Exit>,
    c: &ContainerSpec,
    id: &str,
    life: &ContainerLife,
) -> Result<(&'static str, Option<u32>, Option<u64>)> {
    let oom = || ctx.cgroups.oom_kills(&ctx.cgroups_path(id)).unwrap_or(0) > 0;
    if let Some(s) = ctx.ctrd.task_state(id, "").await? {
        if s.running {
            return Ok(("running", None, None));
        }
        let state = if oom() { "oomkilled" } else { "exited" };
        return Ok((state, Some(s.exit_status), s.exited_at.or(life.finished_at)));
    }
    if let Some(e) = exits.get(&c.name) {
        let state = if e.oom_killed { "oomkilled" } else { "exited" };
        return Ok((state, Some(e.code), e.finished_at.or(life.finished_at)));
    }
    if let Some(code) = life.exit {
        return Ok(("exited", Some(code), life.finished_at));
    }
    if ctx.ctrd.container_exists(id).await? {
        return Ok(("created", None, None));
    }
    let init = rec.spec.init_containers.iter().any(|i| i.name == c.name);
    Ok((if init { "pending" } else { "missing" }, None, None))
}

/// One container, as `inspect` and `ps --json` show it.
async fn container(
    ctx: &Ctx,
    rec: &PodRecord,
    exits: &BTreeMap<String, Exit>,
    c: &ContainerSpec,
    id: &str,
) -> Result<Value> {
    // A restart is only coming while a supervisor runs.
    let supervised = rec.lifecycle.supervisor.as_ref().is_some_and(|p| p.alive());
    let life = rec
        .lifecycle
        .containers
        .get(&c.name)
        .cloned()
        .unwrap_or_default();
    let (state, exit, finished) = state(ctx, rec, exits, c, id, &life).await?;
    let recent: Vec<Value> = life
        .recent_restarts
        .iter()
        .map(|r| {
            json!({
                "exit": r.exit,
                "finishedAt": rfc3339(r.finished_at),
                "restartedAt": rfc3339(r.restarted_at),
            })
        })
        .collect();
    Ok(json!({
        "name": c.name,
        "id": id,
        "image": c.image,
        "state": state,
        "exit": exit,
        "restarts": life.restarts,
        "startedAt": life.started_at.map(rfc3339),
        "finishedAt": finished.map(rfc3339),
        "nextRestartAt": life
            .next_restart_at
            .filter(|_| supervised && state != "running")
            .map(rfc3339),
        "recentRestarts": recent,
    }))
}

/// The pod's app containers and init containers, in spec order.
pub async fn containers(ctx: &Ctx, rec: &PodRecord) -> Result<(Vec<Value>, Vec<Value>)> {
    let exits = exits::load_exits(ctx, &rec.spec.name);
    let mut apps = Vec::new();
    for (c, id) in rec.spec.containers.iter().zip(&rec.container_ids) {
        apps.push(container(ctx, rec, &exits, c, id).await?);
    }
    let mut inits = Vec::new();
    for (i, c) in rec.spec.init_containers.iter().enumerate() {
        let id = match rec.init_container_ids.get(i) {
            Some(id) => id.clone(),
            None => ctx.store.container_id(&rec.spec.name, &c.name),
        };
        inits.push(container(ctx, rec, &exits, c, &id).await?);
    }
    Ok((apps, inits))
}

/// `podrun inspect POD`.
pub async fn inspect(ctx: &Ctx, rec: &PodRecord) -> Result<Value> {
    let spec = &rec.spec;
    let kube = spec.kube.as_ref();
    let ips: Vec<&String> = if rec.ips.is_empty() {
        rec.ip.iter().collect()
    } else {
        rec.ips.iter().collect()
    };
    let (containers, init_containers) = containers(ctx, rec).await?;
    let supervisor = rec
        .lifecycle
        .supervisor
        .as_ref()
        .map(|p| json!({"pid": p.pid, "running": p.alive()}));
    Ok(json!({
        "name": spec.name,
        "namespace": kube.map(|k| &k.namespace),
        "labels": kube.map(|k| &k.labels).cloned().unwrap_or_default(),
        "annotations": kube.map(|k| &k.annotations).cloned().unwrap_or_default(),
        "phase": phase(ctx, rec).await?,
        "created": rfc3339(rec.created.saturating_mul(1000)),
        "ips": ips,
        "hostNetwork": spec.host_network,
        "network": rec.network,
        "sandboxId": rec.sandbox_id,
        "restartPolicy": format!("{:?}", backoff::policy(spec)),
        "terminationGracePeriodSeconds": backoff::grace_secs(spec, None),
        "supervisor": supervisor,
        "containers": containers,
        "initContainers": init_containers,
    }))
}
