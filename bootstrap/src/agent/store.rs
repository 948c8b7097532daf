//! The agent's etcd access: one endpoint at a time, with failover.
//!
//! The agent talks to one member. When a request to it fails at the
//! transport level or does not answer within the request timeout, the
//! connection is dropped and the next request connects to the next endpoint
//! in the list (round robin), so stopping the member the agent uses costs
//! one failed request, not the agent. Errors the server *answers* with (for
//! example `requested lease not found`) keep the connection.

use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
    WatchStream,
};

use super::etcd_errors::{is_lease_not_found, is_transport, plain_error};
use super::{log, metrics};
use crate::etcd::{EtcdOpts, Kv};

/// Pause between two rounds over every endpoint when none answers.
const ROUND_PAUSE: Duration = Duration::from_secs(1);
/// HTTP/2 keepalive ping interval. A member that vanished without a reset
/// (machine dead, link cut) would otherwise leave the lease watch hanging
/// forever; a ping unanswered within the request timeout breaks it. etcd
/// answers pings closer than `--grpc-keepalive-min-time` (5 s) with
/// GOAWAY "too many pings", hence a little more than that.
const KEEPALIVE: Duration = Duration::from_secs(6);

pub struct Store {
    endpoints: Vec<String>,
    copts: ConnectOptions,
    timeout: Duration,
    /// Index of the endpoint to try next.
    next: usize,
    client: Option<Client>,
    /// Endpoint of `client`.
    pub endpoint: String,
    /// Probe key read on connect.
    probe: String,
    /// Counts connections made: a watch opened on an older one may be
    /// bound to a member the store has given up on.
    generation: u64,
}

impl Store {
    pub fn new(opts: &EtcdOpts, probe: String) -> Result<Store> {
        let endpoints = opts.endpoints();
        if endpoints.is_empty() {
            bail!("no etcd endpoint given: use --etcd http://HOST:2379[,...]");
        }
        // require_leader: a member cut off from its peers refuses requests
        // and cancels watches ("no leader") instead of serving stale data
        // (etcd clientv3's WithRequireLeader, which flanneld's watches use).
        let copts = opts
            .connect_options()?
            .with_keep_alive(KEEPALIVE, opts.timeout)
            .with_require_leader(true);
        Ok(Store {
            endpoints,
            copts,
            timeout: opts.timeout,
            next: 0,
            client: None,
            endpoint: String::new(),
            probe,
            generation: 0,
        })
    }

