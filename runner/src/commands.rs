//! The commands other than `run`: ps, logs, exec, stop, rm, check, gc.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::ctx::Ctx;
use crate::follow::{copy_new, read_rotated, Cursor};
use crate::lock::PodLock;
use crate::state::PodRecord;
use crate::teardown;

pub fn record(ctx: &Ctx, pod: &str) -> Result<PodRecord> {
    ctx.store.load(pod)?.ok_or_else(|| {
        anyhow!(
            "no pod {pod:?} in {} (containerd namespace {:?})",
            ctx.store.dir.display(),
            ctx.g.namespace
        )
    })
}

/// `podrun ps`: one line per container, or (`--json`) one array of pods
/// with their containers, each as `podrun inspect` shows it (an exit
/// code is a number or null).
pub async fn ps(ctx: &Ctx, json: bool) -> Result<()> {
    let mut pods = Vec::new();
    for pod in ctx.store.pods()? {
        let Some(rec) = ctx.store.load(&pod)? else {
            continue;
        };
        let (containers, init_containers) = crate::inspect::containers(ctx, &rec).await?;
        pods.push(serde_json::json!({
            "name": pod, "phase": crate::inspect::phase(ctx, &rec).await?, "ip": rec.ip,
            "containers": containers, "initContainers": init_containers,
        }));
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::Value::Array(pods))?;
        return Ok(());
    }
    writeln!(out, "POD\tPHASE\tIP\tCONTAINER\tSTATE\tEXIT\tRESTARTS")?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        v => v.to_string(),
    };
    for p in &pods {
        for c in p["containers"].as_array().into_iter().flatten() {
            let row = [
                &p["name"],
                &p["phase"],
                &p["ip"],
                &c["name"],
                &c["state"],
                &c["exit"],
                &c["restarts"],
            ];
            writeln!(out, "{}", row.map(text).join("\t"))?;
        }
    }
    Ok(())
}

/// `podrun logs POD [CONTAINER]`: stdout to stdout, stderr to stderr;
/// without CONTAINER, of every init container, then every container.
pub fn logs(ctx: &Ctx, pod: &str, container: Option<&str>) -> Result<()> {
    let rec = record(ctx, pod)?;
    let all: Vec<&str> = rec
        .spec
        .init_containers
        .iter()
        .chain(&rec.spec.containers)
        .map(|c| c.name.as_str())
        .collect();
    let names: Vec<&str> = match container {
        Some(c) => {
            if !all.contains(&c) {
                bail!("pod {pod:?} has no container {c:?}");
            }
            vec![c]
        }
        None => all,
    };
    for name in names {
        let read = |s: &str| read_rotated(&ctx.store.log_path(pod, name, s));
        std::io::stdout().write_all(&read("stdout")?)?;
        std::io::stderr().write_all(&read("stderr")?)?;
    }
    Ok(())
}

/// `podrun exec POD CONTAINER -- CMD...`: runs CMD with the container's
/// env and cwd; prints its output; returns its exit code.
pub async fn exec(ctx: &Ctx, pod: &str, container: &str, cmd: &[String]) -> Result<i32> {
    let rec = record(ctx, pod)?;
    let i = rec
        .spec
        .containers
        .iter()
        .position(|c| c.name == container)
        .ok_or_else(|| anyhow!("pod {pod:?} has no container {container:?}"))?;
    let id = &rec.container_ids[i];
    match ctx.ctrd.task_state(id, "").await? {
        Some(s) if s.running => {}
        _ => bail!("container {container:?} of pod {pod:?} is not running"),
    }
    let spec = ctx.ctrd.container_spec(id).await?;
    let exec_id = format!("exec-{}-{}", std::process::id(), crate::state::now());
    let dir = ctx.store.pod_dir(pod).join("exec");
    fs::create_dir_all(&dir)?;
    let base = dir.join(&exec_id);
    let (o, e) = (base.with_extension("stdout"), base.with_extension("stderr"));
    let process = crate::oci::exec_process(&spec["process"], cmd);
    let io = crate::logdriver::uri(&std::env::current_exe()?, &base);
    ctx.ctrd.exec(id, &exec_id, &process, &io).await?;
    let mut offsets = (Cursor::default(), Cursor::default());
    let result = run_exec(ctx, id, &exec_id, &o, &e, &mut offsets).await;
    // Deleting the exec makes the shim close its IO and wait for the log
    // driver to drain the pipes: after it, the files are complete.
    let _ = ctx.ctrd.delete_process(id, &exec_id).await;
    copy_new(&o, &mut offsets.0, &mut std::io::stdout())?;
    copy_new(&e, &mut offsets.1, &mut std::io::stderr())?;
    let _ = fs::remove_file(&o);
    let _ = fs::remove_file(&e);
    result
}

