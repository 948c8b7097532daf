//! etcd v3 access for the bootstrapper: connect with TLS and auth, bounded
//! timeouts, retries across endpoints, and the few operations `init` and
//! `status` need. A small single-threaded tokio runtime lives inside
//! [`Etcd`]; callers stay synchronous.
//!
//! Connecting probes each endpoint in turn with a real read (etcd-client's
//! channel is lazy), retrying every endpoint until the overall deadline, so
//! an unreachable cluster yields an error naming every endpoint within
//! `--etcd-timeout`, never a hang. Credentials are fatal at once (no retry)
//! and passwords never appear in messages.

pub mod args;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, TlsOptions, Txn,
    TxnOp, TxnOpResponse,
};
use tokio::runtime::Runtime;

/// One attempt at one endpoint never takes longer than this.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// How to reach etcd (the `--etcd`, TLS and auth options).
#[derive(Clone, Default)]
pub struct EtcdOpts {
    pub endpoints: Vec<String>,
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    /// Never printed.
    pub password: Option<String>,
    /// Overall bound on connecting (all endpoints, all retries) and on each
    /// request.
    pub timeout: Duration,
}

impl std::fmt::Debug for EtcdOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("EtcdOpts")
            .field("endpoints", &self.endpoints)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A key's value and metadata.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    /// etcd lease id, 0 when the key has none.
    pub lease: i64,
}

impl From<&etcd_client::KeyValue> for Kv {
    fn from(kv: &etcd_client::KeyValue) -> Kv {
        Kv {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }
}

/// A connected client.
pub struct Etcd {
    rt: Runtime,
    client: Client,
    endpoint: String,
    timeout: Duration,
}

/// `host:port` becomes `http://host:port` (`https://` when TLS is set up).
fn normalize(ep: &str, tls: bool) -> String {
    if ep.contains("://") {
        ep.to_string()
    } else if tls {
        format!("https://{ep}")
    } else {
        format!("http://{ep}")
    }
}

/// The error with its causes: tonic's "transport error" alone says nothing.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg.push_str(": ");
            msg.push_str(&s_msg);
        }
        src = s.source();
    }
    msg
}

/// Errors that retrying cannot fix: credentials (wrong, missing, or auth
/// not enabled on the server).
fn is_auth_error(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            matches!(
                s.code(),
                tonic::Code::Unauthenticated
                    | tonic::Code::InvalidArgument
                    | tonic::Code::FailedPrecondition
            ) || s.message().contains("auth")
        }
        _ => false,
    }
}

fn is_permission_denied(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::PermissionDenied)
}

/// etcd's own message for gRPC errors, the cause chain otherwise.
pub(crate) fn error_text(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => match std::error::Error::source(s) {
            Some(src) => format!("{}: {}", s.message(), describe(src)),
            None => s.message().to_string(),
        },
        etcd_client::Error::TransportError(t) => describe(t),
        e => describe(e),
    }
}

fn read_file(what: &str, path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {what} {}", path.display()))
}

/// Without `--cacert`, etcd's certificate is checked against the roots the
/// machine trusts, wherever it keeps them: `$SSL_CERT_FILE` /
/// `$SSL_CERT_DIR` when set, else the distribution's store as
/// rustls-native-certs finds it (Debian's ca-certificates.crt, Fedora's
/// tls-ca-bundle.pem, Alpine's cert.pem, ...). tonic loads them again when
/// connecting; this look first turns "none at all" into a clear error
/// instead of a failure per connection attempt.
fn require_system_roots() -> Result<()> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        bail!(
            "an https:// etcd endpoint without --cacert needs the system's trusted root \
             certificates, and none were found (SSL_CERT_FILE, SSL_CERT_DIR, the \
             distribution's store{}{}): give --cacert FILE",
            if why.is_empty() { "" } else { ": " },
            why.join("; ")
        );
    }
    Ok(())
}

impl EtcdOpts {
    fn uses_tls(&self) -> bool {
        self.cacert.is_some() || self.cert.is_some()
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| normalize(e.trim(), self.uses_tls()))
            .collect()
    }

    pub(crate) fn connect_options(&self) -> Result<ConnectOptions> {
        let per = self.timeout.min(ATTEMPT_TIMEOUT);
        let mut o = ConnectOptions::new()
            .with_connect_timeout(per)
            .with_timeout(self.timeout);
        match (&self.user, &self.password) {
            (Some(u), Some(p)) => o = o.with_user(u.clone(), p.clone()),
            (Some(u), None) => bail!(
                "etcd user {u:?} needs a password: give --password-file FILE (or \
                 NETBOOT_ETCD_PASSWORD in the environment)"
            ),
            (None, Some(_)) => bail!("a password was given without --user"),
            (None, None) => {}
        }
        let https = self.endpoints().iter().any(|e| e.starts_with("https://"));
        if https {
            let mut tls = match &self.cacert {
                Some(p) => TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(read_file("--cacert", p)?)),
                None => {
                    require_system_roots()?;
                    TlsOptions::new().with_native_roots()
                }
            };
            match (&self.cert, &self.key) {
                (Some(c), Some(k)) => {
                    let id = Identity::from_pem(read_file("--cert", c)?, read_file("--key", k)?);
                    tls = tls.identity(id);
                }
                (None, None) => {}
                _ => bail!("--cert and --key must be given together"),
            }
            o = o.with_tls(tls);
        } else if self.uses_tls() {
            bail!("--cacert/--cert are set but no endpoint is https://");
        }
        Ok(o)
    }
}

