//! Checks for `netboot agent` tests on a [`crate::cluster`]: the leases in
//! etcd, whether every node's kernel state and subnet.env agree with them,
//! cross-node reachability, probe leases, and heal-time statistics for
//! fault trials.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{wait_until, AgentNode, EtcdCluster, PREFIX};
use crate::exec::{nsenter, run};

/// `10.2.3.1/24` (a node's first IP) → `10.2.3.0/24`.
pub fn subnet_of(first_ip: &str) -> String {
    let (ip, len) = parse_net(first_ip).unwrap_or_else(|| panic!("not IPv4/len: {first_ip}"));
    format!("{}/{len}", fmt_v4(ip & mask(len)))
}

fn mask(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

fn parse_v4(s: &str) -> Option<u32> {
    s.parse::<std::net::Ipv4Addr>().ok().map(u32::from)
}

fn fmt_v4(v: u32) -> String {
    std::net::Ipv4Addr::from(v).to_string()
}

/// `a.b.c.d/len` → (network as u32, len).
fn parse_net(s: &str) -> Option<(u32, u32)> {
    let (ip, len) = s.split_once('/')?;
    let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((parse_v4(ip)?, len))
}

fn overlap(a: (u32, u32), b: (u32, u32)) -> bool {
    let m = mask(a.1.min(b.1));
    a.0 & m == b.0 & m
}

/// Send `sig` to `pid` (a process the test started).
pub fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal agent");
}

/// The etcd endpoint `node`'s agent talks to now (the last "talking to
/// etcd at URL" of its log).
pub fn etcd_in_use(node: &AgentNode) -> Option<String> {
    node.log()
        .lines()
        .filter_map(|l| l.split("talking to etcd at ").nth(1))
        .next_back()
        .map(|u| u.trim().to_string())
}

/// The etcd lease ID attached to `key` (decimal, as etcd's JSON gives it).
pub fn lease_id(etcd: &EtcdCluster, key: &str) -> Option<i64> {
    let out = etcd.ctl(&["get", key, "-w", "json"]).expect_ok();
    let v: Value = serde_json::from_str(&out.stdout).ok()?;
    v["kvs"][0]["lease"].as_i64().filter(|l| *l != 0)
}

/// Keys of leases whose value names `public_ip`.
pub fn leases_of(etcd: &EtcdCluster, public_ip: &str) -> Vec<String> {
    etcd.keys(&format!("{PREFIX}/subnets/"))
        .into_iter()
        .filter(|k| {
            etcd.get(k)
                .is_some_and(|v| v.contains(&format!("\"PublicIP\":\"{public_ip}\"")))
        })
        .collect()
}

/// One subnet lease as stored in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    /// `10.2.3.0/24`
    pub subnet: String,
    pub public_ip: String,
    pub vtep_mac: String,
}

impl Lease {
    /// `10.2.3.0` of `10.2.3.0/24`: the VTEP address, and the gateway of
    /// the route other nodes use.
    pub fn gateway(&self) -> &str {
        self.subnet.split('/').next().unwrap_or_default()
    }
}

/// Every lease under `<PREFIX>/subnets/`, in one etcd read. A key or value
/// that is not a vxlan lease is an error naming it.
pub fn leases(etcd: &EtcdCluster) -> Result<Vec<Lease>, String> {
    let out = etcd.ctl(&["get", "--prefix", &format!("{PREFIX}/subnets/")]);
    if !out.success() {
        return Err(format!("cannot read the leases: {out}"));
    }
    // etcdctl's simple output: key line, value line.
    let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.is_empty()).collect();
    let mut all = Vec::new();
    for kv in lines.chunks(2) {
        let [key, value] = kv else {
            return Err(format!("odd etcdctl output: {}", out.stdout));
        };
        let name = key
            .rsplit('/')
            .next()
            .filter(|n| parse_net(&n.replacen('-', "/", 1)).is_some())
            .ok_or_else(|| format!("lease key {key} does not name a subnet"))?;
        let v: Value =
            serde_json::from_str(value).map_err(|e| format!("lease {key}: {e}: {value}"))?;
        let field = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| format!("lease {key} has no {p}: {value}"))
        };
        all.push(Lease {
            key: key.to_string(),
            subnet: name.replacen('-', "/", 1),
            public_ip: field("/PublicIP")?,
            vtep_mac: field("/BackendData/VtepMAC")?,
        });
    }
    Ok(all)
}

/// `ip -j …` in `ns`, or an error naming the command.
fn ip_json(ns: &Path, argv: &[&str]) -> Result<Value, String> {
    let out = run(nsenter(ns, argv), None, Duration::from_secs(10));
    if !out.success() {
        return Err(format!("{}: {}", out.command, out.stderr.trim()));
    }
    if out.stdout.trim().is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    serde_json::from_str(&out.stdout).map_err(|e| format!("{}: {e}", out.command))
}

