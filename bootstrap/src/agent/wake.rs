//! What wakes the agent's event loop besides its timers: notifications
//! from the kernel about the agent's devices and routes, and the jittered
//! backoff between attempts to reach etcd again.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use netkit::{LinkEvent, LinkMonitor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::log;

/// First and longest pause before trying etcd again (reopening the watch,
/// listing after a compaction): 250 ms, doubled per failure, capped at 5 s
/// (flanneld's watch caps at 5 s too). Each pause is drawn at random from
/// its upper half, and the first attempt after a break from [0, 250 ms],
/// so that agents that lost etcd together do not come back in step: an etcd
/// restarted under 5000 agents sees their reconnections spread out instead
/// of all at once.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// Repeat the "cannot …" line at most this often.
const QUIET: Duration = Duration::from_secs(30);

/// A xorshift64* generator: spreading timers needs no cryptographic
/// randomness, only different draws on different nodes.
#[derive(Debug, Clone, Copy)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // xorshift never leaves 0.
        Rng(seed | 1)
    }

    /// A uniformly random duration in `[0, d)`.
    pub fn below(&mut self, d: Duration) -> Duration {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let nanos = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(r % nanos)
    }
}

thread_local! {
    static RNG: Cell<Rng> = Cell::new(Rng::new(crate::lease::random_seed()));
}

/// A uniformly random duration in `[0, d)` from this thread's [`Rng`],
/// seeded per process ([`crate::lease::random_seed`]).
pub fn jitter(d: Duration) -> Duration {
    RNG.with(|c| {
        let mut r = c.get();
        let v = r.below(d);
        c.set(r);
        v
    })
}

/// When to try again after failures: a first attempt soon after a break
/// ([`Backoff::start`]), then [`RETRY_FIRST`] doubling up to
/// [`RETRY_MAX`], each jittered; one log line per [`QUIET`] while failing.
pub struct Backoff {
    /// "watch the leases", "list the leases"
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

    /// Something broke: the first attempt comes after a random pause of up
    /// to [`RETRY_FIRST`].
    pub fn start(&mut self) {
        self.at = Instant::now() + jitter(RETRY_FIRST);
    }

    /// Is it time for the next attempt?
    pub fn due(&self) -> bool {
        Instant::now() >= self.at
    }

