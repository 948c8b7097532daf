//! The O(N) work, kept rare: the list of every lease from etcd (once at
//! start, shared by every step of start-up, and again only when etcd
//! cannot resume the watch), the compare of the kernel
//! tables with the leases held (every `--resync-interval`, a safety net for
//! what the kernel's notifications did not tell), and the rebuild of a
//! device deleted behind the agent's back.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Result;
use ipnet::IpNet;

use super::backend::Plane;
use super::state::{Agent, RETRY};
use super::store::Store;
use super::{debug, log, metrics};
use crate::etcd::Kv;

/// Every key under the lease prefix, the store revision of the read, and
/// how long the read took.
pub struct Listed {
    pub kvs: Vec<Kv>,
    pub rev: i64,
    pub took: Duration,
}

impl Listed {
    /// One list of `prefix`.
    pub async fn read(store: &mut Store, prefix: &str) -> Result<Listed> {
        let started = Instant::now();
        let (kvs, rev) = store.list(prefix).await?;
        Ok(Listed {
            kvs,
            rev,
            took: started.elapsed(),
        })
    }
}

/// The one list at start, retried until etcd answers. It serves the
/// VtepMACs of an existing lease, the choice of our subnet and the first
/// programming of the other leases; the watch starts right after its
/// revision, so every change made since (our own writes included) comes
/// as events. Listing for each of those steps costs etcd a full read of
/// every lease per step, per agent: at 5000 leases and a rack of agents
/// starting together, the bulk of start-up's load on etcd.
pub async fn list_at_start(store: &mut Store, prefix: &str) -> Listed {
    loop {
        match Listed::read(store, prefix).await {
            Ok(l) => return l,
            Err(e) => {
                log(&format!("cannot list the leases yet: {e:#}"));
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// CPU time of the calling thread (the agent's runtime runs on one).
fn thread_cpu() -> f64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_THREAD).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    })
}

