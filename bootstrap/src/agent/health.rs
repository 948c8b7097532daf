//! The agent's HTTP endpoints on `--healthz-ip:--healthz-port` (off when
//! the port is 0): `/healthz` answers 200 "ok" while the process runs (as
//! flanneld's), `/readyz` 200 only while the node can run pods (lease held,
//! lease watch live, subnet.env written) and 503 with the reason otherwise,
//! `/metrics` the Prometheus metrics of [`super::metrics`].
//!
//! The server is `tiny_http` on a thread of its own: three GET routes need
//! no async stack, and a thread keeps answering `/healthz` even while the
//! agent's single-threaded event loop is busy or wedged (the loop's
//! liveness is what the systemd watchdog watches, see [`super::notify`]).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use tiny_http::{Header, Response, Server};

use super::log;
use super::metrics;

/// What `/readyz` and the lease TTL gauge read; the event loop writes it.
#[derive(Debug, Default, Clone)]
pub struct Readiness {
    pub config: bool,
    pub lease: bool,
    pub watch: bool,
    pub env_written: bool,
    /// When this node's etcd lease expires (none for a reservation).
    pub lease_expires: Option<Instant>,
}

impl Readiness {
    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), String> {
        let why = if !self.config {
            "no usable network config in etcd yet"
        } else if !self.lease {
            "no subnet lease held"
        } else if !self.env_written {
            "subnet.env not written yet"
        } else if !self.watch {
            "the lease watch is not running (etcd unreachable?)"
        } else {
            return Ok(());
        };
        Err(why.to_string())
    }
}

pub type Shared = Arc<Mutex<Readiness>>;

/// Serve on `ip:port` from a thread; `None` when the port is 0.
pub fn serve(ip: &str, port: u16, state: Shared) -> Result<Option<()>> {
    if port == 0 {
        return Ok(None);
    }
    let addr = if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    let server = Server::http(&addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("listen on {addr} for /healthz (--healthz-ip/--healthz-port)"))?;
    log(&format!(
        "serving /healthz, /readyz and /metrics on http://{addr}"
    ));
    std::thread::Builder::new()
        .name("healthz".into())
        .spawn(move || {
            for req in server.incoming_requests() {
                let (code, ctype, body) = answer(req.url(), &state);
                let h = Header::from_bytes("Content-Type", ctype).expect("valid header");
                let _ = req.respond(
                    Response::from_string(body)
                        .with_status_code(code)
                        .with_header(h),
                );
            }
        })
        .context("start the healthz thread")?;
    Ok(Some(()))
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn answer(url: &str, state: &Shared) -> (u16, &'static str, String) {
    let path = url.split('?').next().unwrap_or("");
    let r = state.lock().map(|s| s.clone()).unwrap_or_default();
    match path {
        "/healthz" => (200, PLAIN, "ok".into()),
        "/readyz" => match r.check() {
            Ok(()) => (200, PLAIN, "ok".into()),
            Err(why) => (503, PLAIN, format!("not ready: {why}")),
        },
        "/metrics" => {
            let m = metrics::get();
            let ttl = r.lease_expires.map_or(0.0, |t| {
                t.saturating_duration_since(Instant::now()).as_secs_f64()
            });
            m.lease_ttl_seconds.set(ttl);
            (
                200,
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                m.render(),
            )
        }
        _ => (
            404,
            PLAIN,
            "not found: try /healthz, /readyz or /metrics".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::Readiness;

    #[test]
    fn readiness_names_the_first_missing_piece() {
        let mut r = Readiness::default();
        assert!(r.check().unwrap_err().contains("network config"));
        r.config = true;
        r.lease = true;
        assert!(r.check().unwrap_err().contains("subnet.env"));
        r.env_written = true;
        assert!(r.check().unwrap_err().contains("watch"));
        r.watch = true;
        assert_eq!(r.check(), Ok(()));
    }
}