fn has_flag(v: &Value, key: &str, flag: &str) -> bool {
    match &v[key] {
        Value::Array(a) => a.iter().any(|f| f.as_str() == Some(flag)),
        Value::String(s) => s == flag,
        _ => false,
    }
}

/// IPv4 `addr/len` of `dev` in `ns`.
fn v4_addrs(ns: &Path, dev: &str) -> Result<Vec<String>, String> {
    let v = ip_json(ns, &["ip", "-j", "-4", "addr", "show", "dev", dev])?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| Some(format!("{}/{}", a["local"].as_str()?, a["prefixlen"])))
        .collect())
}

/// Problems of one node against the leases: its own lease (exactly one,
/// matching subnet.env, flannel.1's address and MAC, cni0's address), and
/// for every other lease the onlink route, the permanent ARP entry and the
/// FDB entry pointing at that node's VTEP; no route without a lease.
fn check_node(node: &AgentNode, all: &[Lease]) -> Vec<String> {
    let mut bad = Vec::new();
    let ns = node.ns.path();
    let who = &node.ip;
    let own: Vec<&Lease> = all.iter().filter(|l| l.public_ip == node.ip).collect();
    let [own] = own[..] else {
        let keys: Vec<&str> = own.iter().map(|l| l.key.as_str()).collect();
        return vec![format!("{who}: {} leases in etcd: {keys:?}", keys.len())];
    };
    let env = std::fs::read_to_string(node.subnet_file()).unwrap_or_default();
    let env_subnet = env
        .lines()
        .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
        .map(subnet_of);
    if env_subnet.as_deref() != Some(own.subnet.as_str()) {
        bad.push(format!(
            "{who}: subnet.env says {env_subnet:?}, lease {}",
            own.subnet
        ));
    }
    let (net, len) = parse_net(&own.subnet).expect("checked");
    match v4_addrs(ns, "flannel.1") {
        Ok(a) if a == [format!("{}/32", own.gateway())] => {}
        Ok(a) => bad.push(format!("{who}: flannel.1 has {a:?}, lease {}", own.subnet)),
        Err(e) => bad.push(format!("{who}: {e}")),
    }
    match node.vtep_mac() {
        Some(m) if m == own.vtep_mac => {}
        m => bad.push(format!(
            "{who}: flannel.1 MAC {m:?}, lease VtepMAC {}",
            own.vtep_mac
        )),
    }
    if node.ns.link_names().iter().any(|l| l == "cni0") {
        for a in v4_addrs(ns, "cni0").unwrap_or_default() {
            if !parse_net(&a).is_some_and(|(ip, _)| overlap((ip, len), (net, len))) {
                bad.push(format!("{who}: cni0 has {a}, lease {}", own.subnet));
            }
        }
    }
    bad.extend(check_remotes(node, all));
    bad
}

