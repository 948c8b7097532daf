//! `podrun gc`: CNI GC of this instance's garbage, and of nothing else.
//!
//! A CNI GC call releases every attachment of the network that is not in
//! `cni.dev/valid-attachments` (SPEC.md "GC"), and libcni's
//! `GCNetworkList` first DELs every cached attachment of the network not
//! in that list. Both assume that one runtime owns the network: CRI-O
//! (ocicni `GC`) passes the pods it knows and nothing else. A node where
//! several podrun instances (other state dirs or namespaces), or podrun
//! and another runtime, share one network would lose the others' pods.
//!
//! podrun's rule: an attachment is garbage only when it is provably this
//! instance's (its container ID ends in this instance's id, see
//! [`crate::state::Store::owns`]) and no live pod of this instance holds
//! it (a pod is live unless stopped, or still `creating` with its `run`
//! dead: SIGKILLed, its pod lock free).
//! Every other attachment that can be seen on the node is passed as
//! valid:
//! - libcni's result cache (`<cacheDir>/results/*`, every network: a
//!   plugin's veth sweep does not look at network names),
//! - the stores of the conflist's plugins, in their upstream formats:
//!   host-local's `<ipam.dataDir>/<net>/<ip>` files (`<id>\r\n<ifname>`),
//!   flannel's `<dataDir>/<id>` scratch files and netboot-cni's
//!   `<dataDir>/.netboot/<id>@<ifname>.json` records.
//!
//! Only own attachments are DELed from the cache (libcni's first step),
//! and only own netns without a record are removed. What cannot be seen
//! (a foreign ADD that starts while gc runs, a plugin store of unknown
//! format) is not protected: see docs/podrun.md.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use anyhow::{anyhow, Result};
use serde_json::Value;

use crate::attachments::{cached_attachments, foreign_attachments, Cached, Pair};
use crate::ctx::Ctx;
use crate::lock::PodLock;
use crate::network::{Attachment, Network, IFNAME};

/// libcni's first GC step, for own attachments only: DEL through the chain
/// with the config, netns, args and port mappings the cache holds (then
/// the cache entry goes).
fn del_cached(ctx: &Ctx, c: &Cached) -> Result<()> {
    let conf = c
        .config
        .as_ref()
        .ok_or_else(|| anyhow!("cache entry of {} has no config", c.container_id))?;
    let net = Network::from_value(conf, &ctx.g.cni_bin_dir, &ctx.g.cni_cache_dir)?;
    let arg = |k: &str| {
        c.cni_args
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let netns = Some(c.netns.clone()).filter(|p| !p.is_empty() && Path::new(p).exists());
    net.del(&Attachment {
        container_id: c.container_id.clone(),
        netns: netns.unwrap_or_default(),
        pod_name: arg("K8S_POD_NAME")
            .or_else(|| ctx.store.pod_of(&c.container_id))
            .unwrap_or_default(),
        pod_namespace: arg("K8S_POD_NAMESPACE").unwrap_or_else(|| ctx.g.namespace.clone()),
        port_mappings: c.port_mappings.clone(),
        bandwidth: c.bandwidth.clone(),
    })
}

/// What this instance's records say, read under the GC lock.
struct Own {
    /// `(network, sandbox ID)` of every live pod.
    live: Vec<(String, String)>,
    /// Pods recorded `running` whose netns is gone: they died without
    /// podrun (the node rebooted: `/run/netns` is a tmpfs, while the
    /// records in the state dir survive).
    dead: Vec<crate::state::PodRecord>,
    /// The conflist each network had at `run`.
    saved: HashMap<String, Value>,
    /// netns names the records use.
    netns: HashSet<String>,
    /// Locks of pods whose `run` died, held until gc is done.
    _dead_runs: Vec<PodLock>,
}

fn own_pods(ctx: &Ctx) -> Result<Own> {
    let mut own = Own {
        live: Vec::new(),
        dead: Vec::new(),
        saved: HashMap::new(),
        netns: HashSet::new(),
        _dead_runs: Vec::new(),
    };
    for pod in ctx.store.pods()? {
        let Some(rec) = ctx.store.load(&pod)? else {
            continue;
        };
        // No netns, no attachment: nothing of it is gc's.
        if rec.spec.host_network {
            continue;
        }
        let live = match rec.phase.as_str() {
            "stopped" => false,
            // `run` holds the pod lock while creating: a free lock means
            // it was killed, and its attachment is garbage (`rm` still
            // undoes the rest of the pod).
            "creating" => match PodLock::try_acquire(&ctx.store, &pod)? {
                Some(lock) => {
                    own._dead_runs.push(lock);
                    false
                }
                None => true,
            },
            "running" if !holds_netns(&netkit::named_path(&rec.netns_name)) => {
                own.dead.push(rec.clone());
                false
            }
            _ => true,
        };
        if live {
            own.live.push((rec.network.clone(), rec.sandbox_id.clone()));
        }
        if let Some(conf) = &rec.network_config {
            own.saved.entry(rec.network.clone()).or_insert(conf.clone());
        }
        own.netns.insert(rec.netns_name.clone());
    }
    Ok(own)
}

/// Whether `path` still holds a network namespace (nsfs). Errors other
/// than "not found" count as yes: when in doubt, the pod is alive.
fn holds_netns(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC};
    match statfs(path) {
        Ok(fs) => fs.filesystem_type() == NSFS_MAGIC,
        Err(e) => e != nix::errno::Errno::ENOENT,
    }
}

