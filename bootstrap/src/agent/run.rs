//! The agent's life: wait for the network config, list the leases once,
//! set up the data plane of each enabled family ([`super::backend`]),
//! acquire a subnet lease ([`super::own`]) and program every other lease
//! from that list, write subnet.env last, then follow the leases with one
//! etcd watch from the list's revision ([`super::follow`],
//! [`super::sync`]), renew the lease before it expires, and put back what
//! the kernel reports deleted or changed ([`super::drift`]). The O(N) work
//! (a list, a full compare of the kernel tables) happens once at start,
//! when etcd cannot resume the watch, and every `--resync-interval` as a safety
//! net ([`super::relist`]); an idle agent does nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{sleep, sleep_until, Instant, Interval, MissedTickBehavior};

use super::backend::Plane;
use super::follow::{End, Follow};
use super::held::Held;
use super::iface::find_external;
use super::observe::Observer;
use super::relist::list_at_start;
use super::setup::{build_planes, stored_macs, usable, NetSetup};
use super::state::{Agent, RETRY};
use super::store::Store;
use super::wake::{jitter, next_kernel_events, watch_kernel, Watched};
use super::{log, AgentArgs};

/// First and longest pause before programming a lease again that the
/// kernel refused (a device not ready yet, a peer's route refused).
const RETRY_FAILED_FIRST: Duration = Duration::from_secs(1);
const RETRY_FAILED_MAX: Duration = Duration::from_secs(60);

pub fn agent_cmd(a: &AgentArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(run(a))
}

/// Wait until `<prefix>/config` exists and is a config the agent runs.
async fn wait_for_config(store: &mut Store, key: &str, init_hint: &str) -> NetSetup {
    let mut last = String::new();
    loop {
        let problem = match store.get(key).await {
            Err(e) => format!("cannot read the network config yet: {e:#}"),
            Ok(None) => format!(
                "no network config at {key} in etcd yet; create it once for the cluster \
                 with `{init_hint}`. Waiting for it"
            ),
            Ok(Some(kv)) => match usable(&kv) {
                Ok(v) => return v,
                Err(e) => format!(
                    "the network config at {key} cannot be used: {e:#}. Waiting for a fixed one"
                ),
            },
        };
        if problem != last {
            log(&problem);
            last = problem;
        }
        sleep(RETRY).await;
    }
}