    pub fn failed(&mut self, why: &str) {
        self.failures += 1;
        if self.logged.is_none_or(|t| t.elapsed() >= QUIET) {
            log(&format!(
                "cannot {} ({why}); retrying every {:.0} s at most",
                self.what,
                RETRY_MAX.as_secs_f64()
            ));
            self.logged = Some(Instant::now());
        }
        self.at = Instant::now() + self.delay / 2 + jitter(self.delay / 2);
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

/// What the kernel notifications are filtered for: the vxlan devices
/// (name and ifindex, which changes when one is recreated), the external
/// interface (host-gw and DirectRouting routes) and the cluster networks.
pub struct Watched {
    pub devs: Vec<(String, Arc<AtomicU32>)>,
    pub ext: u32,
    pub networks: Vec<IpNet>,
}

impl Watched {
    fn dev(&self, index: u32) -> bool {
        self.devs
            .iter()
            .any(|(_, i)| i.load(Ordering::Relaxed) == index)
    }

    /// Could `e` be a change to something the agent keeps?
    fn relevant(&self, e: &LinkEvent) -> bool {
        match e {
            LinkEvent::Changed(l) | LinkEvent::Deleted(l) => {
                self.devs.iter().any(|(n, _)| *n == l.name) || self.dev(l.index)
            }
            LinkEvent::AddrRemoved { index } => self.dev(*index),
            LinkEvent::Route { route, .. } => {
                let Some(oif) = route.oif else { return false };
                route.table == 254
                    && (self.dev(oif)
                        || (oif == self.ext
                            && self.networks.iter().any(|n| n.contains(&route.dst))))
            }
            LinkEvent::Neigh { entry, .. } => self.dev(entry.index),
            LinkEvent::Overflow => true,
        }
    }
}

/// The kernel's notifications about what the agent keeps, as they come.
pub struct KernelEvents {
    rx: mpsc::Receiver<Vec<LinkEvent>>,
    /// Set by the monitor thread when the channel was full and a batch was
    /// dropped: the loop then treats it as an overflow.
    lost: Arc<AtomicBool>,
}

/// Follow the devices, routes, ARP and FDB entries of `w` through a
/// netlink socket subscribed to those groups (flannel's vxlan backend
/// subscribes to links), read by a thread blocked on it, so that a device
/// or entry deleted or changed by hand is put back at once instead of at
/// the next check. `None` when the socket cannot be opened: the periodic
/// checks remain.
pub fn watch_kernel(w: Watched) -> Option<KernelEvents> {
    let mut mon = match LinkMonitor::open() {
        Ok(m) => m,
        Err(e) => {
            log(&format!(
                "warning: cannot follow kernel notifications ({e}); what is removed by hand \
                 comes back at the next --device-check-interval or --resync-interval"
            ));
            return None;
        }
    };
    let (tx, rx) = mpsc::channel(256);
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    let spawned = std::thread::Builder::new()
        .name("link-monitor".into())
        .spawn(move || loop {
            match mon.wait(4096) {
                Ok(evs) => {
                    let evs: Vec<LinkEvent> = evs.into_iter().filter(|e| w.relevant(e)).collect();
                    if evs.is_empty() {
                        continue;
                    }
                    match tx.try_send(evs) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            flag.store(true, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
                Err(e) => {
                    log(&format!(
                        "warning: stopped following kernel notifications ({e}); what is \
                         removed by hand comes back at the next --device-check-interval or \
                         --resync-interval"
                    ));
                    return;
                }
            }
        });
    match spawned {
        Ok(_) => Some(KernelEvents { rx, lost }),
        Err(e) => {
            log(&format!(
                "warning: cannot start the link monitor thread: {e}"
            ));
            None
        }
    }
}

/// The next notifications, with whatever else is already queued.
pub async fn next_kernel_events(k: &mut Option<KernelEvents>) -> Vec<LinkEvent> {
    let Some(ke) = k else {
        return std::future::pending().await;
    };
    let Some(mut evs) = ke.rx.recv().await else {
        // The monitor thread stopped (it said why): poll from now on.
        *k = None;
        return Vec::new();
    };
    while let Ok(more) = ke.rx.try_recv() {
        evs.extend(more);
    }
    if ke.lost.swap(false, Ordering::Relaxed) {
        evs.push(LinkEvent::Overflow);
    }
    evs
}

#[cfg(test)]
mod tests {
    use super::{jitter, Backoff, RETRY_FIRST, RETRY_MAX};
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_and_resets_on_success() {
        let mut b = Backoff::new("watch the leases");
        let mut delays = Vec::new();
        for _ in 0..8 {
            delays.push(b.delay);
            let before = Instant::now();
            b.failed("connection refused");
            let wait = b.at - before;
            // From the upper half of the current delay.
            let d = *delays.last().unwrap();
            assert!(
                wait >= d / 2 && wait <= d + Duration::from_millis(5),
                "{wait:?} {d:?}"
            );
        }
        let ms = Duration::from_millis;
        assert_eq!(
            delays,
            [
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                RETRY_MAX,
                RETRY_MAX,
                RETRY_MAX
            ]
        );
        b.succeeded();
        assert_eq!((b.delay, b.failures), (RETRY_FIRST, 0));
        let now = Instant::now();
        b.start();
        assert!(b.at >= now && b.at <= now + RETRY_FIRST + Duration::from_millis(5));
    }

    #[test]
    fn jitter_spreads_within_its_range() {
        let d = Duration::from_secs(10);
        let v: Vec<Duration> = (0..1000).map(|_| jitter(d)).collect();
        assert!(v.iter().all(|x| *x < d));
        // Spread over the range, not bunched at one end.
        assert!(v.iter().any(|x| *x < d / 10));
        assert!(v.iter().any(|x| *x > d * 9 / 10));
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}
