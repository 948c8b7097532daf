//! What the agent tells the outside about itself: systemd notifications
//! ([`super::notify`]), the readiness the health server reads
//! ([`super::health`]) and the metrics ([`super::metrics`]), all updated
//! from the agent's state in one place, [`Agent::publish`].

use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::backend::Plane;
use super::health::{self, Readiness, Shared};
use super::metrics::{self, label, labels};
use super::notify::Notifier;
use super::run::Agent;
use super::AgentArgs;

pub struct Observer {
    pub notify: Notifier,
    pub ready: Shared,
    /// The [`Agent::programmed`] count the entry metrics were last set at
    /// (counting them is O(peers): not at every wake-up).
    counted: Option<u64>,
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
        })
    }

    pub fn update(&self, f: impl FnOnce(&mut Readiness)) {
        if let Ok(mut r) = self.ready.lock() {
            f(&mut r);
        }
    }
}

fn family(v6: bool) -> &'static str {
    if v6 {
        "ipv6"
    } else {
        "ipv4"
    }
}

impl Agent<'_> {
    /// Bring the readiness, the metrics and systemd's status line in line
    /// with the agent's state; `watch`: is the lease watch open?
    pub fn publish(&mut self, watch: bool) {
        let m = metrics::get();
        let state = match &self.own {
            None => "none",
            Some(o) if o.lease == 0 => "reserved",
            Some(_) => "held",
        };
        for s in ["held", "reserved", "none"] {
            m.lease_state
                .get_or_create(&label("state", s))
                .set(i64::from(s == state));
        }
        let expires = self
            .own
            .as_ref()
            .and_then(|o| o.expires)
            .map(|t| t.into_std());
        self.obs.update(|r| {
            r.config = true;
            r.lease = self.own.is_some();
            r.watch = watch;
            r.lease_expires = expires;
        });
        let peers = self.planes.iter().map(Plane::count).max().unwrap_or(0);
        if self.obs.counted != Some(self.programmed) {
            self.obs.counted = Some(self.programmed);
            for p in &self.planes {
                let fam = family(p.v6());
                m.remote_leases
                    .get_or_create(&label("family", fam))
                    .set(p.count() as i64);
                let (routes, fdb, neigh) = entries(p);
                for (kind, n) in [("route", routes), ("fdb", fdb), ("neighbour", neigh)] {
                    m.entries
                        .get_or_create(&labels(&[("family", fam), ("kind", kind)]))
                        .set(n as i64);
                }
            }
        }
        let Some(own) = &self.own else {
            self.obs.notify.status("no subnet lease; acquiring one");
            return;
        };
        let mut text = format!("ready: subnet {}, {peers} peer(s)", own.key.show());
        if !watch {
            text.push_str("; lease watch broken, resuming when etcd answers");
        }
        self.obs.notify.status(&text);
    }
}

/// (routes, FDB entries, neighbour entries) a plane keeps for other nodes:
/// a tunnelled peer has one of each, a direct (host-gw or DirectRouting)
/// one a route only.
fn entries(p: &Plane) -> (usize, usize, usize) {
    match p {
        Plane::HostGw(r) => (r.peers.len(), 0, 0),
        Plane::Vxlan { vtep, direct, .. } => {
            let tunnel = vtep.remotes.len();
            // One FDB entry per VtepMAC, shared by the leases that name it.
            (tunnel + direct.peers.len(), vtep.by_mac.len(), tunnel)
        }
    }
}
