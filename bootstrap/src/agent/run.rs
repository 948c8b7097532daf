//! The agent's life: wait for the network config, set up flannel.<VNI>,
//! acquire a subnet lease (flannel `pkg/subnet/etcd/local_manager.go`
//! tryAcquireLease), program every other lease, write subnet.env last, then
//! follow leases with an etcd watch plus a periodic full resync, renew the
//! lease before it expires, and recreate the device as soon as the kernel
//! reports it deleted or changed (link notifications, plus a periodic check).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use etcd_client::{EventType, WatchStream};
use ipnet::{IpNet, Ipv4Net};
use netkit::{firewall, Netlink};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::{interval, sleep, sleep_until, Instant, MissedTickBehavior};

use super::iface::{find_external, Families};
use super::node::{random_mac, reconcile_cni0, Vtep};
use super::store::{is_lease_not_found, Store};
use super::wake::{next_device_event, next_message, watch_device, Backoff};
use super::{env, log, AgentArgs, RULE_TAG};
use crate::etcd::Kv;
use crate::lease::{
    parse_subnet_key, random_seed, subnet_key_name, vxlan_lease_json, Range, RemoteLease,
};
use crate::netconfig::{NetConfig, DEFAULT_VNI};

/// Pause between attempts while etcd or the config is not there yet.
const RETRY: Duration = Duration::from_secs(2);

/// This node's lease.
struct Own {
    subnet: Ipv4Net,
    key: String,
    lease: i64,
    renew_at: Instant,
}

struct Agent<'a> {
    a: &'a AgentArgs,
    store: Store,
    vtep: Vtep,
    range: Range,
    network: Ipv4Net,
    prefix: String,
    own: Option<Own>,
    /// Subnet to prefer when acquiring (subnet.env, or the current one).
    previous: Option<Ipv4Net>,
    /// Lease keys already reported as skipped (not vxlan, unreadable).
    skipped: BTreeMap<String, String>,
}

pub fn agent_cmd(a: &AgentArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    rt.block_on(run(a))
}

