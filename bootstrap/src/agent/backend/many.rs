//! Many peers at once: a burst of lease changes (a rack joining, the list
//! at start) becomes one [`netkit::Batch`] per plane, sent 64 requests to a
//! datagram, instead of a round trip per peer. Also the books of what a
//! vxlan device holds ([`Vtep::book`], [`Vtep::unbook`]).

use std::net::IpAddr;

use anyhow::{anyhow, Result};
use ipnet::IpNet;
use netkit::Batch;

use super::routes::Routes;
use super::vxlan::{Remote, Vtep};
use super::{Peer, Plane, Via};

/// The request range of one item in a batch, and what it was about.
struct Span<T> {
    item: usize,
    from: usize,
    to: usize,
    what: T,
}

/// The items of one batch: the answers known before it is sent, and the
/// request range of each item sent.
struct Pending<T> {
    spans: Vec<Span<T>>,
    out: Vec<Option<Result<bool>>>,
}

impl<T> Pending<T> {
    fn new(items: usize) -> Pending<T> {
        Pending {
            spans: Vec::new(),
            out: Vec::with_capacity(items),
        }
    }

    /// The next item's answer, known without the kernel.
    fn answer(&mut self, r: Result<bool>) {
        self.out.push(Some(r));
    }

    /// The next item's requests, put in `b` by `add`; false (and the item
    /// answered with the error) when `add` fails.
    fn queue(
        &mut self,
        b: &mut Batch,
        what: T,
        add: impl FnOnce(&mut Batch) -> Result<()>,
    ) -> bool {
        let from = b.len();
        if let Err(e) = add(b) {
            self.answer(Err(e));
            return false;
        }
        self.spans.push(Span {
            item: self.out.len(),
            from,
            to: b.len(),
            what,
        });
        self.out.push(None);
        true
    }

    /// The answers, with the batch's `results`: each item sent gets the
    /// first error of its requests (and is passed to `failed`), else
    /// `Ok(true)`.
    fn settle(
        mut self,
        results: Vec<netkit::Result<()>>,
        mut failed: impl FnMut(&T),
        context: impl Fn(&T) -> String,
    ) -> Vec<Result<bool>> {
        let mut results: Vec<Option<netkit::Result<()>>> = results.into_iter().map(Some).collect();
        for s in self.spans {
            let err = results[s.from..s.to]
                .iter_mut()
                .find_map(|r| r.take().and_then(|r| r.err()));
            self.out[s.item] = Some(match err {
                None => Ok(true),
                Some(e) => {
                    failed(&s.what);
                    Err(anyhow!("{}: {e}", context(&s.what)))
                }
            });
        }
        self.out
            .into_iter()
            .map(|r| r.unwrap_or(Ok(false)))
            .collect()
    }
}

impl Vtep {
    /// Record `want` as programmed for `subnet`.
    pub(super) fn book(&mut self, subnet: IpNet, want: Remote) {
        let mac = want.mac;
        if let Some(old) = self.remotes.insert(subnet, want) {
            self.unindex(subnet, old.mac);
        }
        self.by_mac.entry(mac).or_default().insert(subnet);
    }

    /// Forget `subnet`; returns what was programmed for it.
    pub(super) fn unbook(&mut self, subnet: IpNet) -> Option<Remote> {
        let old = self.remotes.remove(&subnet)?;
        self.unindex(subnet, old.mac);
        Some(old)
    }

    fn unindex(&mut self, subnet: IpNet, mac: [u8; 6]) {
        if let Some(set) = self.by_mac.get_mut(&mac) {
            set.remove(&subnet);
            if set.is_empty() {
                self.by_mac.remove(&mac);
            }
        }
    }

    /// [`Vtep::program`] for many remotes in one batch. Per item:
    /// `Ok(true)` programmed, `Ok(false)` already as it is.
    pub fn program_many(&mut self, items: Vec<(IpNet, Remote)>) -> Vec<Result<bool>> {
        let mut b = Batch::new();
        let mut p = Pending::new(items.len());
        for (subnet, want) in items {
            let old = self.remotes.get(&subnet).cloned();
            if old.as_ref() == Some(&want) {
                p.answer(Ok(false));
                continue;
            }
            let queued = p.queue(&mut b, subnet, |b| {
                if let Some(o) = old.filter(|o| o.mac != want.mac) {
                    self.release_fdb(b, subnet, &o);
                }
                self.add_entries(b, subnet, &want)
            });
            if queued {
                // Booked now, so that the next items see a shared VtepMAC.
                self.book(subnet, want);
            }
        }
        let res = self.nl.apply(b);
        let mut failed = Vec::new();
        let out = p.settle(
            res,
            |s| failed.push(*s),
            |s| format!("program the route to {s}"),
        );
        // Forgotten, so that the next try programs them whole; the kernel
        // compare sweeps what half of one left.
        for s in failed {
            self.unbook(s);
        }
        out
    }

    /// [`Vtep::unprogram`] for many subnets in one batch.
    pub fn unprogram_many(&mut self, subnets: &[IpNet]) -> Vec<Result<bool>> {
        let mut b = Batch::new();
        let mut p = Pending::new(subnets.len());
        for &subnet in subnets {
            let Some(old) = self.unbook(subnet) else {
                p.answer(Ok(false));
                continue;
            };
            p.queue(&mut b, subnet, |b| self.del_entries(b, subnet, &old));
        }
        let res = self.nl.apply(b);
        p.settle(res, |_| {}, |s| format!("remove the route to {s}"))
    }
}

