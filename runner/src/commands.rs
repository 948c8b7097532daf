//! The commands other than `run`: ps, logs, exec, stop, rm, check, gc.

use std::cell::Cell;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::lock::PodLock;
use crate::pod::Ctx;
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

/// A stream's rotated files and its current one, oldest first. All are
/// opened before any is read: an open file keeps its content through a
/// rotation (a rename), so a rotation while reading cannot make a file's
/// content appear twice or vanish, only (for the files opened after it)
/// start one file later.
fn read_rotated(path: &Path) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for p in crate::logdriver::stream_files(path) {
        match fs::File::open(&p) {
            Ok(f) => files.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("open {}", p.display())),
        }
    }
    let mut out = Vec::new();
    for mut f in files {
        f.read_to_end(&mut out)?;
    }
    Ok(out)
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

/// `run --attach`: streams the containers' stdout to stdout and stderr
/// to stderr (from their log files) until every app container's task has
/// stopped (or, with `until`, until it is set: the supervisor is done),
/// then returns the first non-zero exit code in spec order (0 if all
/// succeeded). The pod stays, as after a detached run; `rm` it.
pub async fn attach(ctx: &Ctx, rec: &PodRecord, until: Option<&Cell<bool>>) -> Result<i32> {
    let pod = &rec.spec.name;
    let mut offsets = vec![(Cursor::default(), Cursor::default()); rec.spec.containers.len()];
    let mut last_round = false;
    loop {
        let mut codes = Vec::new();
        for (i, c) in rec.spec.containers.iter().enumerate() {
            match ctx.ctrd.task_state(&rec.container_ids[i], "").await? {
                Some(s) if s.running => {}
                Some(s) => codes.push(s.exit_status),
                None => codes.push(0),
            }
            let (o, e) = &mut offsets[i];
            copy_new(
                &ctx.store.log_path(pod, &c.name, "stdout"),
                o,
                &mut std::io::stdout(),
            )?;
            copy_new(
                &ctx.store.log_path(pod, &c.name, "stderr"),
                e,
                &mut std::io::stderr(),
            )?;
        }
        if last_round {
            return Ok(codes.iter().find(|c| **c != 0).copied().unwrap_or(0) as i32);
        }
        // One more round after the last exit: the log drivers drain
        // what was left in the pipes.
        last_round = match until {
            Some(done) => done.get(),
            None => codes.len() == rec.spec.containers.len(),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Where a follower of one stream is: the current file's inode and the
/// offset read up to in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    ino: Option<u64>,
    offset: u64,
}

/// Copies what was appended to the stream at `path` since `cursor`. When
/// the file was rotated since (another inode now), the rest of the old
/// one is read from `PATH.1` first, where rotation renamed it (a file
/// rotated twice between two calls is skipped).
fn copy_new(path: &Path, cursor: &mut Cursor, out: &mut impl Write) -> Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if cursor.ino.is_some_and(|ino| ino != meta.ino()) {
        let old = crate::logdriver::rotated_path(path, 1);
        if fs::metadata(&old).is_ok_and(|m| Some(m.ino()) == cursor.ino) {
            copy_from(&old, cursor.offset, out)?;
        }
        cursor.offset = 0;
    }
    cursor.ino = Some(meta.ino());
    cursor.offset += copy_from(path, cursor.offset, out)?;
    Ok(())
}

/// Copies `path` from `offset` to its end; returns how much.
fn copy_from(path: &Path, offset: u64, out: &mut impl Write) -> Result<u64> {
    let Ok(mut f) = fs::File::open(path) else {
        return Ok(0);
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    if !data.is_empty() {
        out.write_all(&data)?;
        out.flush()?;
    }
    Ok(data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logdriver::{rotated_path, Rotate, RotatingFile};

    /// A follower (`run --attach`, `exec`) reads every byte once across a
    /// rotation between two polls.
    #[test]
    fn follower_reads_on_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.stdout");
        let r = Rotate {
            max_size: 10,
            max_files: 3,
        };
        let mut f = RotatingFile::open(&path, Some(r)).unwrap();
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        f.write_all(b"0123").unwrap();
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123");
        // Fills the file (10 bytes), rotates it to .1, starts a new one.
        f.write_all(b"456789abc").unwrap();
        assert!(rotated_path(&path, 1).exists());
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123456789abc");
        f.write_all(b"de").unwrap();
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123456789abcde");
        // `logs` reads what is kept, in order.
        assert_eq!(read_rotated(&path).unwrap(), b"0123456789abcde");
    }
}
