//! systemd's notification protocol (`sd_notify`, through the `sd-notify`
//! crate): `READY=1` once subnet.env is written, `STATUS=` when the state
//! changes, and `WATCHDOG=1` at half of `WatchdogSec` when the watchdog is
//! on. The event loop sends the pings itself, so a wedged loop stops them
//! and systemd restarts the agent. Without `NOTIFY_SOCKET` every call is a
//! no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::time::Instant;

use super::log;

pub struct Notifier {
    status: String,
    /// Half the watchdog interval, when the watchdog is on.
    pub ping_every: Option<Duration>,
    pub next_ping: Instant,
}

impl Notifier {
    pub fn new() -> Notifier {
        let ping_every =
            sd_notify::watchdog_enabled().map(|d| (d / 2).max(Duration::from_millis(10)));
        Notifier {
            status: String::new(),
            ping_every,
            next_ping: Instant::now(),
        }
    }

    fn send(&self, s: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(s) {
            log(&format!("warning: cannot notify systemd: {e}"));
        }
    }

    /// `STATUS=text`, when it differs from the last one.
    pub fn status(&mut self, text: &str) {
        if self.status != text {
            self.status = text.to_string();
            self.send(&[NotifyState::Status(text)]);
        }
    }

    pub fn ready(&mut self, text: &str) {
        self.status = text.to_string();
        self.send(&[NotifyState::Ready, NotifyState::Status(text)]);
    }

    /// `WATCHDOG=1` if it is due; the next one is half an interval later.
    pub fn ping_if_due(&mut self) {
        if let Some(every) = self.ping_every {
            if Instant::now() >= self.next_ping {
                self.send(&[NotifyState::Watchdog]);
                self.next_ping = Instant::now() + every;
            }
        }
    }

    /// When the next ping is due (far away without a watchdog).
    pub fn ping_at(&self) -> Instant {
        match self.ping_every {
            Some(_) => self.next_ping,
            None => Instant::now() + Duration::from_secs(3600),
        }
    }
}

/// Ping the watchdog from a task while the agent starts (waiting for etcd or
/// the config can take long); the event loop takes over, and the task is
/// aborted, once it runs.
pub fn startup_pings(every: Option<Duration>) -> Option<tokio::task::JoinHandle<()>> {
    let every = every?;
    Some(tokio::spawn(async move {
        loop {
            let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            tokio::time::sleep(every).await;
        }
    }))
}