async fn run(a: &AgentArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let lock = super::lock::acquire(&a.subnet_file)?;
    log(&format!(
        "PID {}, holding {} (one agent per network namespace)",
        std::process::id(),
        lock.path.display()
    ));
    let mut obs = Observer::start(a)?;
    let pinger = super::notify::startup_pings(obs.notify.ping_every);
    let cfg_key = a.etcd.key("config");
    let mut store = Store::new(&a.etcd.opts()?, cfg_key.clone())?;
    let hint = format!("netboot init --etcd {}", a.etcd.endpoints.join(","));
    obs.notify
        .status(&format!("waiting for the network config at {cfg_key}"));
    let net = wait_for_config(&mut store, &cfg_key, &hint).await;
    obs.update(|r| r.config = true);
    obs.notify.status("leasing a subnet");
    let ext = find_external(&mut netkit::Netlink::open()?, &a.ext, net.families())?;
    log(&format!(
        "public interface {} ({}, MTU {})",
        ext.name,
        [
            ext.ip.map(|i| i.to_string()),
            ext.ip6.map(|i| i.to_string())
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", "),
        ext.mtu
    ));
    for r in [&net.v4, &net.v6].into_iter().flatten() {
        log(&format!(
            "network {} (subnets /{} from {} to {})",
            r.network, r.len, r.min, r.max
        ));
    }
    let o = &net.vxlan;
    if net.backend == "vxlan" {
        log(&format!(
            "backend vxlan: VNI {} port {} GBP {} Learning {} DirectRouting {}{}",
            o.vni,
            o.port,
            o.gbp,
            o.learning,
            o.direct_routing,
            o.mtu.map_or(String::new(), |m| format!(" MTU {m}"))
        ));
        if !o.ignored.is_empty() {
            log(&format!(
                "ignoring Backend {}: Windows-only in flannel",
                o.ignored.join(", ")
            ));
        }
    } else {
        log("backend host-gw: routes via each node's public address, no tunnel");
    }
    let prefix = a.etcd.key("subnets/");
    // The one list of start-up (see list_at_start).
    let listed = list_at_start(&mut store, &prefix).await;
    let macs = stored_macs(&listed.kvs, &ext);
    let planes = build_planes(a, &ext, &net, macs)?;
    let previous = super::env::previous_subnets(&a.subnet_file);
    let mut agent = Agent {
        a,
        store,
        ext,
        net,
        planes,
        prefix,
        own: None,
        previous,
        skipped: BTreeMap::new(),
        leases: Held::default(),
        failed: BTreeSet::new(),
        retry_at: None,
        retry_delay: RETRY_FAILED_FIRST,
        programmed: 0,
        obs,
    };
    let mut first = Some(agent.acquire(Some(listed)).await?);
    agent.setup_node()?;
    let rev = loop {
        // The list our lease was chosen from; listed again only if it
        // could not be applied.
        let res = match first.take() {
            Some(l) => agent.apply_list(l, true, false).await,
            None => agent.relist(true).await,
        };
        match res {
            Ok(rev) => break rev,
            Err(e) => {
                log(&format!("cannot read the other leases yet: {e:#}"));
                sleep(RETRY).await;
            }
        }
    };
    agent.write_env()?;
    agent.obs.update(|r| r.env_written = true);
    agent.obs.notify.ready(&format!(
        "ready: subnet {}, {} peer(s)",
        agent.own_key().show(),
        agent.planes.iter().map(|p| p.count()).max().unwrap_or(0)
    ));
    if let Some(p) = pinger {
        p.abort();
    }
    let peers: usize = agent.planes.iter().map(|p| p.count()).sum();
    // host-gw's planes of both families share the interface: name it once.
    let mut through: Vec<String> = agent.planes.iter().map(Plane::name).collect();
    through.dedup();
    log(&format!(
        "ready after {:.1} s: subnet {}, {peers} route(s) to other nodes through {}",
        started.elapsed().as_secs_f64(),
        agent.own_key().show(),
        through.join(", ")
    ));
    let res = agent.event_loop(rev).await;
    drop(lock);
    res
}

