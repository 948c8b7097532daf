//! What the agent tells the outside about itself: systemd notifications
//! ([`super::notify`]), the readiness the health server reads
//! ([`super::health`]) and the metrics ([`super::metrics`]), all updated
//! from the agent's state in one place, [`super::publish`].

use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::health::{self, Readiness, Shared};
use super::notify::Notifier;
use super::AgentArgs;

pub struct Observer {
    pub notify: Notifier,
    pub ready: Shared,
    /// The [`super::state::Agent::programmed`] count the entry metrics
    /// were last set at (counting them is O(peers): not at every wake-up).
    pub(super) counted: Option<u64>,
    /// The planes' (datagrams, requests) sent, as last added to the
    /// metrics.
    pub(super) netlink: (u64, u64),
}

impl Observer {
    /// Start the health server (if a port is given); notifications go to
    /// `NOTIFY_SOCKET` if set.
    pub fn start(a: &AgentArgs) -> Result<Observer> {
        let ready: Shared = Arc::new(Mutex::new(Readiness::default()));
        health::serve(&a.healthz_ip, a.healthz_port, ready.clone())?;
        Ok(Observer {
            notify: Notifier::new(),
            ready,
            counted: None,
            netlink: (0, 0),
        })
    }

    pub fn update(&self, f: impl FnOnce(&mut Readiness)) {
        if let Ok(mut r) = self.ready.lock() {
            f(&mut r);
        }
    }
}
