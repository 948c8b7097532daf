//! One vxlan device of the agent, in its own network namespace:
//! `flannel.<VNI>` (IPv4 underlay) or `flannel-v6.<VNI>` (IPv6), as flannel
//! `pkg/backend/vxlan/device.go` makes them, and per remote lease the
//! neighbour entry, FDB entry and onlink route (`vxlan_network.go`
//! handleSubnetEvents). Batches of peers are in `many.rs`, the repairs in
//! `repair.rs` (full compare) and `heal.rs` (one entry, on notifications).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use anyhow::{anyhow, Context, Result};
use ipnet::IpNet;
use netkit::{Batch, Family, Netlink, RouteSpec, VxlanParams};

use super::super::log;
use crate::netconfig::{device_name, VxlanOptions};

/// A locally administered unicast MAC from a random seed.
pub fn random_mac(seed: u64) -> [u8; 6] {
    let b = seed.to_le_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// What the agent keeps programmed for one remote lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub public_ip: IpAddr,
    pub mac: [u8; 6],
}

/// How to build the device (the vxlan options and the underlay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub v6: bool,
    pub vni: u32,
    pub port: u16,
    pub gbp: bool,
    pub learning: bool,
    /// The outgoing MTU (Backend MTU, else the interface's).
    pub out_mtu: u32,
    pub local: IpAddr,
    pub ext_index: u32,
    pub ext_name: String,
    /// Turn transmit checksum offload off on the device.
    pub tx_csum_off: bool,
}

/// The vxlan device and the remote leases programmed on it.
pub struct Vtep {
    pub nl: Netlink,
    pub name: String,
    pub spec: DeviceSpec,
    pub index: u32,
    pub mac: [u8; 6],
    /// Changed only through [`Vtep::book`] and [`Vtep::unbook`], which
    /// keep `by_mac` in step.
    pub remotes: BTreeMap<IpNet, Remote>,
    /// The subnets programmed per VtepMAC (the device holds one FDB entry
    /// per MAC), so that shared MACs, notifications and the FDB count
    /// need no scan of every remote.
    pub by_mac: HashMap<[u8; 6], BTreeSet<IpNet>>,
}

impl Vtep {
    pub fn new(spec: DeviceSpec, mac: [u8; 6]) -> Result<Vtep> {
        Ok(Vtep {
            nl: Netlink::open()?,
            name: device_name(spec.v6, spec.vni),
            spec,
            index: 0,
            mac,
            remotes: BTreeMap::new(),
            by_mac: HashMap::new(),
        })
    }

    pub fn mtu(&self) -> u32 {
        self.spec
            .out_mtu
            .saturating_sub(VxlanOptions::overhead(self.spec.v6))
    }

