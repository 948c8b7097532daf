//! [`Vtep::reconcile`]: making the kernel hold exactly what a vxlan
//! device's bookkeeping says, from one dump each of routes, neighbour and
//! FDB entries.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use anyhow::Result;
use ipnet::IpNet;
use netkit::RouteSpec;

use super::super::log;
use super::vxlan::{Remote, Vtep};

impl Vtep {
    /// Make the kernel hold exactly what [`Vtep::remotes`] says, from one
    /// dump each of routes, ARP and FDB entries on the device: entries no
    /// lease explains are removed (left by a previous run, or by events we
    /// missed), and leases whose route, ARP or FDB entry is missing or
    /// wrong (deleted or changed behind our back, or a recreated device)
    /// are programmed again. A lease that is right costs nothing, so a
    /// periodic resync of N leases is three dumps, not N round trips.
    /// Returns (entries removed, leases re-programmed).
    pub fn reconcile(&mut self) -> Result<(usize, usize)> {
        let mut removed = 0;
        let gws: BTreeMap<IpAddr, [u8; 6]> = self
            .remotes
            .iter()
            .map(|(s, r)| (s.network(), r.mac))
            .collect();
        let mut want_fdb: BTreeMap<[u8; 6], BTreeSet<IpAddr>> = BTreeMap::new();
        for r in self.remotes.values() {
            want_fdb.entry(r.mac).or_default().insert(r.public_ip);
        }

        let mut route_ok = BTreeSet::new();
        let family = self.family();
        for r in self.nl.route().list(family)? {
            let dst = r.dst;
            if r.oif != Some(self.index) || r.gw.is_none() || r.table != 254 {
                continue;
            }
            if self.remotes.contains_key(&dst) {
                if r.gw == Some(dst.network()) && r.onlink {
                    route_ok.insert(dst);
                }
                continue;
            }
            // Delete it as it is (its gateway may not be the .0 we use).
            let _ = self.remove_stale_route(dst, r.gw, r.oif);
            removed += 1;
        }

        let mut arp_ok = BTreeSet::new();
        for ne in self.nl.neigh().list(self.index, self.spec.v6)? {
            let Some(ip) = ne.ip.filter(|_| ne.permanent) else {
                continue;
            };
            match gws.get(&ip) {
                Some(mac) => {
                    if ne.mac == Some(*mac) {
                        arp_ok.insert(ip);
                    }
                }
                None => {
                    self.remove_stale_neigh(ip)?;
                    removed += 1;
                }
            }
        }

        let mut fdb_ok = BTreeSet::new();
        for f in self.nl.neigh().list_fdb(self.index)? {
            let Some(mac) = f.mac.filter(|_| f.permanent) else {
                continue;
            };
            if mac == [0; 6] || mac == self.mac {
                continue;
            }
            if f.ip
                .is_some_and(|ip| want_fdb.get(&mac).is_some_and(|w| w.contains(&ip)))
            {
                fdb_ok.insert(mac);
                continue;
            }
            self.remove_stale_fdb(mac, f.ip)?;
            removed += 1;
        }

        let broken: Vec<(IpNet, Remote)> = self
            .remotes
            .iter()
            .filter(|(s, r)| {
                !route_ok.contains(*s) || !arp_ok.contains(&s.network()) || !fdb_ok.contains(&r.mac)
            })
            .map(|(s, r)| (*s, r.clone()))
            .collect();
        self.write_remotes(&broken)?;
        if !broken.is_empty() {
            let mut names: Vec<String> =
                broken.iter().take(5).map(|(s, _)| s.to_string()).collect();
            if broken.len() > 5 {
                names.push(format!("and {} more", broken.len() - 5));
            }
            log(&format!(
                "repairing {} lease(s) whose route, ARP or FDB entry was missing or wrong on {}: {}",
                broken.len(),
                self.name,
                names.join(", ")
            ));
        }
        Ok((removed, broken.len()))
    }

    /// Removes a route no lease explains (`dst` via `gw` out of `oif`, as
    /// the kernel holds it), and logs it.
    pub(super) fn remove_stale_route(
        &mut self,
        dst: IpNet,
        gw: Option<IpAddr>,
        oif: Option<u32>,
    ) -> Result<()> {
        log(&format!("removing stale route {dst} on {}", self.name));
        let mut stale = RouteSpec::to(dst);
        stale.gw = gw;
        stale.oif = oif;
        self.nl.route().del(&stale)?;
        Ok(())
    }

    /// Removes an ARP (neighbour) entry no lease explains, and logs it.
    pub(super) fn remove_stale_neigh(&mut self, ip: IpAddr) -> Result<()> {
        let what = if self.spec.v6 { "neighbour" } else { "ARP" };
        log(&format!(
            "removing stale {what} entry {ip} on {}",
            self.name
        ));
        self.nl.neigh().del(self.index, ip)?;
        Ok(())
    }

    /// Removes an FDB entry no lease explains (`mac` to `ip`), and logs it.
    pub(super) fn remove_stale_fdb(&mut self, mac: [u8; 6], ip: Option<IpAddr>) -> Result<()> {
        log(&format!(
            "removing stale FDB entry {} dst {} on {}",
            netkit::fmt_mac(&mac),
            ip.map_or("-".into(), |i| i.to_string()),
            self.name
        ));
        self.nl.neigh().del_fdb(self.index, mac, ip)?;
        Ok(())
    }
}
