//! The kernel's notifications about the agent's devices and entries, acted
//! on as they come: a device deleted or changed is rebuilt, a peer's route,
//! ARP or FDB entry removed or changed by hand is put back, one no lease
//! explains is removed (see [`super::backend`]'s `heal.rs`), all without
//! waiting for a timer and, while nothing changes, without any work.

use netkit::LinkEvent;

use super::backend::PlaneDrift;
use super::state::Agent;
use super::{log, metrics};

impl Agent<'_> {
    pub async fn on_kernel(&mut self, evs: Vec<LinkEvent>) {
        if evs.is_empty() {
            return;
        }
        let devices = self.planes.iter().filter_map(|p| p.device()).count() > 0;
        let mut device_check = false;
        let mut drifts: Vec<PlaneDrift> =
            self.planes.iter().map(|_| PlaneDrift::default()).collect();
        for ev in &evs {
            match ev {
                LinkEvent::Changed(_) | LinkEvent::Deleted(_) => device_check = devices,
                LinkEvent::Overflow => {
                    device_check = devices;
                    for d in &mut drifts {
                        d.tunnel.full = true;
                        d.direct.full = true;
                    }
                }
                _ => {}
            }
            for (p, d) in self.planes.iter().zip(&mut drifts) {
                p.note(ev, d);
            }
        }
        if device_check {
            // A device gone is rebuilt with every entry on it: what the
            // other notifications say about the old one is moot.
            let before: Vec<Option<u32>> = self
                .planes
                .iter()
                .map(|p| p.device().map(|d| d.1))
                .collect();
            self.check_devices().await;
            for ((p, b), d) in self.planes.iter().zip(before).zip(&mut drifts) {
                if p.device().map(|d| d.1) != b {
                    *d = PlaneDrift::default();
                }
            }
        }
        let own = self.own_key();
        for (p, d) in self.planes.iter_mut().zip(&drifts) {
            let Some(sn) = own.get(p.v6()) else { continue };
            if d.is_empty() {
                continue;
            }
            match p.heal(sn, d) {
                Ok(n) => {
                    metrics::get().repairs.inc_by(n as u64);
                }
                Err(e) => log(&format!(
                    "cannot repair what changed on {}: {e:#}; the next resync tries again",
                    p.name()
                )),
            }
        }
    }
}