impl Routes {
    /// [`Routes::program`] for many routes in one batch.
    pub fn program_many(&mut self, items: &[(IpNet, IpAddr)]) -> Vec<Result<bool>> {
        let mut b = Batch::new();
        let mut p = Pending::new(items.len());
        for &(subnet, gw) in items {
            if self.peers.get(&subnet) == Some(&gw) {
                p.answer(Ok(false));
                continue;
            }
            let spec = self.spec(subnet, gw);
            if p.queue(&mut b, (subnet, gw), |b| {
                b.replace_route(&spec)?;
                Ok(())
            }) {
                self.peers.insert(subnet, gw);
            }
        }
        let res = self.nl.apply(b);
        let ext = self.ext_name.clone();
        let peers = &mut self.peers;
        p.settle(
            res,
            |(s, _)| {
                peers.remove(s);
            },
            |(s, g)| format!("route {s} via {g} dev {ext}"),
        )
    }

    /// [`Routes::unprogram`] for many subnets in one batch.
    pub fn unprogram_many(&mut self, subnets: &[IpNet]) -> Vec<Result<bool>> {
        let mut b = Batch::new();
        let mut p = Pending::new(subnets.len());
        for &subnet in subnets {
            let Some(gw) = self.peers.remove(&subnet) else {
                p.answer(Ok(false));
                continue;
            };
            let spec = self.spec(subnet, gw);
            p.queue(&mut b, (subnet, gw), |b| {
                b.del_route(&spec)?;
                Ok(())
            });
        }
        let res = self.nl.apply(b);
        p.settle(
            res,
            |_| {},
            |(s, g)| format!("remove the route {s} via {g}"),
        )
    }
}

impl Plane {
    /// [`Plane::program`] for many peers: the usual case (a tunnelled peer,
    /// a host-gw peer on the segment) in one batch, the rest (peers moving
    /// between tunnel and direct route, peers refused) one by one.
    pub fn program_many(&mut self, peers: &[Peer]) -> Vec<Result<Option<Via>>> {
        let mut out: Vec<Option<Result<Option<Via>>>> = Vec::with_capacity(peers.len());
        let mut batch = Vec::new();
        let mut slots = Vec::new();
        let direct_routing = matches!(
            self,
            Plane::Vxlan {
                direct_routing: true,
                ..
            }
        );
        let prefixes = match self {
            Plane::HostGw(r) => r.prefixes().ok(),
            Plane::Vxlan { direct, .. } if direct_routing => direct.prefixes().ok(),
            Plane::Vxlan { .. } => Some(Vec::new()),
        };
        let on_link = |ip: &IpAddr| {
            prefixes
                .as_ref()
                .is_some_and(|p| p.iter().any(|n| n.contains(ip)))
        };
        for p in peers {
            let simple = match self {
                Plane::HostGw(_) => on_link(&p.public_ip),
                Plane::Vxlan { vtep, direct, .. } => {
                    p.vxlan.is_some()
                        && !(direct_routing && on_link(&p.public_ip))
                        && !direct.peers.contains_key(&p.subnet)
                        && vtep.index != 0
                }
            };
            if !simple || prefixes.is_none() {
                out.push(Some(self.program(p)));
                continue;
            }
            slots.push(out.len());
            out.push(None);
            batch.push(p);
        }
        let (res, via): (Vec<Result<bool>>, Via) = match self {
            Plane::HostGw(r) => {
                let items: Vec<(IpNet, IpAddr)> =
                    batch.iter().map(|p| (p.subnet, p.public_ip)).collect();
                (r.program_many(&items), Via::Direct)
            }
            Plane::Vxlan { vtep, .. } => {
                let items = batch
                    .iter()
                    .map(|p| {
                        let d = p.vxlan.expect("checked above");
                        let r = Remote {
                            public_ip: p.public_ip,
                            mac: d.vtep_mac,
                        };
                        (p.subnet, r)
                    })
                    .collect();
                (vtep.program_many(items), Via::Tunnel)
            }
        };
        for (slot, r) in slots.into_iter().zip(res) {
            out[slot] = Some(r.map(|done| done.then_some(via)));
        }
        out.into_iter().map(|r| r.unwrap_or(Ok(None))).collect()
    }

    /// [`Plane::unprogram`] for many subnets in one batch per table.
    pub fn unprogram_many(&mut self, subnets: &[IpNet]) -> Vec<Result<bool>> {
        match self {
            Plane::HostGw(r) => r.unprogram_many(subnets),
            Plane::Vxlan { vtep, direct, .. } => {
                let is_direct: Vec<bool> = subnets
                    .iter()
                    .map(|s| direct.peers.contains_key(s))
                    .collect();
                let pick = |want: bool| -> Vec<IpNet> {
                    subnets
                        .iter()
                        .zip(&is_direct)
                        .filter(|(_, d)| **d == want)
                        .map(|(s, _)| *s)
                        .collect()
                };
                let mut rd = direct.unprogram_many(&pick(true)).into_iter();
                let mut rt = vtep.unprogram_many(&pick(false)).into_iter();
                is_direct
                    .iter()
                    .map(|d| {
                        let r = if *d { rd.next() } else { rt.next() };
                        r.unwrap_or(Ok(false))
                    })
                    .collect()
            }
        }
    }
}
