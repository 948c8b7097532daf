//! [`Agent::publish`]: the readiness, the metrics and systemd's status
//! line brought in line with the agent's state, in one place.

use super::backend::Plane;
use super::metrics::{self, label, labels};
use super::state::Agent;

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
        let (datagrams, requests) = self
            .planes
            .iter()
            .map(Plane::netlink_sent)
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
        let (d0, r0) = std::mem::replace(&mut self.obs.netlink, (datagrams, requests));
        m.netlink_datagrams.inc_by(datagrams.saturating_sub(d0));
        m.netlink_requests.inc_by(requests.saturating_sub(r0));
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