fn check_remotes(node: &AgentNode, all: &[Lease]) -> Vec<String> {
    let ns = node.ns.path();
    let who = &node.ip;
    let (routes, neighs, fdb) = match (
        ip_json(ns, &["ip", "-j", "route", "show", "dev", "flannel.1"]),
        ip_json(ns, &["ip", "-j", "neigh", "show", "dev", "flannel.1"]),
        ip_json(ns, &["bridge", "-j", "fdb", "show", "dev", "flannel.1"]),
    ) {
        (Ok(r), Ok(n), Ok(f)) => (r, n, f),
        (r, n, f) => {
            let errs = [r.err(), n.err(), f.err()];
            return vec![format!(
                "{who}: {:?}",
                errs.iter().flatten().collect::<Vec<_>>()
            )];
        }
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    let (routes, neighs, fdb) = (list(&routes), list(&neighs), list(&fdb));
    let mut bad = Vec::new();
    let remotes: Vec<&Lease> = all.iter().filter(|l| l.public_ip != node.ip).collect();
    for l in &remotes {
        let gw = l.gateway();
        if !routes.iter().any(|r| {
            r["dst"] == l.subnet.as_str() && r["gateway"] == gw && has_flag(r, "flags", "onlink")
        }) {
            bad.push(format!("{who}: no onlink route {} via {gw}", l.subnet));
        }
        if !neighs.iter().any(|n| {
            n["dst"] == gw
                && n["lladdr"] == l.vtep_mac.as_str()
                && has_flag(n, "state", "PERMANENT")
        }) {
            bad.push(format!("{who}: no ARP {gw} -> {}", l.vtep_mac));
        }
        if !fdb.iter().any(|f| {
            f["mac"] == l.vtep_mac.as_str()
                && f["dst"] == l.public_ip.as_str()
                && has_flag(f, "state", "permanent")
        }) {
            bad.push(format!("{who}: no FDB {} -> {}", l.vtep_mac, l.public_ip));
        }
    }
    for r in routes.iter().filter(|r| r["gateway"].is_string()) {
        let dst = r["dst"].as_str().unwrap_or_default();
        if !remotes.iter().any(|l| l.subnet == dst) {
            bad.push(format!("{who}: route {dst} on flannel.1 has no lease"));
        }
    }
    bad
}

/// Check the whole cluster: no two leases overlap, every node has exactly
/// one lease and its state agrees with every lease (see `check_node`).
/// `Err` lists every disagreement.
pub fn check_cluster(etcd: &EtcdCluster, nodes: &[&AgentNode]) -> Result<(), String> {
    let all = leases(etcd)?;
    let mut bad = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let (na, nb) = (parse_net(&a.subnet), parse_net(&b.subnet));
            if na.zip(nb).is_some_and(|(x, y)| overlap(x, y)) {
                bad.push(format!("overlapping leases {} and {}", a.key, b.key));
            }
        }
    }
    for n in nodes {
        bad.extend(check_node(n, &all));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// One pod per node, for reachability sweeps.
#[derive(Debug, Clone)]
pub struct PodAt {
    pub node: usize,
    pub netns: PathBuf,
    pub ip: String,
}

/// One ping from `from` to `ip`, answered within 0.5 s.
pub fn ping_once(from: &Path, ip: &str) -> bool {
    run(
        nsenter(from, &["ping", "-n", "-q", "-c1", "-W0.5", ip]),
        None,
        Duration::from_secs(5),
    )
    .success()
}

/// Every ordered pair of pods on different nodes.
pub fn cross_pairs(pods: &[PodAt]) -> Vec<(PodAt, PodAt)> {
    let mut pairs = Vec::new();
    for a in pods {
        for b in pods.iter().filter(|b| b.node != a.node) {
            pairs.push((a.clone(), b.clone()));
        }
    }
    pairs
}

/// Wait until every pair has answered a ping (each pair once, in any
/// order) and then `settled` holds; `Ok(elapsed since start)` at that
/// moment, `Err(what was still wrong)` after `deadline`.
pub fn wait_healed(
    start: Instant,
    deadline: Duration,
    pairs: &[(PodAt, PodAt)],
    mut settled: impl FnMut() -> Result<(), String>,
) -> Result<Duration, String> {
    let mut pending: Vec<&(PodAt, PodAt)> = pairs.iter().collect();
    let mut last;
    loop {
        pending.retain(|(a, b)| !ping_once(&a.netns, &b.ip));
        if pending.is_empty() {
            match settled() {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) => last = e,
            }
        } else {
            let p: Vec<String> = pending
                .iter()
                .map(|(a, b)| format!("{} -> {}", a.ip, b.ip))
                .collect();
            last = format!("no ping reply: {}", p.join(", "));
        }
        if start.elapsed() >= deadline {
            return Err(last);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every pair answers a ping now (each up to `timeout`): the final check
/// that traffic still flows after a heal.
pub fn all_reach(pairs: &[(PodAt, PodAt)], timeout: Duration) -> Result<(), String> {
    let bad: Vec<String> = pairs
        .iter()
        .filter(|(a, b)| !crate::cluster::ping_within(&a.netns, &b.ip, timeout))
        .map(|(a, b)| format!("{} -> {}", a.ip, b.ip))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("no ping reply: {}", bad.join(", ")))
    }
}

/// A hand-written lease for a node that does not exist (outside the test
/// config's SubnetMin..SubnetMax, so no agent can take it): written, it
/// must appear on every node; deleted, it must vanish. Shows that the
/// agents' watches work.
pub struct Probe {
    pub key: String,
    pub subnet: String,
    pub mac: String,
}

impl Probe {
    /// Probe number `n` (its MAC differs per round).
    pub fn new(n: u8) -> Probe {
        Probe::at("10.2.250.0/24", &format!("aa:bb:cc:00:fa:{n:02x}"))
    }

    /// A lease of `subnet` (`10.2.7.0/24`) for a node at 192.168.100.250
    /// with VTEP `mac`, e.g. to take a subnet from under an agent.
    pub fn at(subnet: &str, mac: &str) -> Probe {
        Probe {
            key: format!("{PREFIX}/subnets/{}", subnet.replacen('/', "-", 1)),
            subnet: subnet.into(),
            mac: mac.into(),
        }
    }

    fn value(&self) -> String {
        format!(
            r#"{{"PublicIP":"192.168.100.250","PublicIPv6":null,"BackendType":"vxlan","BackendData":{{"VNI":1,"VtepMAC":"{}"}}}}"#,
            self.mac
        )
    }

    /// Write it (retrying while etcd elects a leader or restarts).
    pub fn put(&self, etcd: &EtcdCluster, deadline: Duration) -> Result<(), String> {
        let mut last = String::new();
        // etcdctl waits out its 5 s command timeout when the leader just
        // died; retry every second instead, so the heal time shows etcd's
        // election, not etcdctl's timeout.
        let ok = wait_until(deadline, || {
            let out = etcd.ctl(&["--command-timeout=1s", "put", &self.key, &self.value()]);
            last = out.to_string();
            out.success()
        });
        ok.then_some(()).ok_or(last)
    }

    /// Is it programmed on `node` (route, ARP and FDB entry)?
    pub fn programmed(&self, node: &AgentNode) -> bool {
        node.flannel_routes().contains(&self.subnet)
            && node.neigh_text().contains(&format!(
                "{} lladdr {} PERMANENT",
                self.subnet.split('/').next().unwrap_or_default(),
                self.mac
            ))
            && node
                .fdb_text()
                .contains(&format!("{} dst 192.168.100.250", self.mac))
    }

    /// Delete it and wait until no node has it any more.
    pub fn remove(&self, etcd: &EtcdCluster, nodes: &[&AgentNode]) -> Result<(), String> {
        let ok = wait_until(Duration::from_secs(30), || {
            etcd.ctl(&["del", &self.key]).success()
        });
        if !ok {
            return Err(format!("cannot delete the probe {}", self.key));
        }
        let gone = wait_until(Duration::from_secs(60), || {
            nodes.iter().all(|n| {
                !n.flannel_routes().contains(&self.subnet) && !n.fdb_text().contains(&self.mac)
            })
        });
        gone.then_some(())
            .ok_or_else(|| format!("probe {} still programmed after delete", self.subnet))
    }
}

/// Heal times of one fault over its rounds.
#[derive(Debug, Default)]
pub struct HealStats {
    pub fault: String,
    /// What the clock starts at ("the delete", "SIGCONT").
    pub from: String,
    pub heals: Vec<Duration>,
    pub failures: Vec<String>,
}

impl HealStats {
    pub fn new(fault: &str, from: &str) -> HealStats {
        HealStats {
            fault: fault.into(),
            from: from.into(),
            ..HealStats::default()
        }
    }

    /// Record round `round`: its heal time, or why it failed.
    pub fn record(&mut self, round: usize, r: Result<Duration, String>) {
        match r {
            Ok(d) => {
                eprintln!(
                    "agent fault {} round {round}: healed in {:.2} s",
                    self.fault,
                    d.as_secs_f64()
                );
                self.heals.push(d);
            }
            Err(e) => {
                eprintln!("agent fault {} round {round}: FAILED: {e}", self.fault);
                self.failures.push(format!("round {round}: {e}"));
            }
        }
    }

    /// The parseable summary line:
    /// `agent fault NAME: R rounds, F failures, heal min A s, median B s, max C s (from WHAT)`.
    pub fn line(&self) -> String {
        let mut s: Vec<f64> = self.heals.iter().map(Duration::as_secs_f64).collect();
        s.sort_by(f64::total_cmp);
        let pick = |i: usize| s.get(i).map_or("-".to_string(), |v| format!("{v:.2}"));
        let median = if s.is_empty() {
            "-".to_string()
        } else if s.len() % 2 == 1 {
            pick(s.len() / 2)
        } else {
            format!("{:.2}", (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0)
        };
        format!(
            "agent fault {}: {} rounds, {} failures, heal min {} s, median {median} s, max {} s (from {})",
            self.fault,
            self.heals.len() + self.failures.len(),
            self.failures.len(),
            pick(0),
            s.len().checked_sub(1).map_or("-".to_string(), pick),
            self.from
        )
    }

    /// Print the summary line; fail the test if any round failed.
    #[track_caller]
    pub fn finish(&self) {
        eprintln!("{}", self.line());
        self.assert_healed();
    }

    /// Fail the test if any round failed, naming the rounds and why.
    #[track_caller]
    pub fn assert_healed(&self) {
        assert!(
            self.failures.is_empty(),
            "agent fault {}: {} of {} rounds failed:\n{}",
            self.fault,
            self.failures.len(),
            self.heals.len() + self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// Rounds per fault: `NETBOOT_AGENT_FAULT_ROUNDS`, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("NETBOOT_AGENT_FAULT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}
