//! Keeping the node in step: its own setup (device addresses, forwarding,
//! masquerade, subnet.env) and every other lease programmed into the
//! planes, from watch events, periodic resyncs and device checks.

use std::collections::BTreeSet;

use anyhow::Result;
use etcd_client::EventType;
use ipnet::IpNet;
use netkit::firewall;

use super::backend::{Peer, Plane, Via};
use super::run::Agent;
use super::{debug, env, log, RULE_TAG};
use crate::etcd::Kv;
use crate::lease::{parse_key, Lease};

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

    fn firewall(&mut self) -> Result<()> {
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
                    firewall::forward::IPT_CHAIN
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
    fn remote(&self, kv: &Kv) -> Result<Lease, String> {
        let l = Lease::parse(&kv.key, &kv.value)?;
        if l.attrs.backend != self.net.backend {
            return Err(format!(
                "backend {:?}, not {}",
                l.attrs.backend, self.net.backend
            ));
        }
        if super::own::names_us(&l.attrs, &self.ext) {
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

    fn skip(&mut self, key: &str, why: String) {
        if self.skipped.get(key) != Some(&why) {
            log(&format!("ignoring lease {key}: {why}"));
            self.skipped.insert(key.to_string(), why);
        }
    }

    /// Program every family of `l` that both sides run; `note` ends the
    /// log line (`None`: no log line, for the first read at start).
    fn add_lease(&mut self, path: &str, l: &Lease, note: Option<&str>) {
        let mut problems = Vec::new();
        for p in &mut self.planes {
            let v6 = p.v6();
            let (Some(subnet), Some(public_ip)) = (l.key.get(v6), l.attrs.public(v6)) else {
                continue;
            };
            let peer = Peer {
                subnet,
                public_ip,
                vxlan: l.attrs.vxlan(v6),
            };
            let known = p.known().contains(&subnet);
            match p.program(&peer) {
                Ok(Some(via)) => {
                    if let Some(note) = note {
                        log(&format!(
                            "node {public_ip} (subnet {subnet}{}) {}{note}: {}",
                            peer.vxlan
                                .filter(|_| via == Via::Tunnel)
                                .map(|d| format!(", VTEP {}", netkit::fmt_mac(&d.vtep_mac)))
                                .unwrap_or_default(),
                            if known { "changed" } else { "joined" },
                            match via {
                                Via::Tunnel => format!("route via {}", p.name()),
                                Via::Direct => format!("route via {public_ip} (direct)"),
                            }
                        ))
                    }
                }
                Ok(None) => {}
                Err(e) => problems.push(format!("{subnet}: {e:#}")),
            }
        }
        if problems.is_empty() {
            self.skipped.remove(path);
        } else {
            self.skip(path, format!("cannot program it: {}", problems.join("; ")));
        }
    }

    fn remove_subnet(&mut self, subnet: IpNet, why: &str) {
        for p in &mut self.planes {
            if p.v6() != matches!(subnet, IpNet::V6(_)) {
                continue;
            }
            match p.unprogram(subnet) {
                Ok(true) => log(&format!("lease {subnet} {why}: removed its route")),
                Ok(false) => {}
                Err(e) => log(&format!("cannot remove {subnet}: {e:#}")),
            }
        }
    }

    /// Unprogram the subnets lease key `key` names.
    fn remove_key(&mut self, key: &str, why: &str) {
        if let Some(k) = parse_key(key) {
            for sn in [k.get(false), k.get(true)].into_iter().flatten() {
                self.remove_subnet(sn, why);
            }
        }
    }

    /// Read every lease and make the kernel match (only what differs);
    /// check our own lease. `quiet`: do not log each lease (the first read
    /// at start). Returns the store revision of the read.
    pub async fn resync(&mut self, quiet: bool) -> Result<i64> {
        let started = std::time::Instant::now();
        let res = self.resync_inner(quiet).await;
        super::metrics::get()
            .resync_seconds
            .observe(started.elapsed().as_secs_f64());
        res
    }

    async fn resync_inner(&mut self, quiet: bool) -> Result<i64> {
        let (kvs, rev) = self.store.list(&self.prefix).await?;
        let own_path = self.own.as_ref().map(|o| o.path.clone());
        let (mut own_ok, mut own_seen) = (false, false);
        let mut wanted = Vec::new();
        for kv in &kvs {
            if Some(&kv.key) == own_path.as_ref() {
                own_seen = true;
                own_ok = kv.value == self.value().as_bytes();
                if own_ok {
                    self.follow_own_lease(kv).await;
                }
                continue;
            }
            match self.remote(kv) {
                Ok(l) => wanted.push((kv.key.clone(), l)),
                Err(why) => self.skip(&kv.key, why),
            }
        }
        let note = (!quiet).then_some(" (found on resync)");
        for (path, l) in &wanted {
            self.add_lease(path, l, note);
        }
        let live: BTreeSet<IpNet> = wanted
            .iter()
            .flat_map(|(_, l)| [l.key.get(false), l.key.get(true)])
            .flatten()
            .collect();
        let gone: Vec<IpNet> = self
            .planes
            .iter()
            .flat_map(Plane::known)
            .filter(|s| !live.contains(s))
            .collect();
        for s in gone {
            self.remove_subnet(s, "is gone (found on resync)");
        }
        for p in &mut self.planes {
            let fixed = p.reconcile()?;
            super::metrics::get().repairs.inc_by(fixed as u64);
        }
        if !own_ok {
            log(&format!(
                "our lease {} {} in etcd (found on resync); acquiring it again",
                own_path.as_deref().unwrap_or("-"),
                if own_seen {
                    "was changed by someone else"
                } else {
                    "is gone (expired or deleted)"
                }
            ));
            self.reacquire().await?;
        }
        self.firewall()?;
        debug(&format!(
            "resync at etcd revision {rev}: {} key(s), {} usable lease(s) of other nodes",
            kvs.len(),
            wanted.len()
        ));
        Ok(rev)
    }

    pub async fn on_event(&mut self, kind: EventType, kv: &Kv) -> Result<()> {
        let own_path = self.own.as_ref().map(|o| o.path.clone());
        let is_own = Some(&kv.key) == own_path.as_ref();
        match kind {
            EventType::Put if is_own => {
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
            EventType::Put => match self.remote(kv) {
                Ok(l) => self.add_lease(&kv.key, &l, Some("")),
                Err(why) => {
                    // A lease we programmed that no longer fits (its node
                    // switched to another backend): its routes go now, as
                    // the resync would drop them, not at the next one.
                    self.remove_key(&kv.key, &format!("is no longer usable ({why})"));
                    self.skip(&kv.key, why);
                }
            },
            EventType::Delete if is_own => {
                // A delete older than our current key is stale: e.g. the
                // expiry of a lease that ran out while the agent was
                // stopped (SIGSTOP), seen only after the renewal had
                // already put the key back.
                let lease = self.own.as_ref().map_or(0, |o| o.lease);
                if let Ok(Some(cur)) = self.store.get(&kv.key).await {
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
            EventType::Delete => {
                self.remove_key(&kv.key, "was deleted or expired");
                self.skipped.remove(&kv.key);
            }
        }
        Ok(())
    }

    /// A device deleted or changed by someone else: rebuild it and
    /// everything on it; its address, routes, neighbour or FDB entries (or
    /// host-gw routes) removed: put them back.
    pub async fn check_devices(&mut self) {
        let own = self.own_key();
        let mut rebuilt = false;
        for p in &mut self.planes {
            let Some(sn) = own.get(p.v6()) else { continue };
            let res = (|| -> Result<()> {
                if p.intact()? {
                    let fixed = p.restore(sn)?;
                    if !fixed.is_empty() {
                        super::metrics::get().repairs.inc_by(fixed.len() as u64);
                        log(&format!(
                            "{}: put back what someone removed: {}",
                            p.name(),
                            fixed.join(", ")
                        ));
                    }
                    return Ok(());
                }
                log(&format!(
                    "{} disappeared or was changed by someone else; recreating it",
                    p.name()
                ));
                super::metrics::get().repairs.inc();
                p.ensure_device()?;
                p.ensure_addr(sn)?;
                // Every lease we know goes back at once, even with etcd
                // away; the resync then catches up with changes.
                p.reconcile()?;
                rebuilt = true;
                Ok(())
            })();
            if let Err(e) = res {
                log(&format!("cannot repair {}: {e:#}", p.name()));
            }
        }
        if rebuilt {
            if let Err(e) = self.setup_node() {
                log(&format!("cannot set the node up again: {e:#}"));
            }
            if let Err(e) = self.resync(false).await {
                log(&format!(
                    "cannot read the leases to reprogram the devices yet ({e:#}); next \
                     resync will"
                ));
            }
        }
    }
}
