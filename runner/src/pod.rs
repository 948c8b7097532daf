//! `podrun run`: validate, record, then create netns → pause → CNI ADD →
//! /etc files → containers; on any failure undo what was done.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{bail, Result};
use containerd_client::types::Mount;

use crate::cli::RunOpts;
use crate::ctx::{run_lease, Ctx};
use crate::image::{self, ImageInfo};
use crate::lock::PodLock;
use crate::network::Network;
use crate::oci;
use crate::spec::{ContainerSpec, PodSpec, SpecError};
use crate::state::{now, PodRecord};
use crate::teardown;

/// Checks against the node: network and plugins (none for a hostNetwork
/// pod), images (of the app containers, then of the init containers),
/// host paths.
async fn preflight(
    ctx: &Ctx,
    spec: &PodSpec,
) -> Result<(Option<Network>, Vec<ImageInfo>, Vec<ImageInfo>)> {
    let net = crate::podnet::preflight(ctx, spec)?;
    let mut images = Vec::new();
    for (i, c) in spec.containers.iter().enumerate() {
        images.push(check_container(ctx, spec, &format!("containers[{i}]"), c).await?);
    }
    let mut init_images = Vec::new();
    for (i, c) in spec.init_containers.iter().enumerate() {
        let at = format!("initContainers[{i}]");
        init_images.push(check_container(ctx, spec, &at, c).await?);
    }
    // Last: it may create hostPath directories and files.
    crate::volumes::preflight(spec)?;
    Ok((net, images, init_images))
}

/// One container of `spec` (`at` is its path): its image, host paths,
/// command line and security settings; returns the image.
async fn check_container(
    ctx: &Ctx,
    spec: &PodSpec,
    at: &str,
    c: &ContainerSpec,
) -> Result<ImageInfo> {
    let img = match image::resolve(&ctx.ctrd, &c.image).await {
        Ok(Some(img)) => img,
        Ok(None) => bail!(SpecError::new(
            format!("{at}.image"),
            format!(
                "image {:?} is not in containerd namespace {:?}",
                c.image, ctx.g.namespace
            )
        )),
        Err(e) => bail!(SpecError::new(format!("{at}.image"), format!("{e:#}"))),
    };
    for (j, m) in c.mounts.iter().enumerate() {
        if !m.host_path.exists() {
            bail!(SpecError::new(
                format!("{at}.mounts[{j}].hostPath"),
                format!("{} does not exist", m.host_path.display())
            ));
        }
    }
    oci::argv(c, &img).map_err(|e| SpecError::new(format!("{at}.command"), e.to_string()))?;
    crate::security::resolve(c, spec, &img, &[])?;
    Ok(img)
}