impl Agent<'_> {
    /// Read every lease from etcd and apply them ([`Agent::apply_list`],
    /// our own lease checked). `quiet`: do not log each lease. Returns the
    /// store revision of the read, to watch from.
    pub async fn relist(&mut self, quiet: bool) -> Result<i64> {
        let l = Listed::read(&mut self.store, &self.prefix).await?;
        self.apply_list(l, quiet, true).await
    }

    /// Hold the leases of `l`, make the kernel match (only what differs)
    /// and, with `check_own`, check our own lease in it (not in the list at
    /// start, read before our lease was written: the watch brings that
    /// write). `quiet`: do not log each lease. Returns `l`'s revision.
    pub async fn apply_list(&mut self, l: Listed, quiet: bool, check_own: bool) -> Result<i64> {
        let started = Instant::now();
        let (rev, took) = (l.rev, l.took);
        let res = self.apply_list_inner(l.kvs, rev, quiet, check_own).await;
        metrics::get()
            .resync_seconds
            .observe((took + started.elapsed()).as_secs_f64());
        res
    }

    async fn apply_list_inner(
        &mut self,
        kvs: Vec<Kv>,
        rev: i64,
        quiet: bool,
        check_own: bool,
    ) -> Result<i64> {
        let own_path = self.own.as_ref().map(|o| o.path.clone());
        let (mut own_ok, mut own_seen) = (false, false);
        let mut held = Vec::new();
        for kv in kvs {
            if Some(&kv.key) == own_path.as_ref() {
                own_seen = true;
                own_ok = kv.value == self.value().as_bytes();
                if own_ok && check_own {
                    self.follow_own_lease(&kv).await;
                }
                continue;
            }
            held.push(kv);
        }
        self.leases.replace(held);
        let note = (!quiet).then_some(" (found on resync)");
        let (usable, programmed) = self.program_held(note);
        for p in &mut self.planes {
            let fixed = p.reconcile()?;
            metrics::get().repairs.inc_by(fixed as u64);
        }
        if check_own && !own_ok {
            log(&format!(
                "our lease {} {} in etcd (found on resync); acquiring it again",
                own_path.as_deref().unwrap_or("-"),
                if own_seen {
                    "was changed by someone else"
                } else {
                    "is gone (expired or deleted)"
                }
            ));
            self.reacquire().await?;
        }
        self.firewall()?;
        debug(&format!(
            "listed the leases at etcd revision {rev}: {} key(s) of other nodes, {usable} \
             usable, {programmed} subnet(s) programmed",
            self.leases.len(),
        ));
        Ok(rev)
    }

    /// Program every lease held (what is programmed already costs
    /// nothing) and remove what no lease held explains; `note` ends the
    /// log lines. Returns (usable leases, subnets programmed).
    fn program_held(&mut self, note: Option<&str>) -> (usize, usize) {
        let mut usable = Vec::new();
        let mut refused = Vec::new();
        for (k, kv) in self.leases.iter() {
            match self.remote(kv) {
                Ok(l) => usable.push((k.clone(), l)),
                Err(why) => refused.push((k.clone(), why)),
            }
        }
        for (k, why) in refused {
            self.skip(&k, why);
        }
        self.add_leases(&usable, note);
        let live: BTreeSet<IpNet> = usable
            .iter()
            .flat_map(|(_, l)| [l.key.get(false), l.key.get(true)])
            .flatten()
            .collect();
        let gone: Vec<IpNet> = self
            .planes
            .iter()
            .flat_map(Plane::known)
            .filter(|s| !live.contains(s))
            .collect();
        let why = note.map_or("is gone".to_string(), |n| format!("is gone{n}"));
        self.remove_subnets(&gone, &why);
        self.skipped.retain(|k, _| self.leases.contains(k));
        self.failed.retain(|k| self.leases.contains(k));
        let programmed = self.planes.iter().map(|p| p.count()).sum();
        (usable.len(), programmed)
    }

    /// The safety net: compare the kernel tables with the leases held,
    /// in full (three dumps per device; no etcd request), and retry leases
    /// that could not be programmed. `rev`: the revision the leases are at.
    pub fn resync(&mut self, rev: i64) {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        let (usable, programmed) = self.program_held(Some(" (found on resync)"));
        let own = self.own_key();
        for p in &mut self.planes {
            let res = match own.get(p.v6()) {
                Some(sn) => p.restore_device(sn).map(|f| f.len()),
                None => Ok(0),
            }
            .and_then(|a| Ok(a + p.reconcile()?));
            match res {
                Ok(fixed) => {
                    metrics::get().repairs.inc_by(fixed as u64);
                }
                Err(e) => log(&format!(
                    "cannot compare {} with the leases: {e:#}",
                    p.name()
                )),
            }
        }
        if let Err(e) = self.firewall() {
            log(&format!("cannot check the firewall rules: {e:#}"));
        }
        let m = metrics::get();
        m.compare_seconds.observe(wall.elapsed().as_secs_f64());
        m.compare_cpu.inc_by((thread_cpu() - cpu).max(0.0));
        debug(&format!(
            "resync at etcd revision {rev}: {} lease(s) of other nodes held, {usable} usable, \
             {programmed} subnet(s) programmed; kernel tables compared in {:.1} ms",
            self.leases.len(),
            wall.elapsed().as_secs_f64() * 1e3
        ));
    }

    /// A device deleted or changed by someone else: rebuild it and
    /// everything on it, from the leases held (no etcd request); its
    /// address or settings lost: put them back. O(1) while all is well.
    pub async fn check_devices(&mut self) {
        let own = self.own_key();
        let mut rebuilt = false;
        for p in &mut self.planes {
            let Some(sn) = own.get(p.v6()) else { continue };
            let res = (|| -> Result<()> {
                if p.intact()? {
                    let fixed = p.restore_device(sn)?;
                    if !fixed.is_empty() {
                        metrics::get().repairs.inc_by(fixed.len() as u64);
                        log(&format!(
                            "{}: put back what someone removed: {}",
                            p.name(),
                            fixed.join(", ")
                        ));
                        // Its last address gone, the kernel flushed the
                        // device's routes without a notification.
                        let n = p.reconcile()?;
                        metrics::get().repairs.inc_by(n as u64);
                    }
                    return Ok(());
                }
                log(&format!(
                    "{} disappeared or was changed by someone else; recreating it",
                    p.name()
                ));
                metrics::get().repairs.inc();
                p.ensure_device()?;
                p.ensure_addr(sn)?;
                // Every lease programmed goes back at once.
                p.reconcile()?;
                rebuilt = true;
                Ok(())
            })();
            if let Err(e) = res {
                log(&format!("cannot repair {}: {e:#}", p.name()));
            }
        }
        if rebuilt {
            if let Err(e) = self.setup_node() {
                log(&format!("cannot set the node up again: {e:#}"));
            }
            // Leases that failed before get another try.
            self.program_held(Some(""));
        }
    }
}