/// Finishes the `rm` of every pod left in phase teardown-pending (its
/// network could not be torn down then); returns those still pending.
async fn finish_pending(ctx: &Ctx) -> Result<Vec<String>> {
    let mut still = Vec::new();
    for pod in ctx.store.pods()? {
        match ctx.store.load(&pod)? {
            Some(rec) if rec.phase == crate::teardown::TEARDOWN_PENDING => {}
            _ => continue,
        }
        let lock = PodLock::acquire(&ctx.store, &pod)?;
        // Reloaded under the lock: another podrun may have finished it.
        let Some(rec) = ctx.store.load(&pod)? else {
            continue;
        };
        match crate::teardown::remove(ctx, &rec, 0).await {
            Ok(()) => lock.remove(),
            Err(e) => {
                tracing::warn!("podrun: gc: {e:#}");
                still.push(pod);
            }
        }
    }
    Ok(still)
}

/// `podrun gc`: finishes pending removals (a pod still pending keeps its
/// attachment) and kills orphaned shims of this instance's IDs; then, for
/// every network in use (its live pods', its own cache entries', the
/// default one), DELs the attachments of this instance's pods that died
/// with their netns (so that their IPs come back even where GC does not
/// run: a conflist below CNI 1.1.0; plugins#252) and its cached
/// attachments without a live pod, then CNI GC with this instance's live
/// pods plus every attachment that is not its own as valid; finally
/// removes this instance's netns that no pod names.
pub async fn gc(ctx: &Ctx) -> Result<()> {
    let pending = finish_pending(ctx).await?;
    // Orphaned shims of this instance's IDs (`<pod>-<instance>[.<c>]`).
    let suffix = format!("-{}", ctx.store.instance);
    crate::converge::sweep_orphans(ctx, &|id| {
        id.split('.').next().is_some_and(|s| s.ends_with(&suffix))
    });
    // Records are read under the lock: a `run` that saved its record
    // after this point would otherwise lose its fresh attachment.
    let _gc = crate::lock::GcLock::exclusive(&ctx.g.cni_cache_dir)?;
    let own = own_pods(ctx)?;
    let mut errs = Vec::new();
    for rec in &own.dead {
        let del = ctx
            .network_of(rec)
            .and_then(|net| net.del(&ctx.attachment(rec, true)));
        if let Err(e) = del {
            errs.push(format!("CNI DEL of dead pod {:?}: {e:#}", rec.spec.name));
        }
    }
    if !pending.is_empty() {
        errs.push(format!(
            "network teardown still pending for pods {pending:?}"
        ));
    }
    let cached = cached_attachments(&ctx.g.cni_cache_dir);
    let mut nets: Vec<String> = own.live.iter().map(|(n, _)| n.clone()).collect();
    nets.extend(
        cached
            .iter()
            .filter(|c| ctx.store.owns(&c.container_id))
            .map(|c| c.network.clone()),
    );
    if let Ok(default) = ctx.network(None) {
        nets.push(default.list.name.clone());
    }
    nets.sort();
    nets.dedup();
    for name in nets {
        if let Err(e) = gc_network(ctx, &name, &own, &cached) {
            errs.push(format!("network {name:?}: {e:#}"));
        }
    }
    errs.extend(remove_orphan_netns(ctx, &own.netns));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("gc: {}", errs.join("; ")))
    }
}

/// The network `name`: its conflist now, else (removed since) the config
/// saved at `run` or cached at ADD.
fn network_named(ctx: &Ctx, name: &str, own: &Own, cached: &[Cached]) -> Result<Network> {
    let e = match ctx.network(Some(name)) {
        Ok(net) => return Ok(net),
        Err(e) => e,
    };
    let conf = own.saved.get(name).or_else(|| {
        cached
            .iter()
            .filter(|c| c.network == name && ctx.store.owns(&c.container_id))
            .find_map(|c| c.config.as_ref())
    });
    match conf {
        Some(conf) => Network::from_value(conf, &ctx.g.cni_bin_dir, &ctx.g.cni_cache_dir),
        None => Err(e),
    }
}

fn gc_network(ctx: &Ctx, name: &str, own: &Own, cached: &[Cached]) -> Result<()> {
    let net = network_named(ctx, name, own, cached)?;
    // libcni's GCNetworkList does nothing at all then, cache DELs included.
    if net.list.disable_gc {
        return Ok(());
    }
    let live: HashSet<&str> = own
        .live
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, id)| id.as_str())
        .collect();
    let mut errs = Vec::new();
    for c in cached.iter().filter(|c| {
        c.network == name
            && ctx.store.owns(&c.container_id)
            && !live.contains(c.container_id.as_str())
    }) {
        if let Err(e) = del_cached(ctx, c) {
            errs.push(format!("DEL stale attachment {}: {e:#}", c.container_id));
        }
    }
    let mut valid: Vec<Pair> = live
        .iter()
        .map(|id| (id.to_string(), IFNAME.to_string()))
        .collect();
    valid.extend(foreign_attachments(&ctx.store, &net, cached));
    if let Err(e) = net.gc(&valid) {
        errs.push(format!("{e:#}"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}", errs.join("; ")))
    }
}

/// This instance's named netns (`podrun-<instance>-<pod>`) that no record
/// names: left by a pod whose state was removed by hand.
fn remove_orphan_netns(ctx: &Ctx, kept: &HashSet<String>) -> Vec<String> {
    let prefix = ctx.store.netns_name("");
    let Ok(rd) = fs::read_dir(netkit::NETNS_RUN_DIR) else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Some(name) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        if name.len() > prefix.len() && name.starts_with(&prefix) && !kept.contains(&name) {
            if let Err(e) = netkit::delete_named(&name) {
                errs.push(format!("{e}"));
            }
        }
    }
    errs
}
