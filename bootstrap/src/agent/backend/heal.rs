//! Healing from kernel notifications, one entry at a time: a route, ARP or
//! FDB entry of a peer removed or changed by hand is put back, and one no
//! lease explains is removed, without dumping whole tables.
//!
//! A notification is only a hint: the agent's own writes cause them too,
//! and by the time one is read the agent may have changed that entry
//! again (a lease deleted and written back in one burst). So a hint is
//! checked against the kernel first, entry by entry (`ip route get
//! fibmatch`, `ip neigh get`, `bridge fdb get`), and only what the kernel
//! really holds wrong is repaired and logged. Hints that match what the
//! agent wants, the common case, cost no system call.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Result;
use ipnet::IpNet;
use netkit::LinkEvent;

use super::super::log;
use super::routes::Routes;
use super::vxlan::{Remote, Vtep};
use super::Plane;

/// More hints than this on one table: compare the whole table instead
/// (three dumps cost less than thousands of single reads).
const MAX_SINGLE: usize = 64;

/// What the notifications of one batch say about one table set.
#[derive(Debug, Default)]
pub struct Drift {
    /// Compare everything (notifications lost, or the device's address
    /// removed: the kernel then flushes its routes without telling).
    pub full: bool,
    /// Peers whose entries may be missing or wrong.
    pub suspects: BTreeSet<IpNet>,
    /// Entries no lease explains, if the kernel still holds them.
    pub routes: Vec<(IpNet, IpAddr)>,
    pub neighs: Vec<IpAddr>,
    pub fdb: Vec<([u8; 6], IpAddr)>,
}

impl Drift {
    fn hints(&self) -> usize {
        self.suspects.len() + self.routes.len() + self.neighs.len() + self.fdb.len()
    }
}

/// A plane's [`Drift`]: its tunnel (vxlan device) and its direct routes
/// (host-gw, DirectRouting) on the external interface.
#[derive(Debug, Default)]
pub struct PlaneDrift {
    pub tunnel: Drift,
    pub direct: Drift,
}

impl PlaneDrift {
    pub fn is_empty(&self) -> bool {
        !self.tunnel.full && !self.direct.full && self.tunnel.hints() + self.direct.hints() == 0
    }
}

impl Vtep {
    /// Put back what the kernel lost of the device itself (its own
    /// address; transmit checksum offload turned on again): O(1), for the
    /// periodic device check. Returns what was restored, for the log.
    pub fn restore_device(&mut self, subnet: IpNet) -> Result<Vec<String>> {
        let mut fixed = Vec::new();
        if self.checksum_off() {
            fixed.push("tx checksum offload off".to_string());
        }
        let want = self.own_addr(subnet);
        if !self.addrs()?.contains(&want) {
            self.ensure_addr(subnet)?;
            fixed.push(format!("address {want}"));
        }
        Ok(fixed)
    }

    /// The remote whose subnet's network address is `ip` (its gateway).
    fn subnet_of_gw(&self, ip: IpAddr) -> Option<IpNet> {
        let bits = if ip.is_ipv6() { 128 } else { 32 };
        let lo = IpNet::new(ip, 0).ok()?;
        let hi = IpNet::new(ip, bits).ok()?;
        self.remotes
            .range(lo..=hi)
            .map(|(s, _)| *s)
            .find(|s| s.network() == ip)
    }

