//! Keeping the node in step: its own setup (device addresses, forwarding,
//! masquerade, subnet.env) and every other lease programmed into the
//! planes, from the lease watch's events, applied a burst at a time
//! (see [`super::relist`] for the lists and the kernel compare).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use etcd_client::EventType;
use ipnet::IpNet;
use netkit::firewall;

use super::backend::{Peer, Plane, Via};
use super::held::subnets_of;
use super::state::Agent;
use super::{env, log};
use crate::etcd::Kv;
use crate::lease::Lease;

/// Name tagging the agent's nftables rules (masquerade, forward).
pub const RULE_TAG: &str = "flannel-agent";

/// The tag of a family's forward-accept rules (one rule set per tag).
pub fn forward_tag(v6: bool) -> String {
    if v6 {
        format!("{RULE_TAG}-v6")
    } else {
        RULE_TAG.to_string()
    }
}

impl Agent<'_> {
    /// Addresses on the devices, forwarding, masquerade, cni0 check.
    pub fn setup_node(&mut self) -> Result<()> {
        let own = self.own_key();
        for p in &mut self.planes {
            if let Some(sn) = own.get(p.v6()) {
                p.ensure_addr(sn)?;
            }
        }
        let ns = netkit::Netns::current()?;
        if self.net.v4.is_some() {
            netkit::sysctl::set_in(&ns, "net/ipv4/ip_forward", "1")?;
        }
        if self.net.v6.is_some() {
            netkit::sysctl::set_in(&ns, "net/ipv6/conf/all/forwarding", "1")?;
        }
        self.firewall()?;
        if let Some(sn) = own.v4 {
            let mut nl = netkit::Netlink::open()?;
            super::backend::cni0::reconcile_cni0(&mut nl, sn)?;
        }
        Ok(())
    }

    pub(super) fn firewall(&mut self) -> Result<()> {
        let own = self.own_key();
        let mut masq = false;
        for v6 in [false, true] {
            let Some(range) = self.net.range(v6).copied() else {
                continue;
            };
            let net = range.network;
            if let Err(e) = firewall::ensure_forward_accept(&forward_tag(v6), net) {
                log(&format!(
                    "warning: cannot add the forward accept rules for {net}: {e}"
                ));
            }
            // The nft accept above cannot overrule an iptables FORWARD
            // policy DROP (Docker's); only an ACCEPT in that chain can.
            match firewall::ensure_iptables_forward_accept(net) {
                Ok(firewall::IptForward::Written) => log(&format!(
                    "allowed forwarding to and from {net} in {} filter FORWARD (chain {}), so \
                     a FORWARD policy DROP (as Docker sets) does not cut pod traffic",
                    if v6 { "ip6tables" } else { "iptables" },
                    firewall::IPT_CHAIN
                )),
                Ok(_) => {}
                Err(e) => log(&format!(
                    "warning: cannot add the iptables forward accept rules for {net}: {e}"
                )),
            }
            if self.a.ip_masq {
                if let Some(subnet) = own.get(v6) {
                    masq = true;
                    if firewall::ensure_node_masquerade(RULE_TAG, subnet, &[net])? {
                        log(&format!(
                            "masquerading traffic from {subnet} to outside {net}"
                        ));
                    }
                }
            }
        }
        if !masq {
            firewall::remove_node_masquerade(RULE_TAG)?;
        }
        Ok(())
    }

    pub fn write_env(&self) -> Result<()> {
        let own = self.own_key();
        let mtu = self
            .planes
            .iter()
            .map(|p| p.mtu(self.ext.mtu))
            .min()
            .unwrap_or(self.ext.mtu);
        let v4 = self.net.v4.map(|r| r.network).zip(own.get(false));
        let v6 = self.net.v6.map(|r| r.network).zip(own.get(true));
        let text = env::render(v4, v6, mtu, self.a.ip_masq);
        env::write_atomic(&self.a.subnet_file, &text)?;
        log(&format!("wrote {}", self.a.subnet_file.display()));
        Ok(())
    }

    /// A lease as this node's backend accepts it, or why not.
    pub(super) fn remote(&self, kv: &Kv) -> Result<Lease, String> {
        let l = Lease::parse(&kv.key, &kv.value)?;
        if l.attrs.backend != self.net.backend {
            return Err(format!(
                "backend {:?}, not {}",
                l.attrs.backend, self.net.backend
            ));
        }
        if super::iface::names_us(&l.attrs, &self.ext) {
            return Err("it names this node's own address".into());
        }
        // A subnet of ours claimed by another lease cannot be routed to
        // that node (the kernel refuses our own address as a gateway, and
        // vxlan's neighbour and FDB entries would be written and swept on
        // every resync): refuse it as a whole, once, in plain words.
        if let Some(own) = self.own.as_ref().map(|o| o.key) {
            for p in &self.planes {
                let (Some(theirs), Some(ours)) = (l.key.get(p.v6()), own.get(p.v6())) else {
                    continue;
                };
                if theirs.contains(&ours) || ours.contains(&theirs) {
                    return Err(format!(
                        "its subnet {theirs} overlaps this node's own {ours}: two nodes claim \
                         it; delete one of the two leases and restart that node's agent so \
                         that it leases another subnet"
                    ));
                }
            }
        }
        Ok(l)
    }

    pub(super) fn skip(&mut self, key: &str, why: String) {
        if self.skipped.get(key) != Some(&why) {
            log(&format!("ignoring lease {key}: {why}"));
            self.skipped.insert(key.to_string(), why);
        }
    }

    /// Program every family of the leases `ls` (key, lease) that both
    /// sides run, one batch per plane; `note` ends the log lines (`None`:
    /// no log line, for the first list at start).
    pub fn add_leases(&mut self, ls: &[(String, Lease)], note: Option<&str>) {
        self.programmed += 1;
        let mut problems: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        let mut lines = Vec::new();
        for p in &mut self.planes {
            let v6 = p.v6();
            let mut peers = Vec::new();
            let mut owners = Vec::new();
            for (path, l) in ls {
                let (Some(subnet), Some(public_ip)) = (l.key.get(v6), l.attrs.public(v6)) else {
                    continue;
                };
                peers.push(Peer {
                    subnet,
                    public_ip,
                    vxlan: l.attrs.vxlan(v6),
                });
                owners.push(path.as_str());
            }
            let known: Vec<bool> = peers.iter().map(|x| p.has(&x.subnet)).collect();
            let res = p.program_many(&peers);
            for (((peer, path), r), known) in peers.iter().zip(owners).zip(res).zip(known) {
                match r {
                    Ok(Some(via)) => lines.push(joined(p, peer, via, known)),
                    Ok(None) => {}
                    Err(e) => problems
                        .entry(path)
                        .or_default()
                        .push(format!("{}: {e:#}", peer.subnet)),
                }
            }
        }
        if let Some(note) = note {
            log_some(&lines, note, "node(s) joined or changed");
        }
        let problems: Vec<(String, String)> = problems
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.join("; ")))
            .collect();
        let ok: Vec<&String> = ls
            .iter()
            .map(|(path, _)| path)
            .filter(|path| !problems.iter().any(|(k, _)| k == *path))
            .collect();
        for path in &ok {
            self.skipped.remove(*path);
        }
        let failed: Vec<String> = problems.iter().map(|(k, _)| k.clone()).collect();
        self.programmed_keys(&ok, &failed);
        for (path, why) in problems {
            self.skip(&path, format!("cannot program it: {why}"));
        }
    }

    /// Unprogram `subnets`, one batch per plane; `why` ends the log line.
    pub fn remove_subnets(&mut self, subnets: &[IpNet], why: &str) {
        self.programmed += 1;
        let mut lines = Vec::new();
        for p in &mut self.planes {
            let mine: Vec<IpNet> = subnets
                .iter()
                .copied()
                .filter(|s| p.v6() == matches!(s, IpNet::V6(_)))
                .collect();
            for (s, r) in mine.iter().zip(p.unprogram_many(&mine)) {
                match r {
                    Ok(true) => lines.push(format!("lease {s} {why}: removed its route")),
                    Ok(false) => {}
                    Err(e) => log(&format!("cannot remove {s}: {e:#}")),
                }
            }
        }
        log_some(&lines, "", "lease(s) removed");
    }

    /// Apply a burst of watch events: the lease map first, then the
    /// kernel, one batch per plane (removals, then additions), then our
    /// own key's events.
    pub async fn apply_events(&mut self, evs: Vec<(EventType, Kv)>) -> Result<()> {
        let own_path = self.own.as_ref().map(|o| o.path.clone());
        let mut touched = BTreeSet::new();
        let mut own = Vec::new();
        for (kind, kv) in evs {
            if Some(&kv.key) == own_path.as_ref() {
                own.push((kind, kv));
                continue;
            }
            touched.insert(kv.key.clone());
            match kind {
                EventType::Put => self.leases.insert(kv),
                EventType::Delete => self.leases.remove(&kv.key),
            }
        }
        let (kept, gone): (Vec<String>, Vec<String>) =
            touched.into_iter().partition(|k| self.leases.contains(k));
        let mut removed: Vec<IpNet> = gone.iter().flat_map(|k| subnets_of(k)).collect();
        self.remove_subnets(&removed, "was deleted or expired");
        for k in &gone {
            self.skipped.remove(k);
            self.failed.remove(k);
        }
        let mut usable = Vec::new();
        for k in &kept {
            let kv = self.leases.get(k).expect("held");
            match self.remote(kv) {
                Ok(l) => usable.push((k.clone(), l)),
                Err(why) => {
                    // A lease we programmed that no longer fits (its node
                    // switched to another backend): its routes go now.
                    let subnets = subnets_of(k);
                    self.remove_subnets(&subnets, &format!("is no longer usable ({why})"));
                    removed.extend(subnets);
                    self.skip(k, why);
                }
            }
        }
        // A subnet another key still names is programmed again from it.
        let mut again: BTreeSet<String> = removed
            .iter()
            .flat_map(|s| self.leases.naming(s))
            .filter(|k| !kept.contains(k))
            .cloned()
            .collect();
        again.retain(|k| !usable.iter().any(|(u, _)| u == k));
        for k in again {
            let kv = self.leases.get(&k).expect("held");
            if let Ok(l) = self.remote(kv) {
                usable.push((k, l));
            }
        }
        self.add_leases(&usable, Some(""));
        for (kind, kv) in own {
            self.on_own_event(kind, &kv).await?;
        }
        Ok(())
    }

    /// An event on our own lease key.
    async fn on_own_event(&mut self, kind: EventType, kv: &Kv) -> Result<()> {
        match kind {
            EventType::Put => {
                if kv.value != self.value().as_bytes() {
                    log("someone else wrote our lease key; acquiring a lease again");
                    self.reacquire().await?;
                } else if self.own.as_ref().is_some_and(|o| o.lease != kv.lease) {
                    // Its TTL removed or changed; act on what etcd holds
                    // now, not on an event that may be older than our
                    // last renewal.
                    if let Some(cur) = self.store.get(&kv.key).await? {
                        if cur.value == self.value().as_bytes() {
                            self.follow_own_lease(&cur).await;
                        }
                    }
                }
            }
            EventType::Delete => {
                // A delete older than our current key is stale: e.g. the
                // expiry of a lease that ran out while the agent was
                // stopped (SIGSTOP), seen only after the renewal had
                // already put the key back.
                let lease = self.own.as_ref().map_or(0, |o| o.lease);
                if let Some(cur) = self.store.get(&kv.key).await? {
                    if cur.mod_revision > kv.mod_revision
                        && cur.lease == lease
                        && cur.value == self.value().as_bytes()
                    {
                        return Ok(());
                    }
                }
                log(&format!(
                    "our lease {} was deleted or expired in etcd (flanneld would exit \
                     here); acquiring it again",
                    kv.key
                ));
                self.reacquire().await?;
            }
        }
        Ok(())
    }
}

/// The log line of a peer programmed (`known`: it was before, so it
/// changed).
fn joined(p: &Plane, peer: &Peer, via: Via, known: bool) -> String {
    format!(
        "node {} (subnet {}{}) {}: {}",
        peer.public_ip,
        peer.subnet,
        peer.vxlan
            .filter(|_| via == Via::Tunnel)
            .map(|d| format!(", VTEP {}", netkit::fmt_mac(&d.vtep_mac)))
            .unwrap_or_default(),
        if known { "changed" } else { "joined" },
        match via {
            Via::Tunnel => format!("route via {}", p.name()),
            Via::Direct => format!("route via {} (direct)", peer.public_ip),
        }
    )
}

/// Log each line (with `note` appended) when there are a few; one summary
/// line naming the first ones when a burst brought many.
fn log_some(lines: &[String], note: &str, what: &str) {
    const EACH: usize = 16;
    if lines.len() <= EACH {
        for l in lines {
            log(&format!("{l}{note}"));
        }
        return;
    }
    let first: Vec<&str> = lines.iter().take(3).map(String::as_str).collect();
    log(&format!(
        "{} {what}{note}, among them: {}; …",
        lines.len(),
        first.join("; ")
    ));
}