/// Starts the exec and streams its output while it runs.
async fn run_exec(
    ctx: &Ctx,
    id: &str,
    exec_id: &str,
    o: &Path,
    e: &Path,
    offsets: &mut (Cursor, Cursor),
) -> Result<i32> {
    ctx.ctrd.start(id, exec_id).await?;
    loop {
        copy_new(o, &mut offsets.0, &mut std::io::stdout())?;
        copy_new(e, &mut offsets.1, &mut std::io::stderr())?;
        match ctx.ctrd.task_state(id, exec_id).await? {
            Some(s) if s.running => tokio::time::sleep(Duration::from_millis(50)).await,
            Some(s) => return Ok(s.exit_status as i32),
            None => bail!("exec {exec_id} vanished"),
        }
    }
}

/// `podrun stop POD`: with the pod's grace period unless `--grace`.
pub async fn stop(ctx: &Ctx, pod: &str, grace: Option<u64>) -> Result<()> {
    let _lock = PodLock::acquire(&ctx.store, pod)?;
    let Some(mut rec) = ctx.store.load(pod)? else {
        return Ok(());
    };
    let grace = crate::lifecycle::backoff::grace_secs(&rec.spec, grace);
    teardown::stop(ctx, &rec, grace).await?;
    rec.phase = "stopped".into();
    ctx.store.save(&rec)
}

/// `podrun rm POD`: a pod without a record is already gone.
pub async fn rm(ctx: &Ctx, pod: &str, grace: Option<u64>) -> Result<()> {
    let lock = PodLock::acquire(&ctx.store, pod)?;
    let Some(rec) = ctx.store.load(pod)? else {
        // A `run` killed while writing its first record leaves the pod's
        // directory with only a temp file: the record is written before
        // anything else exists, so that is all there is.
        ctx.store.remove_pod_dir(pod)?;
        lock.remove();
        return Ok(());
    };
    // We hold the lock, so no `run` of this pod is alive; what a dead
    // one left (even requests containerd is still executing) is driven
    // to gone by `remove`.
    let grace = crate::lifecycle::backoff::grace_secs(&rec.spec, grace);
    teardown::remove(ctx, &rec, grace).await?;
    lock.remove();
    Ok(())
}

/// `podrun check POD`: the pod's pause container must be running (it
/// holds the pod's namespaces), then CNI CHECK of its attachment (a
/// hostNetwork pod has none, which is said on stdout), and
/// each container's cgroup (while its task exists) must hold the limits
/// of its spec as runc wrote them.
pub async fn check(ctx: &Ctx, pod: &str) -> Result<()> {
    let rec = record(ctx, pod)?;
    if rec.phase != "running" {
        bail!("check pod {pod:?}: pod is {}, not running", rec.phase);
    }
    if let Some(why) = crate::inspect::pause_down(ctx, &rec).await? {
        bail!(
            "check pod {pod:?}: pod is broken: its pause container {} {why} \
             (podrun rm {pod} removes it)",
            rec.sandbox_id
        );
    }
    if rec.spec.host_network {
        println!("pod {pod:?} uses the node's network (hostNetwork): it has no CNI attachment");
    } else {
        let net = ctx.network_of(&rec)?;
        net.check(&ctx.attachment(&rec, true))
            .with_context(|| format!("check pod {pod:?}"))?;
    }
    let host = ctx.cgroups.host_info();
    let mut bad = Vec::new();
    for (i, c) in rec.spec.containers.iter().enumerate() {
        let path = ctx.cgroups_path(&rec.container_ids[i]);
        if !ctx.cgroups.exists(&path) {
            continue;
        }
        let want = crate::limits::expected(&path, &c.resources, host);
        for m in crate::limits::mismatches(ctx.cgroups.root(), &want) {
            bad.push(format!("container {:?}: {m}", c.name));
        }
    }
    if !bad.is_empty() {
        bail!(
            "check pod {pod:?}: cgroup limits differ from the spec: {}",
            bad.join("; ")
        );
    }
    Ok(())
}
