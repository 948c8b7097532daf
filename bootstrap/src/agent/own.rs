//! This node's own lease: acquiring it (flannel `pkg/subnet/etcd/
//! local_manager.go` tryAcquireLease: this node's existing lease, else the
//! previous subnets if free, else random free ones, per family), when to
//! renew it (renewing is [`super::renew`]), and reacquiring it when it
//! vanishes.
//!
//! A key without an etcd lease is a reservation (an operator wrote it with
//! no TTL): when it names this node it is used as it is, written back
//! without a TTL and never renewed or turned into a lease, as flanneld
//! does; other nodes' reservations are never handed out. A reservation
//! wins over a lease the node still holds, which is then deleted. A running lease
//! an operator turns into a reservation (its TTL removed, as flannel's
//! docs show) is followed: renewal stops, and a renewal racing with the
//! change cannot undo it (it only moves a key still on our etcd lease).

use std::time::Duration;

use anyhow::{bail, Result};
use ipnet::IpNet;
use tokio::time::{sleep, Instant};

use super::etcd_errors::is_lease_not_found;
use super::iface::names_us;
use super::log;
use super::relist::Listed;
use super::state::{Agent, Own, RETRY};
use super::wake::jitter;
use crate::etcd::Kv;
use crate::lease::{parse_key, random_seed, Attrs, Lease, SubnetKey};

/// How long after a grant to renew: `margin` before expiry (half the TTL
/// if the margin is not shorter than the TTL), less a random part of up to
/// half the margin (`draw(d)`: uniform in `[0, d)`). Nodes that started
/// together (a cluster's first boot, a rack powered on) would otherwise
/// all renew in the same second a TTL later, and again every TTL after;
/// each renewal is drawn afresh, so the spread never closes up. A margin
/// longer than half the TTL (`--lease-ttl=20s --renew-margin=14s`) spreads
/// over half of what is left before it instead, so that a renewal never
/// comes at once after the last.
pub fn renew_after(
    ttl: Duration,
    margin: Duration,
    draw: impl FnOnce(Duration) -> Duration,
) -> Duration {
    let margin = if margin < ttl { margin } else { ttl / 2 };
    let before = ttl - margin;
    let spread = margin.min(before) / 2;
    before - draw(spread).min(spread)
}

