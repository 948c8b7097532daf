//! The agent's life: wait for the network config, set up the data plane of
//! each enabled family ([`super::backend`]), acquire a subnet lease
//! ([`super::own`]), program every other lease, write subnet.env last, then
//! follow leases with an etcd watch plus a periodic full resync
//! ([`super::sync`]), renew the lease before it expires, and recreate a
//! device as soon as the kernel reports it deleted or changed (link
//! notifications, plus a periodic check).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::WatchStream;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{interval, sleep, sleep_until, Instant, MissedTickBehavior};

use super::backend::Plane;
use super::iface::{find_external, External};
use super::observe::Observer;
use super::own::Own;
use super::setup::{build_planes, stored_macs, usable, NetSetup};
use super::store::Store;
use super::wake::{next_device_event, next_message, watch_devices, Backoff};
use super::{log, AgentArgs};
use crate::etcd::Kv;
use crate::lease::SubnetKey;

/// Pause between attempts while etcd or the config is not there yet.
pub(super) const RETRY: Duration = Duration::from_secs(2);

pub(super) struct Agent<'a> {
    pub a: &'a AgentArgs,
    pub store: Store,
    pub ext: External,
    pub net: NetSetup,
    /// One per enabled family, IPv4 first.
    pub planes: Vec<Plane>,
    pub prefix: String,
    pub own: Option<Own>,
    /// Subnets to prefer when acquiring (subnet.env, or the current one).
    pub previous: SubnetKey,
    /// Lease keys already reported as skipped, with the reason.
    pub skipped: BTreeMap<String, String>,
    /// systemd notifications, readiness and metrics.
    pub obs: Observer,
}

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
    let macs = stored_macs(&mut store, &prefix, &ext).await;
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
        obs,
    };
    agent.acquire().await?;
    agent.setup_node()?;
    let rev = loop {
        match agent.resync(true).await {
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
        agent
            .planes
            .iter()
            .map(|p| p.known().len())
            .max()
            .unwrap_or(0)
    ));
    if let Some(p) = pinger {
        p.abort();
    }
    let peers: usize = agent.planes.iter().map(|p| p.known().len()).sum();
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

impl Agent<'_> {
    /// Watch handles for the devices of every plane.
    fn device_indexes(&self) -> Vec<(String, Arc<AtomicU32>)> {
        self.planes
            .iter()
            .filter_map(Plane::device)
            .map(|(n, i)| (n.to_string(), Arc::new(AtomicU32::new(i))))
            .collect()
    }

    fn refresh_indexes(&self, devs: &[(String, Arc<AtomicU32>)]) {
        for (name, index) in self.planes.iter().filter_map(Plane::device) {
            if let Some((_, a)) = devs.iter().find(|(n, _)| n == name) {
                a.store(index, Ordering::Relaxed);
            }
        }
    }

    async fn event_loop(&mut self, mut rev: i64) -> Result<()> {
        let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
        let mut resync = interval(self.a.resync_interval.max(Duration::from_secs(1)));
        let mut devcheck = interval(self.a.device_check_interval.max(Duration::from_millis(200)));
        let mut retry = Backoff::new("read the leases");
        let mut watch_retry = Backoff::new("watch the leases");
        for t in [&mut resync, &mut devcheck] {
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t.reset();
        }
        let mut stream: Option<WatchStream> = None;
        let mut resync_needed = false;
        let devs = self.device_indexes();
        let mut dev_events = watch_devices(devs.clone());
        // The connection the watch was opened on.
        let mut watch_gen = 0;
        let mut watches_opened = 0u64;
        loop {
            if stream.is_some() && watch_gen != self.store.generation() {
                // A request failed over to another member; the watch may
                // hang on the old one forever (a member cut off without a
                // reset), so it moves too, from the last revision seen.
                log(&format!(
                    "moving the lease watch to etcd at {} (from revision {})",
                    self.store.endpoint,
                    rev + 1
                ));
                stream = None;
            }
            if stream.is_none() && !resync_needed && watch_retry.due() {
                match self.store.watch(&self.prefix, rev + 1).await {
                    Ok(s) => {
                        stream = Some(s);
                        watch_gen = self.store.generation();
                        watch_retry.succeeded();
                        if watches_opened > 0 {
                            super::metrics::get().watch_restarts.inc();
                        }
                        watches_opened += 1;
                    }
                    Err(e) => watch_retry.failed(&format!("{e:#}")),
                }
            }
            self.publish(stream.is_some());
            self.obs.notify.ping_if_due();
            let renew_at = self
                .own
                .as_ref()
                .and_then(|o| o.renew_at)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
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
                msg = next_message(&mut stream) => match msg {
                    Ok(Some(resp)) if resp.canceled() || resp.compact_revision() > 0 => {
                        log("the lease watch was cancelled by etcd (history compacted?); resyncing");
                        stream = None;
                        resync_needed = true;
                    }
                    Ok(Some(resp)) => {
                        for ev in resp.events() {
                            let Some(kv) = ev.kv() else { continue };
                            let kv = Kv::from(kv);
                            rev = rev.max(kv.mod_revision);
                            if let Err(e) = self.on_event(ev.event_type(), &kv).await {
                                log(&format!("handling a change of {}: {e:#}", kv.key));
                                resync_needed = true;
                            }
                        }
                    }
                    Ok(None) | Err(_) => {
                        let why = match &msg {
                            Err(e) => super::store::plain_error(e),
                            _ => "stream ended".into(),
                        };
                        self.store.watch_failed(&why);
                        log(&format!("the lease watch broke ({why}); resyncing when etcd answers"));
                        stream = None;
                        resync_needed = true;
                    }
                },
                _ = resync.tick() => resync_needed = true,
                _ = sleep_until(retry.at), if resync_needed => {}
                _ = sleep_until(watch_retry.at), if stream.is_none() && !resync_needed => {}
                // The kernel's notification makes a deleted device heal at
                // once; the periodic check stays as a safety net.
                _ = next_device_event(&mut dev_events) => {
                    self.check_devices().await;
                    self.refresh_indexes(&devs);
                }
                _ = devcheck.tick() => {
                    self.check_devices().await;
                    self.refresh_indexes(&devs);
                }
                _ = sleep_until(renew_at) => self.renew().await,
                // Pings come from this loop, so a wedged loop stops them.
                _ = sleep_until(self.obs.notify.ping_at()) => {}
            }
            // Other wake-ups (watchdog pings, device checks) do not hurry a
            // failing re-read past its backoff.
            if resync_needed && retry.due() {
                match self.resync(false).await {
                    Ok(r) => {
                        retry.succeeded();
                        resync_needed = false;
                        // A broken watch restarts right after the resync's
                        // revision, so nothing between the two is missed; a
                        // healthy one keeps its own position.
                        if stream.is_none() {
                            rev = r;
                        }
                    }
                    Err(e) => retry.failed(&format!("{e:#}")),
                }
            }
        }
    }
}