/// `podrun run` of every pod of a file, in order. All or nothing: when
/// one fails, the pods this call already started are removed again.
pub async fn run_all(ctx: &Ctx, specs: Vec<PodSpec>, opts: &RunOpts) -> Result<Vec<PodRecord>> {
    let mut done: Vec<PodRecord> = Vec::new();
    for spec in specs {
        match run(ctx, spec, opts).await {
            Ok(rec) => done.push(rec),
            Err(e) => {
                for rec in done.iter().rev() {
                    if let Err(u) = teardown::remove(ctx, rec, 0).await {
                        tracing::warn!("podrun: undo pod {:?}: {u:#}", rec.spec.name);
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(done)
}

/// `podrun run`: one pod, already validated.
pub async fn run(ctx: &Ctx, spec: PodSpec, opts: &RunOpts) -> Result<PodRecord> {
    let node_dns = crate::etc::node_resolv(
        opts.resolv_conf.as_deref(),
        Path::new(crate::etc::NODE_RESOLV_CONF),
        Path::new(crate::etc::SYSTEMD_RESOLVED_UPSTREAM),
    )?;
    let pod = spec.name.clone();
    // No `gc` while this pod's attachment is being made (lock.rs).
    let _gc = crate::lock::GcLock::shared(&ctx.g.cni_cache_dir)?;
    // Held until the pod is up or undone: a concurrent `rm` waits.
    let lock = PodLock::acquire(&ctx.store, &pod)?;
    if ctx.store.load(&pod)?.is_some() {
        bail!("pod {pod:?} already exists (podrun rm {pod})");
    }
    let sid = ctx.store.sandbox_id(&pod);
    crate::converge::sweep_orphans(ctx, &|id| {
        id == sid
            || id
                .strip_prefix(sid.as_str())
                .is_some_and(|r| r.starts_with('.'))
    });
    let pause = crate::pause_root::PauseRoot::resolve(&ctx.pause_bin()?)?;
    let (net, images, init_images) = preflight(ctx, &spec).await?;
    let mut rec = PodRecord {
        network: net
            .as_ref()
            .map(|n| n.list.name.clone())
            .unwrap_or_default(),
        network_config: net.as_ref().map(|n| n.list.to_value()),
        sandbox_id: ctx.store.sandbox_id(&pod),
        netns_name: ctx.store.netns_name(&pod),
        container_ids: spec
            .containers
            .iter()
            .map(|c| ctx.store.container_id(&pod, &c.name))
            .collect(),
        init_container_ids: spec
            .init_containers
            .iter()
            .map(|c| ctx.store.container_id(&pod, &c.name))
            .collect(),
        ip: None,
        ips: Vec::new(),
        lifecycle: Default::default(),
        phase: "creating".into(),
        created: now(),
        spec,
    };
    // containerd's GC contract: what `create` makes (snapshots above all)
    // is leased until the containers that reference it exist.
    let lease = ctx
        .ctrd
        .create_lease(&run_lease(&rec.sandbox_id).id, RUN_LEASE_TTL)
        .await?;
    // Recorded before anything exists: `rm` can always find what to undo.
    ctx.store.save(&rec)?;
    let how = How {
        net: net.as_ref(),
        images: &images,
        init_images: &init_images,
        pause: &pause,
        node_dns: &node_dns,
        opts,
    };
    match create(&ctx.leased(&lease), &mut rec, &how).await {
        Ok(()) => {
            ctx.ctrd.release_lease(&lease).await;
            rec.phase = "running".into();
            ctx.store.save(&rec)?;
            Ok(rec)
        }
        Err(e) => {
            match teardown::remove(ctx, &rec, 0).await {
                Ok(()) => lock.remove(),
                Err(u) => tracing::warn!("podrun: cleanup after failed run: {u:#}"),
            }
            ctx.ctrd.release_lease(&lease).await;
            Err(e.context(format!("run pod {pod:?}")))
        }
    }
}

/// Expiry of `run`'s lease: creating a pod takes seconds; a lease left by
/// a killed `run` (that `rm` did not delete) lapses within the hour.
const RUN_LEASE_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

fn labels(pod: &str, role: &str) -> HashMap<String, String> {
    HashMap::from([
        ("io.netboot.podrun.pod".into(), pod.into()),
        ("io.netboot.podrun.role".into(), role.into()),
    ])
}

/// What `create` works from, besides the record.
struct How<'a> {
    /// `None` for a hostNetwork pod.
    net: Option<&'a Network>,
    images: &'a [ImageInfo],
    init_images: &'a [ImageInfo],
    pause: &'a crate::pause_root::PauseRoot,
    node_dns: &'a crate::etc::NodeResolv,
    opts: &'a RunOpts,
}

async fn create(ctx: &Ctx, rec: &mut PodRecord, how: &How<'_>) -> Result<()> {
    let (net, images) = (how.net, how.images);
    let pod = rec.spec.name.clone();
    let rootfs = ctx.store.pause_rootfs();
    how.pause.install(&rootfs)?;
    let netns = crate::podnet::sandbox_netns(rec)?;

    let sid = rec.sandbox_id.clone();
    let host = ctx.cgroups.host_info();
    let hostname = crate::podnet::hostname(&rec.spec)?;
    // A hostNetwork pod keeps the node's UTS namespace and hostname.
    let own_uts = (!rec.spec.host_network).then_some(hostname.as_str());
    let mut spec = oci::pause_spec(&ctx.cgroups_path(&sid), &netns, own_uts, host);
    crate::security::sandbox(&mut spec, &rec.spec);
    ctx.ctrd
        .create_container(&sid, "", &spec, "", labels(&pod, "pause"))
        .await?;
    let pause_root = vec![Mount {
        r#type: "bind".into(),
        source: rootfs.display().to_string(),
        target: String::new(),
        options: vec!["rbind".into(), "ro".into()],
    }];
    let podrun = std::env::current_exe()?;
    let rotate = crate::logdriver::Rotate {
        max_size: how.opts.log_max_size,
        max_files: how.opts.log_max_files,
    };
    let log =
        |c: &str| crate::logdriver::uri_rotated(&podrun, &ctx.store.log_base(&pod, c), rotate);
    std::fs::create_dir_all(ctx.store.pod_dir(&pod).join("logs"))?;
    ctx.create_task(&sid, pause_root, &log("pause")).await?;
    let pause_pid = ctx.ctrd.start(&sid, "").await?;

    let attached = crate::podnet::attach(ctx, rec, net, pause_pid, &netns)?;
    rec.ip = attached.ips.first().map(IpAddr::to_string);
    rec.ips = attached.ips.iter().map(IpAddr::to_string).collect();
    rec.spec.resolve(attached.ips.first().copied());
    ctx.store.save(rec)?;
    if net.is_some() {
        rec.spec.check_host_ip_families(&attached.ips)?;
    }
    let etc_dir = ctx.store.etc_dir(&pod);
    let files = crate::podnet::etc_files(ctx, &rec.spec, &attached, how.node_dns, how.opts)?;
    crate::etc::write_etc(&etc_dir, &files)?;

    let ns_of = |t: &str| format!("/proc/{pause_pid}/ns/{t}");
    let (net_ns, ipc_ns, uts_ns) = (ns_of("net"), ns_of("ipc"), ns_of("uts"));
    let ns = oci::Namespaces {
        network: &net_ns,
        ipc: Some(&ipc_ns),
        uts: Some(&uts_ns),
    };
    let etc = oci::EtcFiles { dir: &etc_dir };
    let volumes = crate::volumes::setup(&rec.spec, &ctx.store.pod_dir(&pod))?;
    let parts = oci::PodParts {
        pod: &rec.spec,
        hostname: &hostname,
        ns: &ns,
        etc: &etc,
        volumes: &volumes,
        host,
    };
    // Init containers run to completion, in order, then the containers
    // start (lifecycle::init).
    let mut starts = crate::lifecycle::init::Starts::default();
    for step in crate::lifecycle::init::steps(rec, images, how.init_images) {
        let (c, id, image) = (&step.spec, &step.id, step.image);
        let spec = oci::container_spec(c, &step.at, image, &ctx.cgroups_path(id), &parts)?;
        let role = if step.init { "init" } else { "container" };
        // The record references the snapshot before it exists, so
        // containerd's GC never sees an unreferenced active snapshot.
        ctx.ctrd
            .create_container(id, &c.image, &spec, id, labels(&pod, role))
            .await?;
        let mounts = ctx.ctrd.prepare_snapshot(id, &image.chain_id).await?;
        ctx.create_task(id, mounts, &log(&c.name)).await?;
        let at = crate::lifecycle::status::now_ms();
        ctx.ctrd.start(id, "").await?;
        starts.started(ctx, &rec.spec, &step, at).await?;
    }
    starts.record(rec);
    crate::lifecycle::begin(ctx, rec, how.opts)?;
    Ok(())
}