impl Agent<'_> {
    pub fn own_key(&self) -> SubnetKey {
        self.own.as_ref().map(|o| o.key).expect("lease acquired")
    }

    /// Our lease value, byte for byte as flanneld writes it.
    pub fn value(&self) -> String {
        let data = |v6: bool| {
            self.planes
                .iter()
                .find(|p| p.v6() == v6)
                .and_then(|p| p.lease_data())
        };
        Attrs {
            public_ip: self.ext.ip4(),
            public_ipv6: self.ext.ip6,
            backend: self.net.backend.clone(),
            data: data(false),
            data6: data(true),
        }
        .to_json()
    }

    pub(super) fn ttl_secs(&self) -> i64 {
        self.a.lease_ttl.as_secs().max(1) as i64
    }

    /// When to renew a lease granted now ([`renew_after`], with this
    /// process's random draws).
    pub(super) fn renew_at(&self) -> Instant {
        Instant::now() + renew_after(self.a.lease_ttl, self.a.renew_margin, jitter)
    }

    /// Write our value under `path`: create-if-absent with a new lease
    /// (`create`: the revision of the list the subnet was chosen from; no
    /// lease may have been created since), overwrite with a new lease, or
    /// (`reserved`) overwrite with no lease at all. `Ok(false)`: the key
    /// exists or a lease appeared since (create only).
    async fn write_own(&mut self, path: &str, create: Option<i64>, reserved: bool) -> Result<bool> {
        let value = self.value();
        let key = parse_key(path).expect("our own key");
        if reserved {
            self.store.put(path, &value, 0).await?;
            self.own = Some(Own {
                key,
                path: path.to_string(),
                lease: 0,
                renew_at: None,
                expires: None,
            });
            return Ok(true);
        }
        let granted = Instant::now();
        let id = self.store.grant(self.ttl_secs()).await?;
        let expires = Some(granted + self.a.lease_ttl.max(Duration::from_secs(1)));
        let res = if let Some(since) = create {
            let prefix = self.prefix.clone();
            self.store.create(path, &value, id, &prefix, since).await
        } else {
            self.store.put(path, &value, id).await.map(|()| true)
        };
        match res {
            Ok(true) => {
                self.own = Some(Own {
                    key,
                    path: path.to_string(),
                    lease: id,
                    renew_at: Some(self.renew_at()),
                    expires,
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

    /// Acquire a lease, choosing from `first` (the list at start) if
    /// given, else from a list of its own. Retries on etcd errors forever
    /// (listing again); fails only when a range is exhausted. Returns the
    /// list the lease was chosen from, without the keys of ours it deleted.
    pub async fn acquire(&mut self, first: Option<Listed>) -> Result<Listed> {
        let mut first = first;
        let mut pause = Duration::from_millis(200);
        loop {
            let res = match first.take() {
                Some(l) => Ok(l),
                None => Listed::read(&mut self.store, &self.prefix).await,
            };
            let res = match res {
                Ok(mut l) => self.try_acquire(&mut l).await.map(|ok| ok.then_some(l)),
                Err(e) => Err(e),
            };
            match res {
                Ok(Some(l)) => return Ok(l),
                Ok(None) => {
                    log(
                        "another node leased a subnet while this one chose (it may be the \
                         same one): choosing again",
                    );
                    continue;
                }
                Err(e) if e.to_string().starts_with("no free subnet") => return Err(e),
                Err(e) if is_lease_not_found(&e) => log(&format!(
                    "etcd did not know the lease it had just granted ({e:#}; a member that \
                     had not applied the grant yet, etcd#13675): granting a new one"
                )),
                Err(e) => log(&format!("cannot acquire a lease yet: {e:#}")),
            }
            sleep(pause).await;
            pause = (pause * 2).min(RETRY);
        }
    }

    /// Does a key fit the config: each enabled family's subnet in its
    /// range, no subnet of a disabled family (flannel's
    /// isSubnetConfigCompat / isIPv6SubnetConfigCompat)?
    fn fits(&self, k: &SubnetKey) -> bool {
        [false, true]
            .into_iter()
            .all(|v6| match (self.net.range(v6), k.get(v6)) {
                (Some(r), Some(sn)) => r.fits(sn),
                (None, None) => true,
                _ => false,
            })
    }

    /// Acquire a lease chosen from the leases in `l`; keys of ours deleted
    /// on the way leave `l` too. `Ok(false)`: another node was faster.
    async fn try_acquire(&mut self, l: &mut Listed) -> Result<bool> {
        let mut deleted = Vec::new();
        let res = self.choose_and_write(&l.kvs, l.rev, &mut deleted).await;
        l.kvs.retain(|kv| !deleted.contains(&kv.key));
        res
    }

    async fn choose_and_write(
        &mut self,
        kvs: &[Kv],
        rev: i64,
        deleted: &mut Vec<String>,
    ) -> Result<bool> {
        let mut taken: [Vec<IpNet>; 2] = [Vec::new(), Vec::new()];
        let mut mine = Vec::new();
        for kv in kvs {
            let Some(k) = parse_key(&kv.key) else {
                continue;
            };
            if Lease::parse(&kv.key, &kv.value).is_ok_and(|l| names_us(&l.attrs, &self.ext)) {
                mine.push((kv, k));
            } else {
                taken[0].extend(k.get(false));
                taken[1].extend(k.get(true));
            }
        }
        // A reservation for this node wins over a lease it holds: an
        // operator reserved that subnet on purpose (flanneld takes whichever
        // key sorts first).
        let pick = mine
            .iter()
            .position(|(kv, k)| kv.lease == 0 && self.fits(k))
            .or_else(|| mine.iter().position(|(_, k)| self.fits(k)));
        let picked = pick.map(|i| mine[i].1.show());
        for (i, (kv, k)) in mine.iter().enumerate() {
            if Some(i) == pick {
                continue;
            }
            let why = match &picked {
                Some(p) if self.fits(k) => format!("this node uses {p}"),
                _ => "it does not fit the current config".to_string(),
            };
            if kv.lease == 0 {
                log(&format!(
                    "the reservation {} names this node but {why}; leaving it alone",
                    k.show()
                ));
                taken[0].extend(k.get(false));
                taken[1].extend(k.get(true));
                continue;
            }
            log(&format!(
                "deleting this node's other lease {}: {why}",
                k.show()
            ));
            self.store.delete(&kv.key).await?;
            deleted.push(kv.key.clone());
        }
        if let Some(i) = pick {
            let (kv, k) = mine[i];
            let reserved = kv.lease == 0;
            self.write_own(&kv.key, None, reserved).await?;
            log(&format!(
                "reusing the {} {} that already names this node",
                if reserved { "reservation" } else { "lease" },
                k.show()
            ));
            return Ok(true);
        }
        let free = |sn: &IpNet, t: &[IpNet]| !t.iter().any(|x| x.contains(sn) || sn.contains(x));
        let prev = self.previous;
        let prev_ok = self.fits(&prev)
            && [false, true].into_iter().all(|v6| {
                prev.get(v6)
                    .is_none_or(|sn| free(&sn, &taken[usize::from(v6)]))
            });
        let key = if prev_ok {
            log(&format!(
                "reusing this node's previous subnet {}",
                prev.show()
            ));
            prev
        } else {
            let mut k = SubnetKey { v4: None, v6: None };
            for v6 in [false, true] {
                let Some(r) = self.net.range(v6) else {
                    continue;
                };
                let Some(sn) = r.pick(&taken[usize::from(v6)], random_seed()) else {
                    bail!(
                        "no free subnet: all {} subnets from {} to {} (/{}) are leased; remove \
                         leases of dead nodes (`netboot status` lists them) or widen \
                         {}SubnetMin/{}SubnetMax",
                        r.size(),
                        r.min,
                        r.max,
                        r.len,
                        if v6 { "IPv6" } else { "" },
                        if v6 { "IPv6" } else { "" },
                    );
                };
                match sn {
                    IpNet::V4(n) => k.v4 = Some(n),
                    IpNet::V6(n) => k.v6 = Some(n),
                }
            }
            k
        };
        let path = format!("{}{}", self.prefix, key.name());
        if self.write_own(&path, Some(rev), false).await? {
            log(&format!(
                "leased subnet {} (etcd lease TTL {} s)",
                key.show(),
                self.ttl_secs()
            ));
            return Ok(true);
        }
        Ok(false)
    }

    /// Acquire again after our key vanished or was taken; apply a changed
    /// subnet to the node.
    pub async fn reacquire(&mut self) -> Result<()> {
        self.obs
            .notify
            .status("lease lost; acquiring a lease again");
        let before = self.own.take().map(|o| o.key);
        if let Some(b) = before {
            self.previous = b;
        }
        self.acquire(None).await?;
        let now = self.own_key();
        if before != Some(now) {
            log(&format!(
                "our subnet changed from {} to {}: updating the node and subnet.env",
                before.map_or("none".into(), |b| b.show()),
                now.show()
            ));
            self.setup_node()?;
            self.write_env()?;
        }
        Ok(())
    }
}
