//! Simulated flanneld nodes for agent load tests (`tests/tests/agent_churn.rs`):
//! leases written to etcd exactly as flanneld writes them (key, JSON, etcd
//! lease), churned by a seeded generator (leave by delete, revoke or
//! expiry; join; restart with a new VtepMAC and/or PublicIP; move to a new
//! subnet), a model of what etcd must hold, and the wait until real agents'
//! vxlan tables equal the live leases.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::agent_load::{tables_by_iproute2, EtcdV3, TableReader, VxlanTables};
use crate::cluster::{AgentNode, PREFIX};
use crate::exec::nsenter;

/// A step that has not converged (or a key not expired) after this long
/// fails the test.
pub const DEADLINE: Duration = Duration::from_secs(45);
/// TTL of the etcd lease of a simulated node meant to expire (etcd's
/// minimum with default heartbeat/election settings).
const EXPIRE_TTL: i64 = 2;
/// TTL of every other simulated lease.
const LONG_TTL: i64 = 3600;

/// xorshift64*: reproducible from the printed seed.
pub struct Rng(pub u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// One simulated flanneld node.
#[derive(Debug, Clone)]
pub struct Sim {
    /// Third octet of 10.2.X.0/24.
    pub subnet: u8,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    pub lease: i64,
}

impl Sim {
    pub fn key(&self) -> String {
        format!("{PREFIX}/subnets/10.2.{}.0-24", self.subnet)
    }

    /// flanneld's value, byte for byte (`lease.LeaseAttrs`, vxlan backend).
    pub fn value(&self) -> String {
        format!(
            r#"{{"PublicIP":"{}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{}"}}}}"#,
            self.ip,
            netkit::fmt_mac(&self.mac)
        )
    }
}

/// Kernel changes on a node's flannel.1 behind its agent's back, as
/// command lines: the route of `sims[0]` and the ARP entry of `sims[1]`
/// deleted, `sims[2]`'s ARP entry and `sims[4]`'s FDB destination
/// (172.31.9.9) changed, `sims[3]`'s FDB entry deleted, and a route
/// (10.2.251.0/24), ARP entry (10.2.251.0) and FDB entry
/// (0a:58:5e:ff:ff:02 dst 172.31.9.8) nobody leased added.
pub fn drift(sims: &[Sim]) -> Vec<String> {
    let net = |s: &Sim| format!("10.2.{}.0", s.subnet);
    let mac = |s: &Sim| netkit::fmt_mac(&s.mac);
    vec![
        format!("ip route del {}/24 dev flannel.1", net(&sims[0])),
        format!("ip neigh del {} dev flannel.1", net(&sims[1])),
        format!(
            "ip neigh replace {} lladdr 0a:58:5e:ff:ff:01 dev flannel.1 nud permanent",
            net(&sims[2])
        ),
        format!("bridge fdb del {} dev flannel.1 self", mac(&sims[3])),
        format!(
            "bridge fdb replace {} dev flannel.1 dst 172.31.9.9 self permanent",
            mac(&sims[4])
        ),
        "ip route add 10.2.251.0/24 via 10.2.251.0 dev flannel.1 onlink".into(),
        "ip neigh add 10.2.251.0 lladdr 0a:58:5e:ff:ff:02 dev flannel.1 nud permanent".into(),
        "bridge fdb add 0a:58:5e:ff:ff:02 dev flannel.1 dst 172.31.9.8 self permanent".into(),
    ]
}

/// How a simulated node leaves.
#[derive(Debug, Clone, Copy)]
pub enum Leave {
    Delete,
    Revoke,
    Expire,
}

/// The simulated nodes and the etcd they write to.
pub struct Fleet {
    pub etcd: EtcdV3,
    pub live: BTreeMap<u8, Sim>,
    /// Subnets of the real agents (never given to a simulated node).
    reserved: BTreeSet<u8>,
    /// Subnets whose key is waiting to expire (not free yet).
    expiring: BTreeSet<u8>,
    /// Counter for fresh PublicIPs and MACs.
    serial: u32,
    rng: Rng,
    pub counts: BTreeMap<&'static str, u64>,
    /// Every etcd write, for the message when etcd and the model differ.
    journal: std::cell::RefCell<Vec<String>>,
}

impl Fleet {
    /// No simulated node yet; `reserved` subnets (third octets of
    /// 10.2.X.0/24, the real agents') are never handed out; `seed` drives
    /// every choice.
    pub fn new(etcd: EtcdV3, reserved: BTreeSet<u8>, seed: u64) -> Fleet {
        Fleet {
            etcd,
            live: BTreeMap::new(),
            reserved,
            expiring: BTreeSet::new(),
            serial: 0,
            rng: Rng(seed),
            counts: BTreeMap::new(),
            journal: Default::default(),
        }
    }

    /// [`Fleet::new`] with `count` simulated nodes joined.
    pub fn joined(etcd: EtcdV3, reserved: BTreeSet<u8>, seed: u64, count: usize) -> Fleet {
        let mut fleet = Fleet::new(etcd, reserved, seed);
        for _ in 0..count {
            fleet.join();
        }
        fleet
    }

    fn fresh_ip(&mut self) -> Ipv4Addr {
        self.serial += 1;
        let n = self.serial;
        // 172.30.0.0/16: no node is there, FDB entries only name it.
        Ipv4Addr::new(172, 30, (n / 250) as u8, (n % 250 + 1) as u8)
    }

    fn fresh_mac(&mut self) -> [u8; 6] {
        self.serial += 1;
        let b = self.serial.to_be_bytes();
        [0x0a, 0x58, 0x5e, b[1], b[2], b[3]]
    }

    fn free_subnet(&mut self) -> u8 {
        let free: Vec<u8> = (1..=250u8)
            .filter(|s| {
                !self.live.contains_key(s)
                    && !self.reserved.contains(s)
                    && !self.expiring.contains(s)
            })
            .collect();
        assert!(!free.is_empty(), "no free subnet for a simulated node");
        free[self.rng.below(free.len() as u64) as usize]
    }

    fn pick_live(&mut self) -> u8 {
        let keys: Vec<u8> = self.live.keys().copied().collect();
        keys[self.rng.below(keys.len() as u64) as usize]
    }

    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    /// Grant an etcd lease of `ttl` s and put `sim` with it (flanneld:
    /// Grant, then Put with the lease). Returns the lease.
    fn write(&self, sim: &Sim, ttl: i64) -> i64 {
        let (k, v) = (sim.key(), sim.value());
        let id = self
            .etcd
            .must("write a simulated lease", |mut c| async move {
                let id = c.lease_grant(ttl, None).await?.id();
                c.put(k, v, Some(etcd_client::PutOptions::new().with_lease(id)))
                    .await?;
                Ok(id)
            });
        self.note(format!(
            "put {} ({}, {}) lease {id:x} ttl {ttl}",
            sim.key(),
            sim.ip,
            netkit::fmt_mac(&sim.mac)
        ));
        id
    }

    fn note(&self, what: String) {
        self.journal.borrow_mut().push(what);
    }

    /// Delete `key`, then revoke its etcd lease (the key's Delete event
    /// comes first, as when flanneld's key is removed by hand).
    fn delete(&self, key: &str, lease: i64) {
        let k = key.to_string();
        self.etcd.must("delete a key", |mut c| async move {
            c.delete(k, None).await.map(|_| ())
        });
        self.note(format!("delete {key}"));
        self.revoke(lease);
    }

    fn revoke(&self, lease: i64) {
        self.etcd.must("revoke a lease", |mut c| async move {
            c.lease_revoke(lease).await.map(|_| ())
        });
        self.note(format!("revoke {lease:x}"));
    }

    pub fn join(&mut self) {
        let mut sim = Sim {
            subnet: self.free_subnet(),
            ip: self.fresh_ip(),
            mac: self.fresh_mac(),
            lease: 0,
        };
        sim.lease = self.write(&sim, LONG_TTL);
        self.live.insert(sim.subnet, sim);
        self.count("join");
    }

    /// Same subnet, new VtepMAC and/or PublicIP, on a new etcd lease (the
    /// old one revoked afterwards, as a renewal does).
    fn restart(&mut self, variant: u64) {
        let s = self.pick_live();
        let mut sim = self.live[&s].clone();
        let old = sim.lease;
        if variant != 1 {
            sim.mac = self.fresh_mac();
        }
        if variant != 0 {
            sim.ip = self.fresh_ip();
        }
        sim.lease = self.write(&sim, LONG_TTL);
        self.revoke(old);
        self.live.insert(s, sim);
        self.count(["restart-mac", "restart-ip", "restart-mac-ip"][variant as usize % 3]);
    }

    /// Same node (VtepMAC, PublicIP) on a new subnet. With `new_first` the
    /// new key is put before the old one is deleted, so for a moment two
    /// leases share the VtepMAC; otherwise the old key goes first.
    fn relocate(&mut self, new_first: bool) {
        let s = self.pick_live();
        // Chosen while the old subnet still counts as taken: moving to the
        // same subnet would delete the key just written.
        let to = self.free_subnet();
        let mut sim = self.live.remove(&s).expect("live");
        let old_key = sim.key();
        let old_lease = sim.lease;
        if !new_first {
            self.delete(&old_key, old_lease);
        }
        sim.subnet = to;
        sim.lease = self.write(&sim, LONG_TTL);
        if new_first {
            self.delete(&old_key, old_lease);
        }
        self.live.insert(sim.subnet, sim);
        self.count(if new_first {
            "move-new-first"
        } else {
            "move-old-first"
        });
    }

    /// Remove one node; for `Expire` returns its key (gone once etcd
    /// expires the 2 s lease it is moved to).
    fn leave(&mut self, how: Leave) -> Option<String> {
        let s = self.pick_live();
        let sim = self.live.remove(&s).expect("live");
        match how {
            Leave::Delete => {
                self.delete(&sim.key(), sim.lease);
                self.count("leave-delete");
                None
            }
            Leave::Revoke => {
                self.revoke(sim.lease);
                self.count("leave-revoke");
                None
            }
            Leave::Expire => {
                // Same value on a short lease: the agents see a Put that
                // changes nothing, then the expiry's Delete.
                self.write(&sim, EXPIRE_TTL);
                self.revoke(sim.lease);
                self.expiring.insert(sim.subnet);
                self.count("leave-expire");
                Some(sim.key())
            }
        }
    }

    /// Wait until etcd has expired `keys`.
    pub fn wait_expired(&mut self, keys: &[String]) {
        self.expiring.clear();
        if keys.is_empty() {
            return;
        }
        let start = Instant::now();
        loop {
            let (kvs, _) = self.etcd.list(&format!("{PREFIX}/subnets/"));
            if keys.iter().all(|k| !kvs.contains_key(k)) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "etcd did not expire {keys:?} within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One churn step; returns the keys left to expire.
    pub fn step(&mut self, target: usize, step: u64) -> Vec<String> {
        let mut expiring = Vec::new();
        let leaves = 1 + self.rng.below(3) as usize;
        for i in 0..leaves {
            let how = match (step as usize + i) % 3 {
                0 => Leave::Delete,
                1 => Leave::Revoke,
                _ => Leave::Expire,
            };
            expiring.extend(self.leave(how));
        }
        let restarts = 1 + self.rng.below(2);
        for _ in 0..restarts {
            let v = self.rng.below(3);
            self.restart(v);
        }
        self.relocate(step % 2 == 0);
        // Back to about `target` nodes, give or take one.
        let joins = (target + self.rng.below(3) as usize).saturating_sub(self.live.len() + 1);
        for _ in 0..joins {
            self.join();
        }
        expiring
    }

    /// etcd's leases must be exactly the model (the real agents' aside):
    /// otherwise the test itself is wrong, and the message names the
    /// differences, the missing keys' etcd leases and the last writes.
    /// Returns every lease etcd holds: what the agents must follow.
    #[track_caller]
    pub fn check_store(&self, real: &BTreeSet<String>) -> BTreeMap<String, String> {
        let (kvs, _) = self.etcd.list(&format!("{PREFIX}/subnets/"));
        let sims: BTreeMap<String, String> = kvs
            .iter()
            .filter(|(k, _)| !real.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let model: BTreeMap<String, String> =
            self.live.values().map(|s| (s.key(), s.value())).collect();
        if sims == model {
            return kvs;
        }
        let mut why = Vec::new();
        for (k, v) in &model {
            match sims.get(k) {
                None => why.push(format!("missing {k} = {v}")),
                Some(got) if got != v => why.push(format!("{k} = {got}, want {v}")),
                Some(_) => {}
            }
        }
        for k in sims.keys().filter(|k| !model.contains_key(*k)) {
            why.push(format!("extra {k} = {}", sims[k]));
        }
        for sim in self.live.values().filter(|s| !sims.contains_key(&s.key())) {
            let id = sim.lease;
            let ttl = self.etcd.call(|mut c| async move {
                let o = etcd_client::LeaseTimeToLiveOptions::new().with_keys();
                let r = c.lease_time_to_live(id, Some(o)).await?;
                Ok(format!("TTL {} s, {} key(s)", r.ttl(), r.keys().len()))
            });
            why.push(format!("  its etcd lease {id:x}: {ttl:?}"));
        }
        let journal = self.journal.borrow();
        let last = &journal[journal.len().saturating_sub(60)..];
        panic!(
            "etcd does not hold the simulated leases the test wrote:\n{}\nlast writes:\n{}",
            why.join("\n"),
            last.join("\n")
        );
    }
}

/// `…/subnets/10.2.7.0-24` + flanneld JSON → expected remote entries.
pub fn expected_for(leases: &BTreeMap<String, String>, own_key: &str) -> VxlanTables {
    let mut parsed = Vec::new();
    for (k, v) in leases.iter().filter(|(k, _)| k.as_str() != own_key) {
        let name = k.rsplit('/').next().expect("key");
        let (net, len) = name.split_once('-').expect("subnet key");
        let j: serde_json::Value = serde_json::from_str(v).expect("lease JSON");
        let ip = j["PublicIP"].as_str().expect("PublicIP").to_string();
        let mac = j["BackendData"]["VtepMAC"]
            .as_str()
            .expect("VtepMAC")
            .to_string();
        parsed.push((net.to_string(), len.parse::<u8>().expect("len"), ip, mac));
    }
    VxlanTables::expected(
        parsed
            .iter()
            .map(|(n, l, i, m)| (n.as_str(), *l, i.as_str(), m.as_str())),
    )
}

/// A real agent node as the test watches it.
pub struct Watched<'a> {
    pub node: &'a AgentNode,
    pub key: String,
    pub reader: TableReader,
    pub pid: u32,
}

impl<'a> Watched<'a> {
    /// `node`, whose agent runs as `pid`, watched through its flannel.1.
    pub fn of(node: &'a AgentNode, pid: u32) -> Watched<'a> {
        Watched {
            node,
            key: node.lease_key(),
            reader: TableReader::new(node.ns.path(), "flannel.1"),
            pid,
        }
    }
}

/// Wait until every node's tables equal what the leases say; returns how
/// long it took. Panics with the difference after [`DEADLINE`].
pub fn converge(nodes: &mut [Watched], leases: &BTreeMap<String, String>, what: &str) -> Duration {
    let start = Instant::now();
    let want: Vec<VxlanTables> = nodes.iter().map(|n| expected_for(leases, &n.key)).collect();
    let mut done = vec![false; nodes.len()];
    loop {
        let mut last = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            if done[i] {
                continue;
            }
            match n.reader.read() {
                Ok(Some(t)) if t == want[i] => done[i] = true,
                Ok(Some(t)) => last.push(format!("{}: {}", n.node.ip, t.diff(&want[i]))),
                Ok(None) => last.push(format!("{}: no flannel.1", n.node.ip)),
                Err(e) => last.push(format!("{}: {e}", n.node.ip)),
            }
        }
        if done.iter().all(|d| *d) {
            let took = start.elapsed();
            // Independent check with iproute2 of the state netkit read.
            for (i, n) in nodes.iter().enumerate() {
                let t = tables_by_iproute2(n.node.ns.path(), "flannel.1");
                assert!(
                    t == want[i],
                    "{what}: iproute2 disagrees on {}: {}",
                    n.node.ip,
                    t.diff(&want[i])
                );
            }
            return took;
        }
        if start.elapsed() > DEADLINE {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| format!("--- agent log {} ---\n{}", n.node.ip, tail(&n.node.log())))
                .collect();
            panic!(
                "{what}: not converged after {DEADLINE:?}:\n{}\n{}",
                last.join("\n"),
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A `ping` running in a pod for the whole churn; killed by PID on drop.
pub struct Pinger(Option<Child>);

impl Pinger {
    pub fn start(pod: &std::path::Path, ip: &str, secs: u64) -> Pinger {
        let child = nsenter(
            pod,
            &["ping", "-n", "-q", "-i", "0.2", "-w", &secs.to_string(), ip],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ping");
        Pinger(Some(child))
    }

    /// (transmitted, received) once ping has finished.
    pub fn finish(mut self) -> (u64, u64) {
        let child = self.0.take().expect("running");
        let out = child.wait_with_output().expect("wait for ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or_else(|| panic!("no ping summary:\n{text}"));
        let num = |word: &str| {
            line.split(',')
                .find(|p| p.contains(word))
                .and_then(|p| p.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (num("transmitted"), num("received"))
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