    pub(super) fn family(&self) -> Family {
        if self.spec.v6 {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// The device's own address: the subnet's network address, /32 or /128.
    pub(super) fn own_addr(&self, subnet: IpNet) -> IpNet {
        IpNet::new(subnet.network(), subnet.max_prefix_len()).expect("host prefix")
    }

    pub(super) fn addrs(&mut self) -> Result<Vec<IpNet>> {
        let v6 = self.spec.v6;
        Ok(self
            .nl
            .addr()
            .list(Some(self.index))?
            .into_iter()
            .map(|a| a.addr)
            .filter(|n| match n {
                IpNet::V4(_) => !v6,
                IpNet::V6(x) => v6 && (x.addr().segments()[0] & 0xffc0) != 0xfe80,
            })
            .collect())
    }

    /// Why an existing device differs from what we want; empty = usable.
    fn mismatch(&self, info: &netkit::VxlanInfo) -> Vec<String> {
        let mut why = Vec::new();
        if info.link.kind.as_deref() != Some("vxlan") {
            why.push(format!(
                "is a {} device, not vxlan",
                info.link.kind.as_deref().unwrap_or("physical")
            ));
            return why;
        }
        let show = |v: Option<String>| v.unwrap_or_else(|| "none".into());
        if info.vni != Some(self.spec.vni) {
            let v = show(info.vni.map(|v| v.to_string()));
            why.push(format!("VNI {v} instead of {}", self.spec.vni));
        }
        let sp = &self.spec;
        if info.local != Some(sp.local) {
            let l = show(info.local.map(|l| l.to_string()));
            why.push(format!("local address {l} instead of {}", sp.local));
        }
        if info.port != Some(sp.port) {
            let p = show(info.port.map(|p| p.to_string()));
            why.push(format!("port {p} instead of {}", sp.port));
        }
        if let Some(d) = info.dev.filter(|d| *d != sp.ext_index) {
            why.push(format!("on interface #{d} instead of {}", sp.ext_name));
        }
        if info.learning.unwrap_or(true) != sp.learning {
            why.push(format!(
                "learning {}",
                if sp.learning { "off" } else { "on" }
            ));
        }
        if info.gbp != sp.gbp {
            why.push(format!("GBP {}", if sp.gbp { "off" } else { "on" }));
        }
        why
    }

    /// Make `flannel.<VNI>` exist as configured, up, with our MAC and MTU.
    /// An existing compatible device is kept with its MAC (so the lease's
    /// VtepMAC stays valid across restarts); an incompatible one is replaced.
    /// Returns true when the device was (re)created.
    pub fn ensure_device(&mut self) -> Result<bool> {
        let mut created = false;
        match self.nl.link().vxlan_info(&self.name)? {
            Some(info) if self.mismatch(&info).is_empty() => {
                if let Some(mac) = info.link.mac {
                    self.mac = mac;
                }
                self.index = info.link.index;
                if info.link.mtu != self.mtu() {
                    log(&format!(
                        "{}: MTU {} -> {} (outgoing MTU {} minus the vxlan overhead)",
                        self.name,
                        info.link.mtu,
                        self.mtu(),
                        self.spec.out_mtu
                    ));
                    let mtu = self.mtu();
                    self.nl.link().set_mtu(self.index, mtu)?;
                }
            }
            other => {
                if let Some(info) = other {
                    log(&format!(
                        "{} exists but does not match ({}); replacing it",
                        self.name,
                        self.mismatch(&info).join(", ")
                    ));
                    if info.link.kind.as_deref() == Some("vxlan") {
                        if let Some(mac) = info.link.mac {
                            self.mac = mac;
                        }
                    }
                    self.nl.link().del(info.link.index)?;
                }
                let sp = &self.spec;
                let mut p = VxlanParams::new(self.name.clone(), sp.vni);
                p.local = Some(sp.local);
                p.dev = Some(sp.ext_index);
                p.port = Some(sp.port);
                p.learning = sp.learning;
                p.gbp = sp.gbp;
                p.mtu = Some(self.mtu());
                p.mac = Some(self.mac);
                self.nl.link().add_vxlan(&p)?;
                let link = self
                    .nl
                    .link()
                    .by_name(&self.name)?
                    .ok_or_else(|| anyhow!("{} vanished right after creation", self.name))?;
                self.index = link.index;
                let sp = &self.spec;
                log(&format!(
                    "created {} (VNI {}, port {}, local {}, dev {}, MTU {}, MAC {}{}{})",
                    self.name,
                    sp.vni,
                    sp.port,
                    sp.local,
                    sp.ext_name,
                    self.mtu(),
                    netkit::fmt_mac(&self.mac),
                    if sp.gbp { ", GBP" } else { "" },
                    if sp.learning { ", learning" } else { "" },
                ));
                if sp.v6 {
                    // As flanneld: no router advertisements on the tunnel.
                    let key = format!("net/ipv6/conf/{}/accept_ra", self.name);
                    if let Err(e) = netkit::sysctl::set_in(&netkit::Netns::current()?, &key, "0") {
                        log(&format!("warning: cannot set {key} to 0: {e}"));
                    }
                }
                created = true;
            }
        }
        self.nl.link().set_up(self.index)?;
        // Something (udev's MACAddressPolicy) may rewrite the MAC on up
        // (flannel#1795): put ours back.
        let now = self.nl.link().by_index(self.index)?.and_then(|l| l.mac);
        if now.is_some_and(|m| m != self.mac) {
            self.nl.link().set_mac(self.index, self.mac)?;
        }
        self.checksum_off();
        Ok(created)
    }

    /// Turn tx checksum offload off if asked and still on; true when it
    /// changed. A failure is a warning: the tunnel works on most drivers.
    pub(super) fn checksum_off(&mut self) -> bool {
        if !self.spec.tx_csum_off {
            return false;
        }
        match netkit::set_tx_checksum(self.index, false) {
            Ok(true) => {
                log(&format!(
                    "{}: turned transmit checksum offload off (--keep-tx-checksum-offload \
                     leaves it on)",
                    self.name
                ));
                true
            }
            Ok(false) => false,
            Err(e) => {
                log(&format!(
                    "warning: {}: cannot turn transmit checksum offload off: {e}",
                    self.name
                ));
                false
            }
        }
    }

    /// Give the device exactly `<subnet>.0/32` (IPv4).
    ///
    /// The new address goes on before the old one comes off: when the last
    /// IPv4 address leaves a device the kernel disables IP on it and flushes
    /// every route and ARP entry through it, permanent ones included
    /// (`fib_inetaddr_event` → `fib_disable_ip` → `arp_ifdown`,
    /// net/ipv4/fib_frontend.c), which would silently cut this node off from
    /// every other node after a subnet change.
    pub fn ensure_addr(&mut self, subnet: IpNet) -> Result<()> {
        let want = self.own_addr(subnet);
        let have = self.addrs()?;
        if !have.contains(&want) {
            self.nl.addr().add(self.index, want)?;
        }
        for a in have.iter().filter(|a| **a != want) {
            log(&format!("{}: removing old address {a}", self.name));
            self.nl.addr().del(self.index, *a)?;
        }
        Ok(())
    }

    pub(super) fn route(&self, subnet: IpNet) -> RouteSpec {
        let mut r = RouteSpec::to(subnet);
        r.gw = Some(subnet.network());
        r.oif = Some(self.index);
        r.onlink = true;
        r
    }

    /// Program (or update) one remote lease: ARP .0 -> VtepMAC, FDB VtepMAC
    /// -> PublicIP, route subnet via .0 onlink. Returns false when the
    /// lease is programmed as it is already (kernel drift is for
    /// [`Vtep::reconcile`]).
    pub fn program(&mut self, subnet: IpNet, want: Remote) -> Result<bool> {
        let old = self.remotes.get(&subnet).cloned();
        if old.as_ref() == Some(&want) {
            return Ok(false);
        }
        let mut b = Batch::new();
        if let Some(o) = old.filter(|o| o.mac != want.mac) {
            self.release_fdb(&mut b, subnet, &o);
        }
        self.add_entries(&mut b, subnet, &want)?;
        netkit::first_error(self.nl.apply(b))
            .with_context(|| format!("program the route to {subnet}"))?;
        self.book(subnet, want);
        Ok(true)
    }

    /// Write remotes' ARP, FDB and route entries again, in one batch.
    pub(super) fn write_remotes(&mut self, items: &[(IpNet, Remote)]) -> Result<()> {
        let mut b = Batch::new();
        for (subnet, r) in items {
            self.add_entries(&mut b, *subnet, r)?;
        }
        netkit::first_error(self.nl.apply(b)).with_context(|| {
            format!(
                "write back the entries of {} lease(s) on {}",
                items.len(),
                self.name
            )
        })
    }

    pub(super) fn add_entries(&self, b: &mut Batch, subnet: IpNet, r: &Remote) -> Result<()> {
        b.add_neigh(self.index, subnet.network(), r.mac);
        b.add_fdb(self.index, r.mac, r.public_ip);
        b.replace_route(&self.route(subnet))?;
        Ok(())
    }

    /// `subnet` stops using `old`'s FDB entry. The vxlan FDB holds one
    /// entry per MAC, and one node can hold two leases with the same
    /// VtepMAC for a while (it moved to a new subnet and its old key has
    /// not expired or been deleted yet): the entry is deleted only when no
    /// other lease uses the MAC, and pointed at the remaining lease's
    /// PublicIP if that differs.
    pub(super) fn release_fdb(&self, b: &mut Batch, subnet: IpNet, old: &Remote) {
        let other = self
            .by_mac
            .get(&old.mac)
            .and_then(|set| set.iter().find(|s| **s != subnet))
            .map(|s| self.remotes[s].public_ip);
        match other {
            None => {
                b.del_fdb(self.index, old.mac, Some(old.public_ip));
            }
            Some(ip) if ip != old.public_ip => {
                b.add_fdb(self.index, old.mac, ip);
            }
            Some(_) => {}
        }
    }

    /// Remove one remote lease's route, ARP and FDB entries (the FDB entry
    /// only when no other lease uses its VtepMAC).
    pub fn unprogram(&mut self, subnet: IpNet) -> Result<()> {
        let mut b = Batch::new();
        if let Some(o) = self.unbook(subnet) {
            self.del_entries(&mut b, subnet, &o)?;
        } else {
            b.del_route(&self.route(subnet))?;
            b.del_neigh(self.index, subnet.network());
        }
        netkit::first_error(self.nl.apply(b))
            .with_context(|| format!("remove the route to {subnet}"))
    }

    /// The requests that remove `old`'s entries for `subnet` (already out
    /// of [`Vtep::remotes`]).
    pub(super) fn del_entries(&self, b: &mut Batch, subnet: IpNet, old: &Remote) -> Result<()> {
        b.del_route(&self.route(subnet))?;
        b.del_neigh(self.index, subnet.network());
        self.release_fdb(b, subnet, old);
        Ok(())
    }

    /// Is the device still there, as we made it (same ifindex, up)?
    pub fn intact(&mut self) -> Result<bool> {
        Ok(match self.nl.link().vxlan_info(&self.name)? {
            Some(i) => i.link.index == self.index && i.link.up && self.mismatch(&i).is_empty(),
            None => false,
        })
    }
}