/// A timer every `every` (none: never), its first tick one period away.
fn every(every: Option<Duration>) -> Option<Interval> {
    let d = every.filter(|d| !d.is_zero())?;
    // Started at a random point of the first period: agents started
    // together do not compare or check together.
    let mut t = tokio::time::interval_at(Instant::now() + jitter(d) + d / 2, d);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Some(t)
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Agent<'_> {
    /// What the kernel notifications are about: the devices of every plane
    /// (ifindex handles, refreshed when one is recreated), the interface of
    /// the direct routes, the cluster networks.
    fn watched(&self) -> Watched {
        let devs = self
            .planes
            .iter()
            .filter_map(Plane::device)
            .map(|(n, i)| (n.to_string(), Arc::new(AtomicU32::new(i))))
            .collect();
        Watched {
            devs,
            ext: self.ext.index,
            networks: self.planes.iter().map(|p| p.routes_on().1).collect(),
        }
    }

    fn refresh_indexes(&self, devs: &[(String, Arc<AtomicU32>)]) {
        for (name, index) in self.planes.iter().filter_map(Plane::device) {
            if let Some((_, a)) = devs.iter().find(|(n, _)| n == name) {
                a.store(index, Ordering::Relaxed);
            }
        }
    }

    async fn event_loop(&mut self, rev: i64) -> Result<()> {
        let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
        let a = self.a;
        let mut resync = every(Some(a.resync_interval));
        let mut devcheck = every(Some(
            a.device_check_interval.max(Duration::from_millis(200)),
        ));
        let progress = Some(a.watch_progress_interval).filter(|d| !d.is_zero());
        let mut follow = Follow::new(&self.prefix, rev, progress, a.etcd.opts()?.timeout);
        let watched = self.watched();
        let devs = watched.devs.clone();
        let mut kernel = watch_kernel(watched);
        loop {
            if let Some(to) = follow.moved(&self.store) {
                log(&format!(
                    "moving the lease watch to etcd at {to} (from revision {})",
                    follow.rev + 1
                ));
            }
            if follow.relist && follow.retry.due() {
                match self.relist(false).await {
                    Ok(r) => follow.listed(r),
                    Err(e) => follow.retry.failed(&format!("{e:#}")),
                }
            }
            follow.open_if_due(&mut self.store).await;
            if let Some(end) = follow.tick().await {
                self.watch_ended(&mut follow, &end);
            }
            self.publish(follow.is_open());
            self.obs.notify.ping_if_due();
            let renew_at = self
                .own
                .as_ref()
                .and_then(|o| o.renew_at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let watch_at = follow.wake_at();
            let retry_failed = self.retry_at.unwrap_or_else(Instant::now);
            tokio::select! {
                _ = term.recv() => {
                    log("SIGTERM: exiting; the lease, devices, routes and subnet.env stay \
                         (as with flanneld); `netboot leave` releases them");
                    return Ok(());
                }
                _ = int.recv() => {
                    log("SIGINT: exiting; the lease and the node setup stay");
                    return Ok(());
                }
                got = follow.next() => {
                    if !got.events.is_empty() {
                        if let Err(e) = self.apply_events(got.events).await {
                            log(&format!("handling a change of our own lease: {e:#}; listing again"));
                            follow.relist = true;
                        }
                    }
                    follow.applied(got.rev);
                    if let Some(end) = got.end {
                        self.watch_ended(&mut follow, &end);
                    }
                }
                _ = sleep_until(watch_at) => {}
                _ = tick(&mut resync) => self.resync(follow.rev),
                evs = next_kernel_events(&mut kernel) => {
                    self.on_kernel(evs).await;
                    self.refresh_indexes(&devs);
                }
                // The kernel's notification makes a deleted device heal at
                // once; this O(1) check stays as a safety net.
                _ = tick(&mut devcheck) => {
                    self.check_devices().await;
                    self.refresh_indexes(&devs);
                }
                _ = sleep_until(renew_at) => self.renew().await,
                _ = sleep_until(retry_failed), if self.retry_at.is_some() => self.retry_failed(),
                // Pings come from this loop, so a wedged loop stops them.
                _ = sleep_until(self.obs.notify.ping_at()) => {}
            }
        }
    }

    /// Note the outcome of programming: keys that failed are retried after
    /// a pause doubling from 1 s to 60 s while they keep failing (not at
    /// the next resync, which may be ten minutes away).
    pub fn programmed_keys(&mut self, ok: &[&String], failed: &[String]) {
        for k in ok {
            self.failed.remove(*k);
        }
        let new = failed.iter().any(|k| !self.failed.contains(k));
        self.failed.extend(failed.iter().cloned());
        if self.failed.is_empty() {
            self.retry_at = None;
            self.retry_delay = RETRY_FAILED_FIRST;
        } else if new || self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.retry_delay);
        }
    }

    fn retry_failed(&mut self) {
        self.retry_delay = (self.retry_delay * 2).min(RETRY_FAILED_MAX);
        self.retry_at = None;
        let keys: Vec<String> = std::mem::take(&mut self.failed).into_iter().collect();
        let mut usable = Vec::new();
        for k in keys {
            let Some(kv) = self.leases.get(&k) else {
                continue;
            };
            if let Ok(l) = self.remote(kv) {
                usable.push((k, l));
            }
        }
        self.add_leases(&usable, Some(" (retried)"));
        if self.failed.is_empty() {
            self.retry_delay = RETRY_FAILED_FIRST;
        } else {
            self.retry_at = Some(Instant::now() + self.retry_delay);
        }
    }

    fn watch_ended(&mut self, follow: &mut Follow, end: &End) {
        match end {
            End::Broken(why) => log(&format!(
                "the lease watch broke ({why}); resuming it from revision {} when etcd answers",
                follow.rev + 1
            )),
            End::Relist(why) => log(&format!(
                "the lease watch was cancelled by etcd ({why}); listing the leases again"
            )),
        }
        follow.ended(end, &mut self.store);
    }
}
