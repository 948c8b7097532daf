//! Renewing this node's lease before it expires (flannel: a new Grant and
//! Put), and following what an operator or another client did to our key
//! meanwhile: a TTL removed (a reservation now), another etcd lease
//! attached, the key gone or changed (acquired again, [`super::own`]).

use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::log;
use super::state::Agent;
use crate::etcd::Kv;

impl Agent<'_> {
    /// Renew the lease: a new etcd lease, and our key moved onto it if it
    /// still holds our value on our lease (flannel: a new Grant and Put).
    pub async fn renew(&mut self) {
        let Some(own) = self.own.as_ref() else {
            return;
        };
        if own.lease == 0 {
            return;
        }
        let (path, old_lease) = (own.path.clone(), own.lease);
        match self.move_to_new_lease(&path, old_lease).await {
            Ok(true) => {
                let _ = self.store.revoke(old_lease).await;
                log(&format!(
                    "renewed the lease on {path} for {} s",
                    self.ttl_secs()
                ));
            }
            Ok(false) => self.renewal_refused(&path).await,
            Err(e) => self.renew_later(&format!("cannot renew the lease yet ({e:#})")),
        }
    }

    fn renew_later(&mut self, why: &str) {
        let delay =
            (self.a.renew_margin / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        log(&format!("{why}; retrying in {} s", delay.as_secs()));
        if let Some(o) = self.own.as_mut() {
            o.renew_at = Some(Instant::now() + delay);
        }
    }

    /// Grant a fresh etcd lease of our TTL and move our key onto it, if the
    /// key still holds our value on etcd lease `from`. `Ok(false)`: it
    /// does not (the fresh lease is revoked again).
    async fn move_to_new_lease(&mut self, path: &str, from: i64) -> Result<bool> {
        let value = self.value();
        let granted = Instant::now();
        let id = self.store.grant(self.ttl_secs()).await?;
        let moved = match self.store.replace_if(path, &value, from, &value, id).await {
            Ok(m) => m,
            Err(e) => {
                let _ = self.store.revoke(id).await;
                return Err(e);
            }
        };
        if !moved {
            let _ = self.store.revoke(id).await;
            return Ok(false);
        }
        let renew_at = self.renew_at();
        let expires = granted + self.a.lease_ttl.max(Duration::from_secs(1));
        if let Some(o) = self.own.as_mut() {
            o.lease = id;
            o.renew_at = Some(renew_at);
            o.expires = Some(expires);
        }
        Ok(true)
    }

    /// The renewal found our key not as we left it: follow what etcd holds
    /// now.
    async fn renewal_refused(&mut self, path: &str) {
        match self.store.get(path).await {
            Ok(Some(cur)) if cur.value == self.value().as_bytes() => {
                self.follow_own_lease(&cur).await
            }
            Ok(_) => {
                log(&format!(
                    "our lease {path} vanished or changed before renewal; acquiring it again"
                ));
                if let Err(e) = self.reacquire().await {
                    log(&format!("cannot acquire a lease: {e:#}"));
                }
            }
            Err(e) => self.renew_later(&format!("cannot read {path} ({e:#})")),
        }
    }

    /// Our key holds our value but hangs on another etcd lease than ours
    /// (`cur` is its current state). No lease: an operator removed its TTL,
    /// flannel's documented way of turning a lease into a reservation; it
    /// is never renewed from now on (renewing would turn it back into a
    /// lease). Someone else's lease: the key moves onto a lease of our own,
    /// and theirs is left alone (it may hold other keys).
    pub async fn follow_own_lease(&mut self, cur: &Kv) {
        let Some(old) = self.own.as_ref().map(|o| o.lease) else {
            return;
        };
        if cur.lease == old {
            return;
        }
        if cur.lease == 0 {
            if let Some(o) = self.own.as_mut() {
                o.lease = 0;
                o.renew_at = None;
                o.expires = None;
            }
            log(&format!(
                "our lease {} became a reservation (its TTL was removed in etcd): keeping it \
                 as it is, no longer renewing it",
                cur.key
            ));
            let _ = self.store.revoke(old).await;
            return;
        }
        log(&format!(
            "our {} {} was attached to etcd lease {:x} by someone else: moving it onto a \
             lease of our own",
            if old == 0 { "reservation" } else { "lease" },
            cur.key,
            cur.lease
        ));
        match self.move_to_new_lease(&cur.key, cur.lease).await {
            Ok(true) if old != 0 => {
                let _ = self.store.revoke(old).await;
            }
            Ok(_) => {}
            Err(e) => log(&format!(
                "cannot move {} onto a lease of our own yet ({e:#}); the next renewal tries \
                 again",
                cur.key
            )),
        }
    }
}
