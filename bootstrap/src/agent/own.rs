//! This node's own lease: acquiring it (flannel `pkg/subnet/etcd/
//! local_manager.go` tryAcquireLease: this node's existing lease, else the
//! previous subnets if free, else random free ones, per family), renewing
//! it, and reacquiring it when it vanishes.
//!
//! A key without an etcd lease is a reservation (an operator wrote it with
//! no TTL): when it names this node it is used as it is, written back
//! without a TTL and never renewed or turned into a lease, as flanneld
//! does; other nodes' reservations are never handed out.

use std::time::Duration;

use anyhow::{bail, Result};
use ipnet::IpNet;
use tokio::time::{sleep, Instant};

use super::iface::External;
use super::log;
use super::run::{Agent, RETRY};
use super::store::is_lease_not_found;
use crate::lease::{parse_key, random_seed, Attrs, Lease, SubnetKey};

/// This node's lease.
pub struct Own {
    pub key: SubnetKey,
    /// The etcd key.
    pub path: String,
    /// etcd lease id; 0 for a reservation (no TTL).
    pub lease: i64,
    /// When to renew; `None` for a reservation.
    pub renew_at: Option<Instant>,
}

/// Does a lease name this node? By the public IPv4 address, or the IPv6
/// one when the node runs without IPv4.
pub fn names_us(a: &Attrs, ext: &External) -> bool {
    match (ext.ip, ext.ip6) {
        (Some(ip), _) => a.public_ip == ip,
        (None, Some(ip6)) => a.public_ipv6 == Some(ip6),
        (None, None) => false,
    }
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
            });
            return Ok(true);
        }
        let id = self.store.grant(self.ttl_secs()).await?;
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

    /// Acquire a lease. Retries on etcd errors forever; fails only when a
    /// range is exhausted.
    pub async fn acquire(&mut self) -> Result<()> {
        let mut pause = Duration::from_millis(200);
        loop {
            match self.try_acquire().await {
                Ok(true) => return Ok(()),
                Ok(false) => {
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

    async fn try_acquire(&mut self) -> Result<bool> {
        let (kvs, rev) = self.store.list(&self.prefix).await?;
        let mut taken: [Vec<IpNet>; 2] = [Vec::new(), Vec::new()];
        for kv in &kvs {
            let Some(k) = parse_key(&kv.key) else {
                continue;
            };
            let mine =
                Lease::parse(&kv.key, &kv.value).is_ok_and(|l| names_us(&l.attrs, &self.ext));
            if !mine {
                taken[0].extend(k.get(false));
                taken[1].extend(k.get(true));
                continue;
            }
            let reserved = kv.lease == 0;
            if self.fits(&k) {
                self.write_own(&kv.key, None, reserved).await?;
                log(&format!(
                    "reusing the {} {} that already names this node",
                    if reserved { "reservation" } else { "lease" },
                    k.show()
                ));
                return Ok(true);
            }
            if reserved {
                log(&format!(
                    "the reservation {} names this node but does not fit the current config; \
                     leaving it alone and leasing another subnet",
                    k.show()
                ));
                taken[0].extend(k.get(false));
                taken[1].extend(k.get(true));
                continue;
            }
            log(&format!(
                "deleting this node's old lease {}: it does not fit the current config",
                k.show()
            ));
            self.store.delete(&kv.key).await?;
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
        let before = self.own.take().map(|o| o.key);
        if let Some(b) = before {
            self.previous = b;
        }
        self.acquire().await?;
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

    /// Renew the lease: a new etcd lease, and our key moved onto it if it
    /// still holds our value (flannel: a new Grant and Put).
    pub async fn renew(&mut self) {
        let Some(own) = self.own.as_ref() else {
            return;
        };
        if own.lease == 0 {
            return;
        }
        let (path, old_lease) = (own.path.clone(), own.lease);
        let value = self.value();
        let res = async {
            let id = self.store.grant(self.ttl_secs()).await?;
            let moved = self.store.replace_if(&path, &value, &value, id).await?;
            Ok::<_, anyhow::Error>((id, moved))
        }
        .await;
        match res {
            Ok((id, true)) => {
                let renew_at = self.renew_at();
                if let Some(o) = self.own.as_mut() {
                    o.lease = id;
                    o.renew_at = Some(renew_at);
                }
                let _ = self.store.revoke(old_lease).await;
                log(&format!(
                    "renewed the lease on {path} for {} s",
                    self.ttl_secs()
                ));
            }
            Ok((id, false)) => {
                let _ = self.store.revoke(id).await;
                log(&format!(
                    "our lease {path} vanished before renewal; acquiring it again"
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
                    o.renew_at = Some(Instant::now() + delay);
                }
            }
        }
    }
}