impl Etcd {
    /// Connect to the first endpoint that answers a read of `probe_key`,
    /// trying every endpoint in turn until `opts.timeout` has passed.
    pub fn connect(opts: &EtcdOpts, probe_key: &str) -> Result<Etcd> {
        let endpoints = opts.endpoints();
        if endpoints.is_empty() {
            bail!("no etcd endpoint given: use --etcd http://HOST:2379[,...]");
        }
        let copts = opts.connect_options()?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("start the tokio runtime for the etcd client")?;
        let start = Instant::now();
        let deadline = start + opts.timeout;
        let mut last: Vec<(String, String)> = Vec::new();
        let mut attempts = 0;
        'retry: loop {
            attempts += 1;
            for ep in &endpoints {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break 'retry;
                }
                let per = left.min(ATTEMPT_TIMEOUT);
                let res = rt.block_on(async {
                    tokio::time::timeout(per, async {
                        let mut c = Client::connect([ep.as_str()], Some(copts.clone())).await?;
                        let probe = GetOptions::new().with_keys_only().with_limit(1);
                        match c.get(probe_key, Some(probe)).await {
                            Ok(_) => Ok(c),
                            // Reachable and authenticated; permissions are
                            // reported by the operation that needs them.
                            Err(e) if is_permission_denied(&e) => Ok(c),
                            Err(e) => Err(e),
                        }
                    })
                    .await
                });
                let msg = match res {
                    Ok(Ok(client)) => {
                        return Ok(Etcd {
                            rt,
                            client,
                            endpoint: ep.clone(),
                            timeout: opts.timeout,
                        })
                    }
                    Ok(Err(e)) if is_auth_error(&e) => {
                        let who = opts.user.as_deref().map_or_else(
                            || {
                                "no user given (the server has authentication enabled? use --user)"
                                    .to_string()
                            },
                            |u| format!("user {u:?}"),
                        );
                        bail!(
                            "etcd at {ep} rejected the credentials ({who}): {}",
                            error_text(&e)
                        );
                    }
                    Ok(Err(e)) => error_text(&e),
                    Err(_) => format!("no answer within {} ms", per.as_millis()),
                };
                last.retain(|(e, _)| e != ep);
                last.push((ep.clone(), msg));
            }
            if Instant::now() + RETRY_DELAY >= deadline {
                break;
            }
            std::thread::sleep(RETRY_DELAY);
        }
        let detail: Vec<String> = last.iter().map(|(e, m)| format!("  {e}: {m}")).collect();
        Err(anyhow!(
            "cannot reach etcd at {} ({attempts} attempt(s) per endpoint in {:.1} s, \
             --etcd-timeout {} s); last error per endpoint:\n{}",
            endpoints.join(", "),
            start.elapsed().as_secs_f64(),
            opts.timeout.as_secs(),
            detail.join("\n")
        ))
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn run<T>(
        &mut self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        let t = self.timeout;
        match self.rt.block_on(async { tokio::time::timeout(t, f).await }) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(anyhow!("{what} at {}: {}", self.endpoint, error_text(&e))),
            Err(_) => Err(anyhow!(
                "{what} at {}: no answer within {} s",
                self.endpoint,
                t.as_secs()
            )),
        }
    }

    /// The key, if present.
    pub fn get(&mut self, key: &str) -> Result<Option<Kv>> {
        let mut c = self.client.kv_client();
        let r = self.run(
            &format!("read {key}"),
            async move { c.get(key, None).await },
        )?;
        Ok(r.kvs().first().map(Kv::from))
    }

    /// Every key under `prefix`, sorted by key.
    pub fn get_prefix(&mut self, prefix: &str) -> Result<Vec<Kv>> {
        let mut c = self.client.kv_client();
        let r = self.run(&format!("list {prefix}"), async move {
            c.get(prefix, Some(GetOptions::new().with_prefix())).await
        })?;
        Ok(r.kvs().iter().map(Kv::from).collect())
    }

    /// One transaction: if `key`'s version is 0 (absent) put `value`,
    /// otherwise read it. `Ok(None)` = created; `Ok(Some(kv))` = it exists.
    pub fn create(&mut self, key: &str, value: &str) -> Result<Option<Kv>> {
        let txn = Txn::new()
            .when([Compare::version(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        self.txn_or_current(key, txn)
    }

    /// One transaction: overwrite `key` only if it is still at
    /// `mod_revision` (nobody wrote in between). `Ok(None)` = replaced;
    /// `Ok(Some(kv))` = it changed meanwhile (kv is the current value).
    pub fn replace(&mut self, key: &str, value: &str, mod_revision: i64) -> Result<Option<Kv>> {
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, mod_revision)])
            .and_then([TxnOp::put(key, value, None)])
            .or_else([TxnOp::get(key, None)]);
        self.txn_or_current(key, txn)
    }

    fn txn_or_current(&mut self, key: &str, txn: Txn) -> Result<Option<Kv>> {
        let mut c = self.client.kv_client();
        let r = self.run(&format!("write {key}"), async move { c.txn(txn).await })?;
        if r.succeeded() {
            return Ok(None);
        }
        let current = r.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().map(Kv::from),
            _ => None,
        });
        // Deleted between compare and read cannot happen inside one Txn; an
        // empty read means it was deleted after our earlier read.
        Ok(Some(current.unwrap_or(Kv {
            key: key.to_string(),
            value: Vec::new(),
            mod_revision: 0,
            lease: 0,
        })))
    }

    /// Seconds left on etcd lease `id`; `None` when it has expired or does
    /// not exist.
    pub fn lease_ttl(&mut self, id: i64) -> Result<Option<i64>> {
        let mut c = self.client.lease_client();
        let r = self.run(&format!("read lease {id:x}"), async move {
            c.time_to_live(id, None).await
        })?;
        Ok((r.ttl() >= 0).then_some(r.ttl()))
    }
}