    /// Which connection requests go to; changes on every reconnect.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// One round over every endpoint, starting at `next`; the first that
    /// answers a read becomes the connection.
    async fn connect_round(&mut self) -> Result<()> {
        let mut errs = Vec::new();
        for _ in 0..self.endpoints.len() {
            let ep = self.endpoints[self.next % self.endpoints.len()].clone();
            self.next = (self.next + 1) % self.endpoints.len();
            let copts = self.copts.clone();
            let probe = self.probe.clone();
            let attempt = async {
                let mut c = Client::connect([ep.as_str()], Some(copts)).await?;
                let o = GetOptions::new().with_keys_only().with_limit(1);
                c.get(probe, Some(o)).await?;
                Ok::<_, etcd_client::Error>(c)
            };
            match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(c)) => {
                    if self.endpoint != ep {
                        log(&format!("talking to etcd at {ep}"));
                    }
                    self.client = Some(c);
                    self.endpoint = ep;
                    self.generation += 1;
                    // Start the next failover after this one.
                    return Ok(());
                }
                Ok(Err(e)) => errs.push(format!("{ep}: {}", plain_error(&e))),
                Err(_) => errs.push(format!("{ep}: no answer within {:?}", self.timeout)),
            }
        }
        Err(anyhow!("no etcd endpoint answers ({})", errs.join("; ")))
    }

    /// Connect within `deadline` (for one-shot commands such as `leave`).
    pub async fn connect_within(&mut self, deadline: Duration) -> Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            match self.connect_round().await {
                Ok(()) => return Ok(()),
                Err(e) if start.elapsed() + ROUND_PAUSE >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(ROUND_PAUSE).await,
            }
        }
    }

    /// Drop the connection after a transport failure; the next request
    /// reconnects, starting with the next endpoint.
    fn broken(&mut self, why: &str) {
        if self.client.take().is_some() {
            log(&format!(
                "lost etcd at {} ({why}); switching to the next endpoint",
                self.endpoint
            ));
        }
    }

    /// Run one request on the current client with the request timeout.
    async fn call<T, F, Fut>(&mut self, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        // "read /coreos.com/network/config" -> "read"
        let op = what.split(' ').next().unwrap_or(what);
        if self.client.is_none() {
            // One round over every endpoint; the caller's loop retries.
            let started = std::time::Instant::now();
            if let Err(e) = self.connect_round().await {
                metrics::get().etcd_request(op, started.elapsed(), false);
                return Err(e);
            }
        }
        let c = self.client.clone().expect("connected above");
        let started = std::time::Instant::now();
        let res = tokio::time::timeout(self.timeout, f(c)).await;
        metrics::get().etcd_request(op, started.elapsed(), matches!(res, Ok(Ok(_))));
        match res {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                let text = plain_error(&e);
                if is_transport(&e) {
                    self.broken(&text);
                }
                Err(anyhow!("{what} at {}: {text}", self.endpoint))
            }
            Err(_) => {
                self.broken("no answer");
                Err(anyhow!(
                    "{what} at {}: no answer within {:?}",
                    self.endpoint,
                    self.timeout
                ))
            }
        }
    }

    /// The value of `key`, if present.
    pub async fn get(&mut self, key: &str) -> Result<Option<Kv>> {
        let k = key.to_string();
        let r = self
            .call(&format!("read {key}"), |mut c| async move {
                c.get(k, None).await
            })
            .await?;
        Ok(r.kvs().first().map(Kv::from))
    }

    /// Every key under `prefix`, and the store revision of the read (to
    /// start a watch right after it).
    pub async fn list(&mut self, prefix: &str) -> Result<(Vec<Kv>, i64)> {
        let p = prefix.to_string();
        let r = self
            .call(&format!("list {prefix}"), |mut c| async move {
                c.get(p, Some(GetOptions::new().with_prefix())).await
            })
            .await?;
        let rev = r.header().map_or(0, |h| h.revision());
        Ok((r.kvs().iter().map(Kv::from).collect(), rev))
    }

    /// A new etcd lease of `ttl` seconds.
    pub async fn grant(&mut self, ttl: i64) -> Result<i64> {
        let r = self
            .call("grant a lease", |mut c| async move {
                c.lease_grant(ttl, None).await
            })
            .await?;
        Ok(r.id())
    }

    /// Revoke etcd lease `id` (its keys go with it). A lease that is already
    /// gone counts as revoked.
    pub async fn revoke(&mut self, id: i64) -> Result<()> {
        match self
            .call(
                "revoke a lease",
                |mut c| async move { c.lease_revoke(id).await },
            )
            .await
        {
            Err(e) if is_lease_not_found(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Txn: if `key` is absent and no key under `prefix` was created after
    /// revision `since` (the revision a free subnet was chosen at), put
    /// `value` attached to `lease`. `Ok(false)` when the key exists or a
    /// lease appeared meanwhile.
    ///
    /// The second condition makes the choice atomic across lease keys:
    /// two nodes that pick the same IPv6 subnet but different IPv4 ones
    /// write different keys (`10.2.3.0-24&fd42::-64`, `10.2.4.0-24&fd42::-64`),
    /// which the key's own version check alone lets both through.
    pub async fn create(
        &mut self,
        key: &str,
        value: &str,
        lease: i64,
        prefix: &str,
        since: i64,
    ) -> Result<bool> {
        let when = vec![
            Compare::version(key, CompareOp::Equal, 0),
            Compare::create_revision(prefix, CompareOp::Less, since + 1).with_prefix(),
        ];
        self.put_if(&format!("create {key}"), when, key, value, lease)
            .await
    }

    /// Txn: if `key` holds exactly `expect` and is attached to etcd lease
    /// `expect_lease`, put `value` attached to `lease` (moves the key to a
    /// new lease). `Ok(false)` when the key is absent, holds something
    /// else, or hangs on another lease or none (an operator made it a
    /// reservation).
    pub async fn replace_if(
        &mut self,
        key: &str,
        expect: &str,
        expect_lease: i64,
        value: &str,
        lease: i64,
    ) -> Result<bool> {
        let when = vec![
            Compare::value(key, CompareOp::Equal, expect),
            Compare::lease(key, CompareOp::Equal, expect_lease),
        ];
        self.put_if(&format!("renew {key}"), when, key, value, lease)
            .await
    }

    /// One Txn: if every `when` holds, put `value` attached to `lease`.
    async fn put_if(
        &mut self,
        what: &str,
        when: Vec<Compare>,
        key: &str,
        value: &str,
        lease: i64,
    ) -> Result<bool> {
        let txn = Txn::new().when(when).and_then([TxnOp::put(
            key,
            value,
            Some(PutOptions::new().with_lease(lease)),
        )]);
        let r = self
            .call(what, |mut c| async move { c.txn(txn).await })
            .await?;
        Ok(r.succeeded())
    }

    /// Put `value` attached to `lease`, whatever is there.
    pub async fn put(&mut self, key: &str, value: &str, lease: i64) -> Result<()> {
        let (k, v) = (key.to_string(), value.to_string());
        self.call(&format!("write {key}"), |mut c| async move {
            c.put(k, v, Some(PutOptions::new().with_lease(lease))).await
        })
        .await
        .map(|_| ())
    }

    /// Delete `key` (absent is fine).
    pub async fn delete(&mut self, key: &str) -> Result<()> {
        let k = key.to_string();
        self.call(&format!("delete {key}"), |mut c| async move {
            c.delete(k, None).await
        })
        .await
        .map(|_| ())
    }

    /// Watch every key under `prefix` from revision `from`, with etcd's
    /// own progress notifications (sent on a quiet watch, every 10 minutes
    /// by default). Events carry the new value only (no previous one: the
    /// agent keeps the values it applied).
    pub async fn watch(&mut self, prefix: &str, from: i64) -> Result<WatchStream> {
        let p = prefix.to_string();
        let o = WatchOptions::new()
            .with_prefix()
            .with_start_revision(from)
            .with_progress_notify();
        self.call(&format!("watch {prefix}"), |mut c| async move {
            c.watch(p, Some(o)).await
        })
        .await
    }

    /// The watch stream failed: treat it as a transport failure.
    pub fn watch_failed(&mut self, why: &str) {
        self.broken(why);
    }
}