    pub(super) fn note(&self, ev: &LinkEvent, d: &mut Drift) {
        match ev {
            LinkEvent::Route { gone, route } if route.oif == Some(self.index) => {
                let (Some(gw), true) = (route.gw, route.table == 254) else {
                    return;
                };
                let want = self.remotes.contains_key(&route.dst);
                if want && (*gone || gw != route.dst.network() || !route.onlink) {
                    d.suspects.insert(route.dst);
                } else if !want && !gone {
                    d.routes.push((route.dst, gw));
                }
            }
            LinkEvent::Neigh {
                gone,
                fdb: false,
                entry,
            } if entry.index == self.index => {
                let Some(ip) = entry.ip.filter(|i| i.is_ipv6() == self.spec.v6) else {
                    return;
                };
                match self.subnet_of_gw(ip) {
                    Some(sn) => {
                        let ok = entry.permanent && entry.mac == Some(self.remotes[&sn].mac);
                        if *gone || !ok {
                            d.suspects.insert(sn);
                        }
                    }
                    None if !gone && entry.permanent => d.neighs.push(ip),
                    None => {}
                }
            }
            LinkEvent::Neigh {
                gone,
                fdb: true,
                entry,
            } if entry.index == self.index => {
                let Some(mac) = entry.mac.filter(|m| *m != [0; 6] && *m != self.mac) else {
                    return;
                };
                let want = self
                    .by_mac
                    .get(&mac)
                    .and_then(|set| set.first())
                    .map(|sn| (self.remotes[sn].public_ip, *sn));
                match (want, entry.ip) {
                    (Some((_, sn)), _) if *gone => {
                        d.suspects.insert(sn);
                    }
                    (Some((ip, sn)), Some(dst)) if entry.permanent && dst != ip => {
                        d.fdb.push((mac, dst));
                        d.suspects.insert(sn);
                    }
                    (None, Some(dst)) if !gone && entry.permanent => d.fdb.push((mac, dst)),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn wants_fdb(&self, mac: [u8; 6], ip: IpAddr) -> bool {
        self.by_mac
            .get(&mac)
            .is_some_and(|set| set.iter().any(|s| self.remotes[s].public_ip == ip))
    }

    /// Remove the stale entries the kernel still holds; returns how many.
    fn sweep(&mut self, d: &Drift) -> Result<usize> {
        let mut removed = 0;
        for &(dst, gw) in &d.routes {
            if self.remotes.contains_key(&dst) {
                continue;
            }
            let m = self.nl.route().fib_match(dst.network())?;
            if !m.is_some_and(|m| m.dst == dst && m.gw == Some(gw) && m.oif == Some(self.index)) {
                continue;
            }
            self.remove_stale_route(dst, Some(gw), Some(self.index))?;
            removed += 1;
        }
        for &ip in &d.neighs {
            if self.subnet_of_gw(ip).is_some() {
                continue;
            }
            let n = self.nl.neigh().get(self.index, ip)?;
            if !n.is_some_and(|n| n.permanent) {
                continue;
            }
            self.remove_stale_neigh(ip)?;
            removed += 1;
        }
        for &(mac, ip) in &d.fdb {
            if self.wants_fdb(mac, ip) {
                continue;
            }
            let f = self.nl.neigh().get_fdb(self.index, mac)?;
            if f.is_none_or(|f| f.ip != Some(ip)) {
                continue;
            }
            self.remove_stale_fdb(mac, Some(ip))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Is every entry of `sn` in the kernel as programmed?
    fn holds(&mut self, sn: IpNet, r: &Remote) -> Result<bool> {
        let gw = sn.network();
        let route = self.nl.route().fib_match(gw)?.is_some_and(|m| {
            m.dst == sn && m.gw == Some(gw) && m.oif == Some(self.index) && m.onlink
        });
        if !route {
            return Ok(false);
        }
        let arp = self
            .nl
            .neigh()
            .get(self.index, gw)?
            .is_some_and(|n| n.permanent && n.mac == Some(r.mac));
        if !arp {
            return Ok(false);
        }
        Ok(self
            .nl
            .neigh()
            .get_fdb(self.index, r.mac)?
            .is_some_and(|f| f.permanent && f.ip == Some(r.public_ip)))
    }

    /// Act on `d`: sweep, then check each suspect and write back the
    /// broken ones. Returns (removed, repaired).
    pub fn heal(&mut self, d: &Drift) -> Result<(usize, usize)> {
        if d.full || d.hints() > MAX_SINGLE {
            return self.reconcile();
        }
        let removed = self.sweep(d)?;
        let mut broken = Vec::new();
        for &sn in &d.suspects {
            let Some(r) = self.remotes.get(&sn).cloned() else {
                continue;
            };
            if !self.holds(sn, &r)? {
                broken.push((sn, r));
            }
        }
        if !broken.is_empty() {
            self.write_remotes(&broken)?;
            let names: Vec<String> = broken.iter().map(|(s, _)| s.to_string()).collect();
            log(&format!(
                "{}: put back what someone removed or changed: route/ARP/FDB of {}",
                self.name,
                names.join(", ")
            ));
        }
        Ok((removed, broken.len()))
    }
}

impl Routes {
    fn note(&self, ev: &LinkEvent, d: &mut Drift) {
        let LinkEvent::Route { gone, route } = ev else {
            return;
        };
        let ours = route.oif == Some(self.ext_index)
            && route.table == 254
            && self.network.contains(&route.dst);
        let Some(gw) = route.gw.filter(|_| ours) else {
            return;
        };
        match self.peers.get(&route.dst) {
            Some(want) if (*want == gw) == *gone => {
                d.suspects.insert(route.dst);
            }
            None if !gone => d.routes.push((route.dst, gw)),
            _ => {}
        }
    }

    /// Act on `d` as [`Vtep::heal`] does, for gateway routes.
    pub fn heal(&mut self, d: &Drift) -> Result<(usize, usize)> {
        if d.full || d.hints() > MAX_SINGLE {
            return self.reconcile();
        }
        let mut removed = 0;
        for &(dst, gw) in &d.routes {
            if self.peers.contains_key(&dst) {
                continue;
            }
            let m = self.nl.route().fib_match(dst.network())?;
            if !m.is_some_and(|m| m.dst == dst && m.gw == Some(gw) && m.oif == Some(self.ext_index))
            {
                continue;
            }
            log(&format!(
                "removing stale route {dst} via {gw} on {}",
                self.ext_name
            ));
            let spec = self.spec(dst, gw);
            self.nl.route().del(&spec)?;
            removed += 1;
        }
        let mut fixed = 0;
        for &sn in &d.suspects {
            let Some(gw) = self.peers.get(&sn).copied() else {
                continue;
            };
            let m = self.nl.route().fib_match(sn.network())?;
            if m.is_some_and(|m| m.dst == sn && m.gw == Some(gw) && m.oif == Some(self.ext_index)) {
                continue;
            }
            log(&format!(
                "{}: put back what someone removed or changed: route {sn} via {gw}",
                self.ext_name
            ));
            let spec = self.spec(sn, gw);
            self.nl.route().replace(&spec)?;
            fixed += 1;
        }
        Ok((removed, fixed))
    }
}

impl Plane {
    /// Take one notification into `d`.
    pub fn note(&self, ev: &LinkEvent, d: &mut PlaneDrift) {
        match self {
            Plane::HostGw(r) => r.note(ev, &mut d.direct),
            Plane::Vxlan { vtep, direct, .. } => {
                if matches!(ev, LinkEvent::AddrRemoved { index } if *index == vtep.index) {
                    d.tunnel.full = true;
                }
                vtep.note(ev, &mut d.tunnel);
                direct.note(ev, &mut d.direct);
            }
        }
    }

    /// Repair what `d` names; `own` is this node's subnet of the plane's
    /// family. Returns how many entries were removed or put back.
    pub fn heal(&mut self, own: IpNet, d: &PlaneDrift) -> Result<usize> {
        let (a, b, c, e) = match self {
            Plane::HostGw(r) => {
                let (c, e) = r.heal(&d.direct)?;
                (0, 0, c, e)
            }
            Plane::Vxlan { vtep, direct, .. } => {
                let mut back = 0;
                if d.tunnel.full && !vtep.restore_device(own)?.is_empty() {
                    back = 1;
                }
                let (a, b) = vtep.heal(&d.tunnel)?;
                let (c, e) = direct.heal(&d.direct)?;
                (a + back, b, c, e)
            }
        };
        Ok(a + b + c + e)
    }
}