/// Wait until `<prefix>/config` exists and is a usable vxlan config.
async fn wait_for_config(store: &mut Store, key: &str, init_hint: &str) -> (Range, u32, u16) {
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

fn usable(kv: &Kv) -> Result<(Range, u32, u16)> {
    let cfg = NetConfig::parse(&kv.value)?;
    let eff = cfg.check().map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    if eff.backend != "vxlan" {
        bail!(
            "backend is {:?}; `netboot agent` implements vxlan only",
            eff.backend
        );
    }
    let v4 = eff
        .v4
        .context("IPv4 is disabled; the agent needs an IPv4 network")?;
    let range = Range {
        network: v4.network,
        len: v4.subnet_len,
        min: v4.subnet_min,
        max: v4.subnet_max,
    };
    Ok((
        range,
        eff.vni.unwrap_or(DEFAULT_VNI),
        eff.port.unwrap_or(netkit::VXLAN_DEFAULT_PORT),
    ))
}

async fn run(a: &AgentArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let lock = super::lock::acquire(&a.subnet_file)?;
    log(&format!(
        "PID {}, holding {} (one agent per network namespace)",
        std::process::id(),
        lock.path.display()
    ));
    let mut nl = Netlink::open()?;
    let ext = find_external(
        &mut nl,
        &a.ext,
        Families {
            v4: true,
            v6: false,
        },
    )?;
    log(&format!(
        "public interface {} ({}, MTU {})",
        ext.name,
        ext.ip4(),
        ext.mtu
    ));
    let cfg_key = a.etcd.key("config");
    let mut store = Store::new(&a.etcd.opts()?, cfg_key.clone())?;
    let hint = format!("netboot init --etcd {}", a.etcd.endpoints.join(","));
    let (range, vni, port) = wait_for_config(&mut store, &cfg_key, &hint).await;
    log(&format!(
        "network {} (subnets /{} from {} to {}), vxlan VNI {vni} port {port}",
        range.network, range.len, range.min, range.max
    ));
    let prefix = a.etcd.key("subnets/");
    // Keep the VtepMAC of this node's existing lease, if any, so other
    // nodes' FDB entries stay right even if our device is gone.
    let mac = loop {
        match store.list(&prefix).await {
            Ok((kvs, _)) => {
                break kvs.iter().find_map(|kv| {
                    RemoteLease::parse(&kv.key, &kv.value)
                        .ok()
                        .filter(|l| l.public_ip == ext.ip4())
                        .and_then(|l| l.vtep_mac)
                })
            }
            Err(e) => {
                log(&format!("cannot list leases yet: {e:#}"));
                sleep(RETRY).await;
            }
        }
    };
    let mut vtep = Vtep::new(
        nl,
        vni,
        port,
        ext,
        mac.unwrap_or_else(|| random_mac(random_seed())),
    );
    vtep.remove_other_vnis()?;
    vtep.ensure_device()?;
    let previous = env::previous_subnet(&a.subnet_file);
    let mut agent = Agent {
        a,
        store,
        vtep,
        range,
        network: range.network,
        prefix,
        own: None,
        previous,
        skipped: BTreeMap::new(),
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
    log(&format!(
        "ready after {:.1} s: subnet {}, {} other node(s) reachable through {}",
        started.elapsed().as_secs_f64(),
        agent.own_subnet(),
        agent.vtep.remotes.len(),
        agent.vtep.name
    ));
    let res = agent.event_loop(rev).await;
    drop(lock);
    res
}

impl Agent<'_> {
    fn own_subnet(&self) -> Ipv4Net {
        self.own.as_ref().map(|o| o.subnet).expect("lease acquired")
    }

    fn value(&self) -> String {
        vxlan_lease_json(self.vtep.ext.ip4(), self.vtep.vni, self.vtep.mac)
    }

    fn ttl_secs(&self) -> i64 {
        self.a.lease_ttl.as_secs().max(1) as i64
    }

    /// When to renew a lease granted now: `renew_margin` before expiry
    /// (half the TTL if the margin is not shorter than the TTL).
    fn renew_at(&self) -> Instant {
        let ttl = self.a.lease_ttl;
        let margin = if self.a.renew_margin < ttl {
            self.a.renew_margin
        } else {
            ttl / 2
        };
        Instant::now() + (ttl - margin)
    }

    /// Grant a lease and write our value under `key` with it, either
    /// create-if-absent (`create`) or unconditionally. `Ok(false)`: the key
    /// exists (create only).
    async fn write_leased(&mut self, key: &str, create: bool) -> Result<bool> {
        let value = self.value();
        let id = self.store.grant(self.ttl_secs()).await?;
        let res = if create {
            self.store.create(key, &value, id).await
        } else {
            self.store.put(key, &value, id).await.map(|()| true)
        };
        match res {
            Ok(true) => {
                self.own = Some(Own {
                    subnet: parse_subnet_key(key).expect("our own key"),
                    key: key.to_string(),
                    lease: id,
                    renew_at: self.renew_at(),
                });
                Ok(true)
            }
            Ok(false) => {
                let _ = self.store.revoke(id).await;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Acquire a lease: this node's existing lease (same PublicIP), else
    /// the previous subnet if free, else a random free one. Retries on etcd
    /// errors forever; fails only when the range is exhausted.
    async fn acquire(&mut self) -> Result<()> {
        let ip = self.vtep.ext.ip4();
        let mut pause = Duration::from_millis(200);
        loop {
            match self.try_acquire().await {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    log("the chosen subnet was taken meanwhile by another node; choosing again");
                    continue;
                }
                Err(e) if e.to_string().starts_with("no free subnet") => return Err(e),
                Err(e) if is_lease_not_found(&e) => log(&format!(
                    "etcd did not know the lease it had just granted ({e:#}; a member that \
                     had not applied the grant yet, etcd#13675): granting a new one"
                )),
                Err(e) => log(&format!("cannot acquire a lease for {ip} yet: {e:#}")),
            }
            sleep(pause).await;
            pause = (pause * 2).min(RETRY);
        }
    }

    async fn try_acquire(&mut self) -> Result<bool> {
        let ip = self.vtep.ext.ip4();
        let (kvs, _) = self.store.list(&self.prefix).await?;
        let mut taken = Vec::new();
        for kv in &kvs {
            let Some(sn) = parse_subnet_key(&kv.key) else {
                continue;
            };
            let mine = RemoteLease::parse(&kv.key, &kv.value).is_ok_and(|l| l.public_ip == ip);
            if !mine {
                taken.push(sn);
                continue;
            }
            if self.range.fits(sn) {
                self.write_leased(&kv.key, false).await?;
                log(&format!(
                    "reusing the lease {sn} that already names this node ({ip})"
                ));
                return Ok(true);
            }
            log(&format!(
                "deleting this node's old lease {sn}: it does not fit the current config"
            ));
            self.store.delete(&kv.key).await?;
        }
        let free = |sn: &Ipv4Net| !taken.iter().any(|t| t.contains(sn) || sn.contains(t));
        let sn = match self.previous.filter(|p| self.range.fits(*p) && free(p)) {
            Some(p) => {
                log(&format!("reusing this node's previous subnet {p}"));
                p
            }
            None => match self.range.pick(&taken, random_seed()) {
                Some(sn) => sn,
                None => bail!(
                    "no free subnet: all {} subnets from {} to {} (/{}) are leased; remove \
                     leases of dead nodes (`netboot status` lists them) or widen \
                     SubnetMin/SubnetMax",
                    self.range.size(),
                    self.range.min,
                    self.range.max,
                    self.range.len
                ),
            },
        };
        let key = format!("{}{}", self.prefix, subnet_key_name(sn));
        if self.write_leased(&key, true).await? {
            log(&format!(
                "leased subnet {sn} for {ip} (etcd lease TTL {} s)",
                self.ttl_secs()
            ));
            return Ok(true);
        }
        Ok(false)
    }

    /// Acquire again after our key vanished or was taken; apply a changed
    /// subnet to the node.
    async fn reacquire(&mut self) -> Result<()> {
        let before = self.own.take().map(|o| o.subnet);
        self.previous = before.or(self.previous);
        self.acquire().await?;
        let now = self.own_subnet();
        if before != Some(now) {
            log(&format!(
                "our subnet changed from {} to {now}: updating {} and subnet.env",
                before.map_or("none".into(), |b| b.to_string()),
                self.vtep.name
            ));
            self.setup_node()?;
            self.write_env()?;
        }
        Ok(())
    }

    /// Address on flannel.<VNI>, forwarding, masquerade, cni0 check.
    fn setup_node(&mut self) -> Result<()> {
        let subnet = self.own_subnet();
        self.vtep.ensure_addr(subnet)?;
        let ns = netkit::Netns::current()?;
        netkit::sysctl::set_in(&ns, "net/ipv4/ip_forward", "1")?;
        self.firewall()?;
        reconcile_cni0(&mut self.vtep.nl, subnet)?;
        Ok(())
    }

    fn firewall(&mut self) -> Result<()> {
        let net = IpNet::V4(self.network);
        if let Err(e) = firewall::ensure_forward_accept(RULE_TAG, net) {
            log(&format!(
                "warning: cannot add the forward accept rules: {e}"
            ));
        }
        // The nft accept above cannot overrule an iptables FORWARD policy
        // DROP (Docker's); only an ACCEPT in that chain can (netkit
        // `firewall::forward`, flanneld's FLANNEL-FWD).
        match firewall::ensure_iptables_forward_accept(net) {
            Ok(firewall::IptForward::Written) => log(&format!(
                "allowed forwarding to and from {net} in iptables filter FORWARD (chain {}), \
                 so a FORWARD policy DROP (as Docker sets) does not cut pod traffic",
                firewall::forward::IPT_CHAIN
            )),
            Ok(_) => {}
            Err(e) => log(&format!(
                "warning: cannot add the iptables forward accept rules: {e}"
            )),
        }
        if self.a.ip_masq {
            let subnet = IpNet::V4(self.own_subnet());
            if firewall::ensure_node_masquerade(RULE_TAG, subnet, &[net])? {
                log(&format!(
                    "masquerading traffic from {subnet} to outside {}",
                    self.network
                ));
            }
        } else {
            firewall::remove_node_masquerade(RULE_TAG)?;
        }
        Ok(())
    }

    fn write_env(&self) -> Result<()> {
        let text = env::render(
            self.network,
            self.own_subnet(),
            self.vtep
                .ext
                .mtu
                .saturating_sub(super::node::VXLAN_OVERHEAD),
            self.a.ip_masq,
        );
        env::write_atomic(&self.a.subnet_file, &text)?;
        log(&format!("wrote {}", self.a.subnet_file.display()));
        Ok(())
    }

    /// A remote lease as the vxlan backend accepts it, or why not.
    fn remote(&self, kv: &Kv) -> Result<RemoteLease, String> {
        let l = RemoteLease::parse(&kv.key, &kv.value)?;
        if l.backend != "vxlan" {
            return Err(format!("backend {:?}, not vxlan", l.backend));
        }
        if l.vtep_mac.is_none() {
            return Err("no VtepMAC".into());
        }
        if l.public_ip == self.vtep.ext.ip4() {
            return Err("it names this node's own address".into());
        }
        Ok(l)
    }

    fn skip(&mut self, key: &str, why: String) {
        if self.skipped.get(key) != Some(&why) {
            log(&format!("ignoring lease {key}: {why}"));
            self.skipped.insert(key.to_string(), why);
        }
    }

    /// Program `l` if it is new or changed; `note` ends the log line
    /// (`None`: no log line, for the first read at start).
    fn add_remote(&mut self, l: &RemoteLease, note: Option<&str>) {
        let known = self.vtep.remotes.contains_key(&l.subnet);
        match self.vtep.program(l) {
            Ok(true) => {
                if let Some(note) = note {
                    log(&format!(
                        "node {} (subnet {}, VTEP {}) {}{note}: route via {}",
                        l.public_ip,
                        l.subnet,
                        l.vtep_mac.map(|m| netkit::fmt_mac(&m)).unwrap_or_default(),
                        if known { "changed" } else { "joined" },
                        self.vtep.name
                    ))
                }
            }
            Ok(false) => {}
            Err(e) => log(&format!("cannot program {}: {e:#}", l.subnet)),
        }
    }

    fn remove_remote(&mut self, subnet: Ipv4Net, why: &str) {
        if !self.vtep.remotes.contains_key(&subnet) {
            return;
        }
        match self.vtep.unprogram(subnet) {
            Ok(()) => log(&format!(
                "lease {subnet} {why}: removed its route, ARP and FDB entries"
            )),
            Err(e) => log(&format!("cannot remove {subnet}: {e:#}")),
        }
    }

    /// Read every lease and make the kernel match (only what differs: see
    /// [`super::node::Vtep::reconcile`]); check our own lease. `quiet`: do
    /// not log each lease (the first read at start). Returns the store
    /// revision of the read.
    async fn resync(&mut self, quiet: bool) -> Result<i64> {
        let (kvs, rev) = self.store.list(&self.prefix).await?;
        let own_key = self.own.as_ref().map(|o| o.key.clone());
        let (mut own_ok, mut own_seen) = (false, false);
        let mut wanted = Vec::new();
        for kv in &kvs {
            if Some(&kv.key) == own_key.as_ref() {
                own_seen = true;
                own_ok = kv.value == self.value().as_bytes();
                continue;
            }
            match self.remote(kv) {
                Ok(l) => wanted.push(l),
                Err(why) => self.skip(&kv.key, why),
            }
        }
        let note = (!quiet).then_some(" (found on resync)");
        for l in &wanted {
            self.add_remote(l, note);
        }
        let live: BTreeSet<Ipv4Net> = wanted.iter().map(|l| l.subnet).collect();
        let gone: Vec<Ipv4Net> = self
            .vtep
            .remotes
            .keys()
            .filter(|s| !live.contains(s))
            .copied()
            .collect();
        for s in gone {
            self.remove_remote(s, "is gone (found on resync)");
        }
        self.vtep.reconcile()?;
        if !own_ok {
            log(&format!(
                "our lease {} {} in etcd (found on resync); acquiring it again",
                own_key.as_deref().unwrap_or("-"),
                if own_seen {
                    "was changed by someone else"
                } else {
                    "is gone (expired or deleted)"
                }
            ));
            self.reacquire().await?;
        }
        self.firewall()?;
        Ok(rev)
    }

    async fn on_event(&mut self, kind: EventType, kv: &Kv) -> Result<()> {
        let own_key = self.own.as_ref().map(|o| o.key.clone());
        let is_own = Some(&kv.key) == own_key.as_ref();
        match kind {
            EventType::Put if is_own => {
                if kv.value != self.value().as_bytes() {
                    log("someone else wrote our lease key; acquiring a lease again");
                    self.reacquire().await?;
                }
            }
            EventType::Put => match self.remote(kv) {
                Ok(l) => self.add_remote(&l, Some("")),
                Err(why) => self.skip(&kv.key, why),
            },
            EventType::Delete if is_own => {
                // A delete older than our current key is stale: e.g. the
                // expiry of a lease that ran out while the agent was
                // stopped (SIGSTOP), seen only after the renewal had
                // already put the key back.
                let lease = self.own.as_ref().map_or(0, |o| o.lease);
                if let Ok(Some(cur)) = self.store.get(&kv.key).await {
                    if cur.mod_revision > kv.mod_revision
                        && cur.lease == lease
                        && cur.value == self.value().as_bytes()
                    {
                        return Ok(());
                    }
                }
                log(&format!(
                    "our lease {} was deleted or expired in etcd (flanneld would exit \
                     here); acquiring it again",
                    kv.key
                ));
                self.reacquire().await?;
            }
            EventType::Delete => {
                if let Some(sn) = parse_subnet_key(&kv.key) {
                    self.remove_remote(sn, "was deleted or expired");
                }
                self.skipped.remove(&kv.key);
            }
        }
        Ok(())
    }

    async fn renew(&mut self) {
        let Some(own) = self.own.as_ref() else {
            return;
        };
        let (key, old_lease) = (own.key.clone(), own.lease);
        let value = self.value();
        let res = async {
            let id = self.store.grant(self.ttl_secs()).await?;
            let moved = self.store.replace_if(&key, &value, &value, id).await?;
            Ok::<_, anyhow::Error>((id, moved))
        }
        .await;
        match res {
            Ok((id, true)) => {
                let renew_at = self.renew_at();
                if let Some(o) = self.own.as_mut() {
                    o.lease = id;
                    o.renew_at = renew_at;
                }
                let _ = self.store.revoke(old_lease).await;
                log(&format!(
                    "renewed the lease on {key} for {} s",
                    self.ttl_secs()
                ));
            }
            Ok((id, false)) => {
                let _ = self.store.revoke(id).await;
                log(&format!(
                    "our lease {key} vanished before renewal; acquiring it again"
                ));
                if let Err(e) = self.reacquire().await {
                    log(&format!("cannot acquire a lease: {e:#}"));
                }
            }
            Err(e) => {
                let delay = (self.a.renew_margin / 4)
                    .clamp(Duration::from_secs(1), Duration::from_secs(60));
                log(&format!(
                    "cannot renew the lease yet ({e:#}); retrying in {} s",
                    delay.as_secs()
                ));
                if let Some(o) = self.own.as_mut() {
                    o.renew_at = Instant::now() + delay;
                }
            }
        }
    }

    /// flannel.<VNI> deleted or changed by someone else: rebuild it and
    /// everything on it; its address, routes, ARP or FDB entries removed:
    /// put them back.
    async fn check_device(&mut self) -> Result<()> {
        if self.vtep.intact()? {
            let fixed = self.vtep.restore(self.own_subnet())?;
            if !fixed.is_empty() {
                log(&format!(
                    "{}: put back what someone removed: {}",
                    self.vtep.name,
                    fixed.join(", ")
                ));
            }
            return Ok(());
        }
        log(&format!(
            "{} disappeared or was changed by someone else; recreating it",
            self.vtep.name
        ));
        self.vtep.ensure_device()?;
        self.setup_node()?;
        // Every lease we know goes back at once, even with etcd away; the
        // resync then catches up with changes.
        self.vtep.reconcile()?;
        if let Err(e) = self.resync(false).await {
            log(&format!(
                "cannot read the leases to reprogram {} yet ({e:#}); next resync will",
                self.vtep.name
            ));
        }
        Ok(())
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
        let dev_index = Arc::new(AtomicU32::new(self.vtep.index));
        let mut dev_events = watch_device(&self.vtep.name, dev_index.clone());
        // The connection the watch was opened on.
        let mut watch_gen = 0;
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
                    }
                    Err(e) => watch_retry.failed(&format!("{e:#}")),
                }
            }
            let renew_at = self.own.as_ref().map_or_else(
                || Instant::now() + Duration::from_secs(3600),
                |o| o.renew_at,
            );
            tokio::select! {
                _ = term.recv() => {
                    log("SIGTERM: exiting; the lease, flannel device, routes and subnet.env stay \
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
                    if let Err(e) = self.check_device().await {
                        log(&format!("cannot repair {}: {e:#}", self.vtep.name));
                    }
                    dev_index.store(self.vtep.index, Ordering::Relaxed);
                }
                _ = devcheck.tick() => {
                    if let Err(e) = self.check_device().await {
                        log(&format!("cannot repair {}: {e:#}", self.vtep.name));
                    }
                    dev_index.store(self.vtep.index, Ordering::Relaxed);
                }
                _ = sleep_until(renew_at) => self.renew().await,
            }
            if resync_needed {
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
