//! What wakes the agent's event loop besides its timers: lease watch
//! messages, notifications about flannel.<VNI> from the kernel, and the
//! backoff between lease re-reads while etcd does not answer.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::WatchStream;
use netkit::LinkMonitor;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::log;

/// First and longest pause before reading the leases again after a failed
/// read while the watch is broken: 100 ms, doubled per failure, capped (as
/// flanneld's watch, which caps at 5 s). The cap bounds how long a healed
/// etcd waits for the agent; a failed attempt against a stopped member is
/// one refused connection per endpoint.
pub const RETRY_FIRST: Duration = Duration::from_millis(100);
pub const RETRY_MAX: Duration = Duration::from_secs(1);
/// Repeat the "cannot read the leases" line at most this often.
const QUIET: Duration = Duration::from_secs(30);

/// When to try again after failures (reading the leases, opening the
/// watch): [`RETRY_FIRST`], doubling up to [`RETRY_MAX`]; one log line per
/// [`QUIET`] while failing.
pub struct Backoff {
    /// "read the leases", "watch the leases"
    what: &'static str,
    pub at: Instant,
    delay: Duration,
    failures: u32,
    logged: Option<Instant>,
}

impl Backoff {
    pub fn new(what: &'static str) -> Backoff {
        Backoff {
            what,
            at: Instant::now(),
            delay: RETRY_FIRST,
            failures: 0,
            logged: None,
        }
    }

    /// Is it time for the next attempt?
    pub fn due(&self) -> bool {
        Instant::now() >= self.at
    }

    pub fn failed(&mut self, why: &str) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= QUIET) {
            log(&format!(
                "cannot {} ({why}); retrying every {:.1} s at most",
                self.what,
                RETRY_MAX.as_secs_f64()
            ));
            self.logged = Some(Instant::now());
        }
        self.at = Instant::now() + self.delay;
        self.delay = (self.delay * 2).min(RETRY_MAX);
    }

    pub fn succeeded(&mut self) {
        if self.failures > 0 {
            log(&format!(
                "could {} again after {} failed attempt(s)",
                self.what, self.failures
            ));
        }
        *self = Backoff::new(self.what);
    }
}

pub async fn next_message(
    stream: &mut Option<WatchStream>,
) -> Result<Option<etcd_client::WatchResponse>, etcd_client::Error> {
    match stream {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}

/// Notifications about the devices `devs` (flannel.<VNI>, flannel-v6.<VNI>;
/// each ifindex changes when it is recreated): the link deleted or changed, an
/// address, route, ARP or FDB entry on it removed. They come from a thread
/// blocked on a netlink socket subscribed to those groups (flannel's vxlan
/// backend subscribes to links). Bursts are coalesced into one wake-up.
/// `None` when the socket cannot be opened: the periodic check remains.
pub fn watch_devices(devs: Vec<(String, Arc<AtomicU32>)>) -> Option<mpsc::Receiver<()>> {
    if devs.is_empty() {
        return None;
    }
    let name = devs
        .iter()
        .map(|d| d.0.clone())
        .collect::<Vec<_>>()
        .join(" and ");
    let mut mon = match LinkMonitor::open() {
        Ok(m) => m,
        Err(e) => {
            log(&format!(
                "warning: cannot follow link changes ({e}); checking {name} every \
                 --device-check-interval instead"
            ));
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(1);
    let spawned = std::thread::Builder::new()
        .name("link-monitor".into())
        .spawn(move || loop {
            match mon.wait() {
                Ok(evs)
                    if evs.iter().any(|e| {
                        devs.iter()
                            .any(|(n, i)| e.concerns(n, i.load(Ordering::Relaxed)))
                    }) =>
                {
                    if let Err(mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    log(&format!(
                        "warning: stopped following link changes ({e}); checking {name} \
                         every --device-check-interval instead"
                    ));
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some(rx),
        Err(e) => {
            log(&format!(
                "warning: cannot start the link monitor thread: {e}"
            ));
            None
        }
    }
}

pub async fn next_device_event(rx: &mut Option<mpsc::Receiver<()>>) {
    match rx {
        Some(r) => {
            if r.recv().await.is_none() {
                // The monitor thread stopped (it said why): poll from now on.
                *rx = None;
            }
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, RETRY_FIRST, RETRY_MAX};
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets_on_success() {
        let mut b = Backoff::new("read the leases");
        let mut delays = Vec::new();
        for _ in 0..6 {
            delays.push(b.delay);
            b.failed("connection refused");
        }
        let ms = Duration::from_millis;
        assert_eq!(
            delays,
            [ms(100), ms(200), ms(400), ms(800), RETRY_MAX, RETRY_MAX]
        );
        assert_eq!(b.failures, 6);
        b.succeeded();
        assert_eq!((b.delay, b.failures), (RETRY_FIRST, 0));
    }
}
