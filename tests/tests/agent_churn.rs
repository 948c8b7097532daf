//! Load on the agent (issue 8): two real `netboot agent` nodes (a pod each)
//! and 100 simulated nodes whose leases the test writes to etcd in
//! flanneld's exact format, with churn: every step some simulated nodes
//! leave (key deleted, etcd lease revoked, or lease left to expire), some
//! join, some restart (same subnet, new VtepMAC and/or PublicIP) and one
//! moves (new subnet, same VtepMAC and PublicIP). After every step both
//! agents' routes, permanent ARP entries and FDB entries on flannel.1 must
//! equal exactly the live leases other than their own; the time to get
//! there, from the step's last etcd write (or the expiry of its keys), is
//! recorded (the floor, ~6 ms, is one read of both nodes' tables by this
//! debug-built test). Pod traffic between the real nodes runs throughout.
//! Then etcd history is compacted, the etcd member restarted, and a paused
//! agent's watch cancelled by etcd for compaction: the agents must resync
//! from a fresh read and follow the watch again.
//!
//! A second test measures the periodic resync over 100 unchanged leases and
//! its repair of entries changed behind the agent's back.
//!
//! `NETBOOT_CHURN_SECS` (default 20) is the churn time, `NETBOOT_CHURN_NODES`
//! (default 100) the simulated nodes, `NETBOOT_CHURN_SEED` replays a run,
//! `NETBOOT_CHURN_RESYNC` sets the agents' `--resync-interval` (default
//! 60s). Prints `agent churn: …` and `agent resync: …` lines (campaign.sh
//! reads them). No timing is asserted; a step that never converges within
//! [`DEADLINE`] fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use netboot_tests::agent_support::{
    clock_ticks, tables_by_iproute2, EtcdV3, ProcSample, TableReader, VxlanTables,
};
use netboot_tests::cluster::{ping_within, AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::exec::nsenter;
use netboot_tests::require_root;

/// 250 subnets: room for 100 simulated nodes, 2 real ones and churn.
const CONFIG: &str = r#"{"Network":"10.2.0.0/16","SubnetMin":"10.2.1.0","SubnetMax":"10.2.250.0","Backend":{"Type":"vxlan"}}"#;
/// A step that has not converged after this long fails the test.
const DEADLINE: Duration = Duration::from_secs(45);
/// Time between the starts of two churn steps.
const PERIOD: Duration = Duration::from_secs(2);
/// TTL of the etcd lease of a simulated node meant to expire (etcd's
/// minimum with default heartbeat/election settings).
const EXPIRE_TTL: i64 = 2;
/// TTL of every other simulated lease.
const LONG_TTL: i64 = 3600;

fn env_num(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One simulated flanneld node.
#[derive(Debug, Clone)]
struct Sim {
    /// Third octet of 10.2.X.0/24.
    subnet: u8,
    ip: Ipv4Addr,
    mac: [u8; 6],
    lease: i64,
}

impl Sim {
    fn key(&self) -> String {
        format!("{PREFIX}/subnets/10.2.{}.0-24", self.subnet)
    }

    /// flanneld's value, byte for byte (`lease.LeaseAttrs`, vxlan backend).
    fn value(&self) -> String {
        format!(
            r#"{{"PublicIP":"{}","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{}"}}}}"#,
            self.ip,
            netkit::fmt_mac(&self.mac)
        )
    }
}

/// How a simulated node leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    Delete,
    Revoke,
    Expire,
}

/// The simulated nodes and the etcd they write to.
struct Fleet {
    etcd: EtcdV3,
    live: BTreeMap<u8, Sim>,
    /// Subnets of the real agents (never given to a simulated node).
    reserved: BTreeSet<u8>,
    /// Subnets whose key is waiting to expire (not free yet).
    expiring: BTreeSet<u8>,
    /// Counter for fresh PublicIPs and MACs.
    serial: u32,
    rng: Rng,
    counts: BTreeMap<&'static str, u64>,
    /// Every etcd write, for the message when etcd and the model differ.
    journal: std::cell::RefCell<Vec<String>>,
    /// The etcd member has been restarted (see [`Fleet::check_store`]).
    etcd_restarted: bool,
    /// Simulated keys etcd lost across its restart.
    lost_by_etcd: usize,
}

impl Fleet {
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

    fn join(&mut self) {
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
        let mut sim = self.live.remove(&s).expect("live");
        let old_key = sim.key();
        let old_lease = sim.lease;
        if !new_first {
            self.delete(&old_key, old_lease);
        }
        sim.subnet = self.free_subnet();
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
    fn wait_expired(&mut self, keys: &[String]) {
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
    fn step(&mut self, target: usize, step: u64) -> Vec<String> {
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

    /// etcd's leases must be exactly the model (the real agents' aside).
    /// Returns every lease etcd holds: what the agents must follow.
    ///
    /// After the etcd restart (`etcd_restarted`), keys the model has and
    /// etcd lost are reported (with the last writes and the lease's state)
    /// and dropped from the model instead of failing: that is etcd's
    /// business, not the agents', which must follow what etcd holds either
    /// way. Seen once in about 15 runs, a simulated key written right after
    /// the restart; the cause is not established (etcd 3.4 re-applying
    /// lease operations from its WAL after a restart, etcd#11935, is one
    /// candidate).
    #[track_caller]
    fn check_store(&mut self, real: &BTreeSet<String>) -> BTreeMap<String, String> {
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
        let mut only_missing = true;
        for (k, v) in &model {
            match sims.get(k) {
                None => why.push(format!("missing {k} = {v}")),
                Some(got) if got != v => {
                    only_missing = false;
                    why.push(format!("{k} = {got}, want {v}"));
                }
                Some(_) => {}
            }
        }
        for k in sims.keys().filter(|k| !model.contains_key(*k)) {
            only_missing = false;
            why.push(format!("extra {k} = {}", sims[k]));
        }
        let lost: Vec<u8> = self
            .live
            .values()
            .filter(|s| !sims.contains_key(&s.key()))
            .map(|s| s.subnet)
            .collect();
        for subnet in &lost {
            let id = self.live[subnet].lease;
            let ttl = self.etcd.call(|mut c| async move {
                let o = etcd_client::LeaseTimeToLiveOptions::new().with_keys();
                let r = c.lease_time_to_live(id, Some(o)).await?;
                Ok(format!("TTL {} s, {} key(s)", r.ttl(), r.keys().len()))
            });
            why.push(format!("  its etcd lease {id:x}: {ttl:?}"));
        }
        let journal = self.journal.borrow().clone();
        let last = &journal[journal.len().saturating_sub(60)..];
        let report = format!("{}\nlast writes:\n{}", why.join("\n"), last.join("\n"));
        assert!(
            self.etcd_restarted && only_missing,
            "etcd does not hold the simulated leases the test wrote:\n{report}"
        );
        eprintln!(
            "churn: WARNING: etcd lost {} simulated key(s) across its restart; the \
             agents must follow etcd:\n{report}",
            lost.len()
        );
        self.lost_by_etcd += lost.len();
        for subnet in lost {
            self.live.remove(&subnet);
        }
        kvs
    }
}

/// `…/subnets/10.2.7.0-24` + flanneld JSON → expected remote entries.
fn expected_for(leases: &BTreeMap<String, String>, own_key: &str) -> VxlanTables {
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
struct Watched<'a> {
    node: &'a AgentNode,
    key: String,
    reader: TableReader,
    pid: u32,
}

/// Wait until every node's tables equal what the leases say; returns how
/// long it took. Panics with the difference after [`DEADLINE`].
fn converge(nodes: &mut [Watched], leases: &BTreeMap<String, String>, what: &str) -> Duration {
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

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// A `ping` running in a pod for the whole churn; killed by PID on drop.
struct Pinger(Option<Child>);

impl Pinger {
    fn start(pod: &std::path::Path, ip: &str, secs: u64) -> Pinger {
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
    fn finish(mut self) -> (u64, u64) {
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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `60s`, `5m`, `90` (seconds) as `netboot agent` takes them.
fn netboot_agent_duration(s: &str) -> Duration {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .unwrap_or_else(|_| panic!("NETBOOT_CHURN_RESYNC={s:?}: use 30s, 5m, ..."));
    Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => panic!("NETBOOT_CHURN_RESYNC={s:?}: use 30s, 5m, ..."),
    })
}

/// Agent log lines that show a resync repairing what the watch missed.
fn repairs(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("found on resync") || l.contains("removing stale") || l.contains("repairing")
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn agents_converge_exactly_under_churn_of_100_simulated_nodes() {
    require_root();
    let secs = env_num("NETBOOT_CHURN_SECS", 20);
    let target = env_num("NETBOOT_CHURN_NODES", 100) as usize;
    assert!(
        (1..=200).contains(&target),
        "NETBOOT_CHURN_NODES={target}: 1..=200 (the range holds 250 subnets)"
    );
    let seed = env_num(
        "NETBOOT_CHURN_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1,
    );
    eprintln!("churn: seed {seed} (NETBOOT_CHURN_SEED replays), {target} nodes, {secs} s");

    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let ep = etcd.endpoints();
    let mut n1 = AgentNode::new(&ul, "c1", 71);
    let mut n2 = AgentNode::new(&ul, "c2", 72);
    // The agent's own default (60 s) unless NETBOOT_CHURN_RESYNC says.
    let resync = std::env::var("NETBOOT_CHURN_RESYNC").unwrap_or_else(|_| "60s".into());
    let args = [format!("--resync-interval={resync}")];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let agents_up = Instant::now();
    let pid1 = n1.start_agent(&ep, &args);
    let pid2 = n2.start_agent(&ep, &args);
    let s1 = n1.wait_subnet(DEADLINE);
    let s2 = n2.wait_subnet(DEADLINE);
    let (p1, ip1) = n1.add_pod("cp1");
    let (p2, ip2) = n2.add_pod("cp2");
    assert!(
        ping_within(n1.pod(p1), &ip2, DEADLINE),
        "pods do not reach each other before churn:\n{}",
        n1.log()
    );
    let real: BTreeSet<String> = [n1.lease_key(), n2.lease_key()].into();
    let third = |s: &str| -> u8 { s.split('.').nth(2).unwrap().parse().unwrap() };

    let member = &etcd.members[0];
    let mut fleet = Fleet {
        etcd: EtcdV3::new(member.ns.path(), &member.url()),
        live: BTreeMap::new(),
        reserved: [third(&s1), third(&s2)].into(),
        expiring: BTreeSet::new(),
        serial: 0,
        rng: Rng(seed),
        counts: BTreeMap::new(),
        journal: Default::default(),
        etcd_restarted: false,
        lost_by_etcd: 0,
    };
    let mut nodes = vec![
        Watched {
            node: &n1,
            key: n1.lease_key(),
            reader: TableReader::new(n1.ns.path(), "flannel.1"),
            pid: pid1,
        },
        Watched {
            node: &n2,
            key: n2.lease_key(),
            reader: TableReader::new(n2.ns.path(), "flannel.1"),
            pid: pid2,
        },
    ];

    // 100 nodes join at once.
    let t = Instant::now();
    for _ in 0..target {
        fleet.join();
    }
    let written = t.elapsed();
    let leases = fleet.check_store(&real);
    let initial = converge(&mut nodes, &leases, "initial join");
    eprintln!(
        "churn: {target} leases written in {:.2} s; agents converged {:.0} ms later",
        written.as_secs_f64(),
        initial.as_secs_f64() * 1e3
    );
    fleet.counts.clear();

    // Churn.
    let ticks = clock_ticks() as f64;
    let before: Vec<ProcSample> = nodes
        .iter()
        .map(|n| ProcSample::of(n.pid).expect("agent alive"))
        .collect();
    let pinger = Pinger::start(n1.pod(p1), &ip2, secs + 2);
    let churn_start = Instant::now();
    let mut lat = Vec::new();
    let mut step = 0u64;
    while churn_start.elapsed() < Duration::from_secs(secs) {
        let t0 = Instant::now();
        let expiring = fleet.step(target, step);
        fleet.wait_expired(&expiring);
        let leases = fleet.check_store(&real);
        let took = converge(&mut nodes, &leases, &format!("churn step {step}"));
        lat.push(took.as_secs_f64() * 1e3);
        for n in &nodes {
            assert!(
                ProcSample::of(n.pid).is_some(),
                "agent on {} exited:\n{}",
                n.node.ip,
                n.node.log()
            );
        }
        step += 1;
        if let Some(rest) = PERIOD.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let wall = churn_start.elapsed().as_secs_f64();
    let after: Vec<ProcSample> = nodes
        .iter()
        .map(|n| ProcSample::of(n.pid).expect("agent alive"))
        .collect();
    let (sent, got) = pinger.finish();
    eprintln!(
        "churn: pod {ip1} -> {ip2} during churn: {got}/{sent} pings answered; ops {:?}",
        fleet.counts
    );
    assert!(
        sent > 0 && got * 10 >= sent * 9,
        "cross-node pod traffic broke during churn: {got}/{sent} pings answered"
    );
    // Unless a periodic resync ran (NETBOOT_CHURN_RESYNC shorter than the
    // churn), the watch alone kept the agents exact: nothing was repaired
    // by a resync. (A resync racing the watch may legitimately "repair" an
    // event it read before the watch delivered it.)
    let resync_ran = agents_up.elapsed() >= netboot_agent_duration(&resync);
    for n in &nodes {
        let r = repairs(&n.node.log());
        eprintln!(
            "churn: agent on {}: {} resync repair(s)",
            n.node.ip,
            r.len()
        );
        for line in &r {
            eprintln!("churn:   {line}");
        }
        assert!(
            resync_ran || r.is_empty(),
            "agent on {} needed a resync to repair its tables:\n{}",
            n.node.ip,
            r.join("\n")
        );
    }

    // Nothing drifts once churn stops.
    std::thread::sleep(Duration::from_secs(2));
    let leases = fleet.check_store(&real);
    converge(&mut nodes, &leases, "settled after churn");

    // Compaction of the whole history, then the etcd member restarted with
    // churn right behind it: the agents lose their watch, resync from a
    // fresh read and watch again from its revision.
    let (_, rev) = fleet.etcd.list(PREFIX);
    fleet.etcd.must("compact", |mut c| async move {
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .map(|_| ())
    });
    let expiring = fleet.step(target, step);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_compact = converge(&mut nodes, &leases, "churn after compaction");
    let log_len: Vec<usize> = nodes.iter().map(|n| n.node.log().len()).collect();
    etcd.members[0].stop();
    etcd.members[0].restart();
    etcd.wait_healthy();
    fleet.etcd_restarted = true;
    let expiring = fleet.step(target, step + 1);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_restart = converge(&mut nodes, &leases, "churn after an etcd restart");
    for (n, from) in nodes.iter().zip(&log_len) {
        let log = n.node.log();
        assert!(
            log[*from..].contains("the lease watch broke"),
            "agent on {} did not notice the etcd restart:\n{}",
            n.node.ip,
            &log[*from..]
        );
    }
    // The watch is live again: one more step reaches the agents through it
    // (no periodic resync has run yet unless the run is long).
    let log_len: Vec<usize> = nodes.iter().map(|n| n.node.log().len()).collect();
    let expiring = fleet.step(target, step + 2);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    let after_rewatch = converge(&mut nodes, &leases, "churn after re-watch");
    for (n, from) in nodes.iter().zip(&log_len) {
        let later = repairs(&n.node.log()[*from..]);
        assert!(
            agents_up.elapsed() >= netboot_agent_duration(&resync) || later.is_empty(),
            "after the etcd restart, changes reached {} only by a resync:\n{}",
            n.node.ip,
            later.join("\n")
        );
    }

    // A watch etcd cancels because its history was compacted: node 1's
    // agent is paused (SIGSTOP) while etcd sends it more than the stream
    // buffers (400 writes of 32 KB to an ignored key), so etcd parks the
    // watcher behind; churn and a compaction follow; after SIGCONT etcd
    // answers the watch with its compact revision. The agent must resync
    // from a fresh read and watch again from there.
    let from = n1.log().len();
    signal(pid1, nix::sys::signal::Signal::SIGSTOP);
    let junk = format!("{PREFIX}/subnets/churn-flood");
    fleet.etcd.must("flood the watch", |mut c| async move {
        // More than the HTTP/2 stream window (2 MB) plus etcd's 128
        // buffered responses of the watch stream can hold.
        let blob = "x".repeat(32 << 10);
        for _ in 0..400 {
            c.put(junk.clone(), blob.clone(), None).await?;
        }
        c.delete(junk, None).await.map(|_| ())
    });
    let expiring = fleet.step(target, step + 3);
    fleet.wait_expired(&expiring);
    let (_, rev) = fleet.etcd.list(PREFIX);
    fleet.etcd.must("compact", |mut c| async move {
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .map(|_| ())
    });
    signal(pid1, nix::sys::signal::Signal::SIGCONT);
    let leases = fleet.check_store(&real);
    let after_cancel = converge(&mut nodes, &leases, "churn across a compacted watch");
    let log = n1.log()[from..].to_string();
    eprintln!(
        "churn: node 1 agent across the compacted watch:\n{}",
        tail(&log)
    );
    assert!(
        log.contains("cancelled by etcd"),
        "etcd did not cancel the paused agent's watch (the test's premise):\n{log}"
    );
    // And it watches again: the next step reaches it through the watch
    // (no periodic resync has run yet unless the run is long).
    let from = n1.log().len();
    let expiring = fleet.step(target, step + 4);
    fleet.wait_expired(&expiring);
    let leases = fleet.check_store(&real);
    converge(&mut nodes, &leases, "churn after the compacted watch");
    let later = repairs(&n1.log()[from..]);
    assert!(
        agents_up.elapsed() >= netboot_agent_duration(&resync) || later.is_empty(),
        "after the cancelled watch, changes reached the agent only by a resync:\n{}",
        later.join("\n")
    );

    assert!(ping_within(n1.pod(p1), &ip2, DEADLINE), "pod 1 -> pod 2");
    assert!(ping_within(n2.pod(p2), &ip1, DEADLINE), "pod 2 -> pod 1");

    let per_step: Vec<String> = lat.iter().map(|l| format!("{l:.0}")).collect();
    eprintln!("churn: convergence per step (ms): {}", per_step.join(" "));
    let mut sorted = lat.clone();
    sorted.sort_by(f64::total_cmp);
    // utime+stime at the clock tick (10 ms steps), and the exact figure
    // from schedstat that the share of wall time is computed from.
    let cpu_ticks: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_ticks - b.cpu_ticks) as f64 / ticks)
        .collect();
    let cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.cpu_ns - b.cpu_ns) as f64 / 1e9)
        .collect();
    let fmt = |v: &[f64], d: usize| {
        v.iter()
            .map(|x| format!("{x:.d$}"))
            .collect::<Vec<_>>()
            .join("/")
    };
    let child_cpu: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a.child_ticks - b.child_ticks) as f64 / ticks)
        .collect();
    let pct: Vec<f64> = cpu.iter().map(|c| c / wall * 100.0).collect();
    let rss: Vec<f64> = after.iter().map(|a| a.rss_kb as f64 / 1024.0).collect();
    let hwm: Vec<f64> = after.iter().map(|a| a.hwm_kb as f64 / 1024.0).collect();
    let ops: u64 = fleet.counts.values().sum();
    if fleet.lost_by_etcd > 0 {
        eprintln!(
            "churn: etcd lost {} simulated key(s) across its restart (see the WARNING above)",
            fleet.lost_by_etcd
        );
    }
    eprintln!(
        "churn: after compaction {:.0} ms, after etcd restart {:.0} ms, after re-watch {:.0} ms, \
         across a compacted watch {:.0} ms",
        after_compact.as_secs_f64() * 1e3,
        after_restart.as_secs_f64() * 1e3,
        after_rewatch.as_secs_f64() * 1e3,
        after_cancel.as_secs_f64() * 1e3
    );
    eprintln!(
        "agent churn: nodes={target} steps={} ops={ops} duration={wall:.1}s \
         converge_ms min={:.0} median={:.0} max={:.0} agent_cpu_s={} sched_cpu_s={} \
         cpu_pct={} children_cpu_s={} rss_mb={} peak_rss_mb={}",
        lat.len(),
        percentile(&sorted, 0.0),
        percentile(&sorted, 0.5),
        percentile(&sorted, 1.0),
        fmt(&cpu_ticks, 2),
        fmt(&cpu, 3),
        fmt(&pct, 2),
        fmt(&child_cpu, 2),
        fmt(&rss, 1),
        fmt(&hwm, 1),
    );
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal the agent");
}

#[test]
fn periodic_resync_of_100_leases_costs_three_dumps_and_repairs_only_drift() {
    require_root();
    let target = env_num("NETBOOT_CHURN_NODES", 100) as usize;
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "r1", 73);
    let pid = n1.start_agent(&etcd.endpoints(), &["--resync-interval=1s"]);
    let s1 = n1.wait_subnet(DEADLINE);
    let own: u8 = s1.split('.').nth(2).unwrap().parse().unwrap();
    let member = &etcd.members[0];
    let mut fleet = Fleet {
        etcd: EtcdV3::new(member.ns.path(), &member.url()),
        live: BTreeMap::new(),
        reserved: [own].into(),
        expiring: BTreeSet::new(),
        serial: 0,
        rng: Rng(7),
        counts: BTreeMap::new(),
        journal: Default::default(),
        etcd_restarted: false,
        lost_by_etcd: 0,
    };
    for _ in 0..target {
        fleet.join();
    }
    let real: BTreeSet<String> = [n1.lease_key()].into();
    let leases = fleet.check_store(&real);
    let mut nodes = vec![Watched {
        node: &n1,
        key: n1.lease_key(),
        reader: TableReader::new(n1.ns.path(), "flannel.1"),
        pid,
    }];
    converge(&mut nodes, &leases, "initial join");

    // Idle: one resync a second over unchanged leases and kernel.
    eprintln!("agent resync: agent PID {pid}");
    std::thread::sleep(Duration::from_secs(2));
    let log_from = n1.log().len();
    let ticks = clock_ticks() as f64;
    let before = ProcSample::of(pid).expect("agent alive");
    let idle = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let after = ProcSample::of(pid).expect("agent alive");
    let secs = idle.elapsed().as_secs_f64();
    eprintln!(
        "agent resync: leases={target} interval=1s idle={secs:.1}s \
         agent_cpu_ms_per_resync={:.2} children_cpu_ms_per_resync={:.1}",
        (after.cpu_ns - before.cpu_ns) as f64 / 1e6 / secs,
        (after.child_ticks - before.child_ticks) as f64 / ticks / secs * 1e3,
    );
    let idle_log = n1.log()[log_from..].to_string();
    assert!(
        repairs(&idle_log).is_empty(),
        "resyncs over an unchanged node changed something:\n{idle_log}"
    );

    // Drift behind the agent's back: five leases' entries deleted or
    // changed, and a stale route, ARP and FDB entry nobody leased.
    let sims: Vec<Sim> = fleet.live.values().take(5).cloned().collect();
    let net = |s: &Sim| format!("10.2.{}.0", s.subnet);
    let mac = |s: &Sim| netkit::fmt_mac(&s.mac);
    let drift = [
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
        "ip route add 10.2.252.0/24 via 10.2.252.7 dev flannel.1 onlink".into(),
        "ip neigh add 10.2.251.0 lladdr 0a:58:5e:ff:ff:02 dev flannel.1 nud permanent".into(),
        "bridge fdb add 0a:58:5e:ff:ff:02 dev flannel.1 dst 172.31.9.8 self permanent".into(),
    ];
    for cmd in &drift {
        let argv: Vec<&str> = cmd.split_whitespace().collect();
        n1.exec(&argv).expect_ok();
    }
    let took = converge(&mut nodes, &leases, "drift repaired by the periodic resync");
    eprintln!(
        "agent resync: drift repaired {:.0} ms after it was made",
        took.as_secs_f64() * 1e3
    );
    let log = n1.log()[log_from..].to_string();
    for s in &sims {
        let sn = format!("{}/24", net(s));
        assert!(
            log.lines()
                .any(|l| l.contains("repairing") && l.contains(&sn)),
            "{sn} not named as repaired:\n{log}"
        );
    }
    for stale in [
        "removing stale route 10.2.251.0/24",
        "removing stale route 10.2.252.0/24",
        "removing stale ARP entry 10.2.251.0",
        "removing stale FDB entry 0a:58:5e:ff:ff:02 dst 172.31.9.8",
    ] {
        assert!(log.contains(stale), "no {stale:?} in the log:\n{log}");
    }
    assert!(
        log.contains(&format!(
            "removing stale FDB entry {} dst 172.31.9.9",
            mac(&sims[4])
        )),
        "the wrong FDB destination was not removed:\n{log}"
    );
}
