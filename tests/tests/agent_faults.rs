//! Agent faults as counted trials (issue 8). Each test builds a small
//! cluster (underlay bridge netns, etcd in its own netns, 2-3 nodes running
//! `netboot agent` with its default intervals, one native-mode pod per
//! node) and injects one fault `NETBOOT_AGENT_FAULT_ROUNDS` times (default
//! 1). A round heals when every pod pings every pod on the other nodes and
//! the cluster checks out: exactly one lease per node, no overlapping
//! subnets, every node's subnet.env, flannel.1 (address, MAC), cni0 and
//! routes/ARP/FDB agreeing with every lease, and, where the fault touched
//! etcd or the agent process, a probe lease written after the recovery
//! programmed on every node (the watches work again). Heal times are
//! printed, one parseable line per fault; only "never healed within
//! HEAL_DEADLINE" fails a round. Needs root; nothing touches the root netns.

use std::time::{Duration, Instant};

use netboot_tests::agent_support::{
    all_reach, check_cluster, cross_pairs, etcd_in_use, leases_of, rounds, signal, subnet_of,
    wait_healed, HealStats, PodAt, Probe,
};
use netboot_tests::cluster::{
    wait_until, AgentNode, EtcdCluster, Member, Underlay, CONFIG, PREFIX,
};
use netboot_tests::require_root;
use nix::sys::signal::Signal;

/// A round that has not healed by then failed.
const HEAL_DEADLINE: Duration = Duration::from_secs(90);
const NO_RESYNC: &str = "--resync-interval=1h";

struct Lab {
    nodes: Vec<AgentNode>,
    etcd: EtcdCluster,
    pods: Vec<PodAt>,
    pairs: Vec<(PodAt, PodAt)>,
    ep: String,
    args: Vec<String>,
    // Dropped last: the nodes' and etcd's namespaces hang off it.
    _ul: Underlay,
}

impl Lab {
    /// `members` etcd members, `n` nodes (`<tag>0`…) whose agents get
    /// `args`, one pod each; waits until the cluster is healthy.
    fn new(tag: &str, members: usize, n: usize, args: &[&str]) -> Lab {
        let ul = Underlay::new();
        let etcd = EtcdCluster::start(&ul, members);
        etcd.put(&format!("{PREFIX}/config"), CONFIG);
        let ep = etcd.endpoints();
        let mut nodes: Vec<AgentNode> = (0..n)
            .map(|i| AgentNode::new(&ul, &format!("{tag}{i}"), 11 + i as u8))
            .collect();
        // The full resync (60 s by default) is a safety net; no heal may
        // lean on it, so it is pushed out of every test's reach.
        let args: Vec<&str> = [NO_RESYNC].iter().chain(args).copied().collect();
        for node in &mut nodes {
            node.start_agent(&ep, &args);
        }
        let mut pods = Vec::new();
        for (i, node) in nodes.iter_mut().enumerate() {
            node.wait_subnet(HEAL_DEADLINE);
            let (p, ip) = node.add_pod(&format!("{tag}p{i}"));
            pods.push(PodAt {
                node: i,
                netns: node.pod(p).to_path_buf(),
                ip,
            });
        }
        let lab = Lab {
            pairs: cross_pairs(&pods),
            nodes,
            etcd,
            pods,
            ep,
            args: args.iter().map(|a| a.to_string()).collect(),
            _ul: ul,
        };
        if let Err(e) = lab.healed(Instant::now(), None) {
            panic!("cluster not healthy before any fault: {e}\n{}", lab.logs());
        }
        eprintln!(
            "lab {tag}: {n} nodes, {members} etcd member(s), pods {:?}",
            lab.pods.iter().map(|p| &p.ip).collect::<Vec<_>>()
        );
        lab
    }

    fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    fn node_refs(&self) -> Vec<&AgentNode> {
        self.nodes.iter().collect()
    }

    /// Traffic both ways between every pair of nodes and the cluster check
    /// (with `probe`, if given, written first and required on every node);
    /// time since `start` when all of that holds.
    fn healed(&self, start: Instant, probe: Option<&Probe>) -> Result<Duration, String> {
        if let Some(p) = probe {
            p.put(&self.etcd, HEAL_DEADLINE)
                .map_err(|e| format!("cannot write the probe lease: {e}"))?;
            // etcd's own share of the heal (a restart, an election).
            eprintln!(
                "  etcd took the probe lease {:.2} s after the fault",
                start.elapsed().as_secs_f64()
            );
        }
        wait_healed(start, HEAL_DEADLINE, &self.pairs, || {
            check_cluster(&self.etcd, &self.node_refs())?;
            match self.nodes.iter().position(|n| !n.agent_alive()) {
                Some(i) => Err(format!("node {i}'s agent is not running")),
                None => Ok(()),
            }
        })
    }

    /// Every agent's log tail, for failure messages.
    fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let log = n.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(20)..];
            out.push_str(&format!("--- agent on {} ---\n{}\n", n.ip, tail.join("\n")));
        }
        out
    }

    /// Close round `round`: a heal must be followed by traffic still
    /// flowing and the probe (if any) vanishing when deleted.
    fn finish_round(
        &self,
        stats: &mut HealStats,
        round: usize,
        res: Result<Duration, String>,
        probe: Option<&Probe>,
    ) {
        let res = res.and_then(|d| {
            all_reach(&self.pairs, Duration::from_secs(20))?;
            if let Some(p) = probe {
                p.remove(&self.etcd, &self.node_refs())?;
            }
            Ok(d)
        });
        let res = res.map_err(|e| format!("{e}\n{}", self.logs()));
        stats.record(round, res);
    }

    /// Replace node `i`'s pod: CNI DEL of the old one, ADD of a new one.
    fn replace_pod(&mut self, i: usize, tag: &str) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let old = (0..)
            .find(|p| node.pod(*p) == self.pods[i].netns)
            .expect("pod");
        node.del_pod(old)?;
        let (p, ip) = node.add_pod(tag);
        self.pods[i] = PodAt {
            node: i,
            netns: node.pod(p).to_path_buf(),
            ip,
        };
        self.pairs = cross_pairs(&self.pods);
        Ok(())
    }

    /// The lease key of node `i`, and its subnet.
    fn lease_of(&self, i: usize) -> String {
        self.nodes[i].lease_key()
    }

    /// The node's lease is still `key` (the fault must not move a node).
    fn same_lease(&self, i: usize, key: &str) -> Result<(), String> {
        let now = self.lease_of(i);
        (now == key)
            .then_some(())
            .ok_or_else(|| format!("node {i} moved from {key} to {now}"))
    }
}

#[test]
fn fault_etcd_restarted() {
    require_root();
    let mut lab = Lab::new("er", 1, 3, &[]);
    let mut stats = HealStats::new("etcd-restart", "etcd started again after 3 s down");
    for round in 0..rounds(1) {
        let keys: Vec<String> = (0..lab.nodes.len()).map(|i| lab.lease_of(i)).collect();
        lab.etcd.members[0].stop();
        // The data plane does not need etcd: traffic flows while it is down.
        let down = Instant::now();
        let during = all_reach(&lab.pairs, Duration::from_secs(2));
        std::thread::sleep(Duration::from_secs(3).saturating_sub(down.elapsed()));
        let start = Instant::now();
        lab.etcd.members[0].restart();
        let probe = Probe::new(round as u8);
        let res = during
            .map_err(|e| format!("while etcd was down: {e}"))
            .and_then(|()| lab.healed(start, Some(&probe)))
            .and_then(|d| {
                for (i, k) in keys.iter().enumerate() {
                    lab.same_lease(i, k)?;
                }
                Ok(d)
            });
        lab.finish_round(&mut stats, round, res, Some(&probe));
    }
    stats.finish();
}

/// Rounds of a fault of the etcd member an agent uses: `inject` it, wait
/// for the cluster to heal with the agent on another member (same lease),
/// then `undo` it.
fn member_fault(
    tag: &str,
    name: &str,
    from: &str,
    verb: &str,
    inject: fn(&mut Member),
    undo: fn(&mut Member),
) {
    require_root();
    let mut lab = Lab::new(tag, 3, 2, &[]);
    let mut stats = HealStats::new(name, from);
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let key = lab.lease_of(i);
        let url = etcd_in_use(&lab.nodes[i]).expect("agent names its etcd endpoint");
        let m = lab
            .etcd
            .members
            .iter()
            .position(|m| m.url() == url)
            .expect("endpoint is a member");
        let leader = if lab.etcd.leader().as_deref() == Some(url.as_str()) {
            ", the leader"
        } else {
            ""
        };
        eprintln!("round {round}: {verb} etcd member {url} (used by node {i}{leader})");
        let start = Instant::now();
        inject(&mut lab.etcd.members[m]);
        let probe = Probe::new(round as u8);
        let res = lab.healed(start, Some(&probe)).and_then(|d| {
            lab.same_lease(i, &key)?;
            match etcd_in_use(&lab.nodes[i]) {
                Some(u) if u != url => Ok(d),
                u => Err(format!("node {i} still names {u:?} as its etcd")),
            }
        });
        lab.finish_round(&mut stats, round, res, Some(&probe));
        undo(&mut lab.etcd.members[m]);
        lab.etcd.wait_healthy();
    }
    stats.finish();
}

#[test]
fn fault_etcd_member_in_use_killed() {
    member_fault(
        "mk",
        "etcd-member-killed",
        "SIGKILL of the member the agent uses",
        "killing",
        Member::kill,
        Member::restart,
    );
}

#[test]
fn fault_etcd_member_in_use_cut_off() {
    member_fault(
        "mc",
        "etcd-member-cut-off",
        "the member the agent uses cut off the network (no reset)",
        "cutting off",
        Member::cut_off,
        Member::reconnect,
    );
}

#[test]
fn fault_lease_key_deleted() {
    require_root();
    let lab = Lab::new("ld", 1, 3, &[]);
    let mut stats = HealStats::new("lease-deleted", "etcdctl del of the node's lease key");
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let key = lab.lease_of(i);
        let start = Instant::now();
        lab.etcd.delete(&key);
        let res = lab
            .healed(start, None)
            .and_then(|d| lab.same_lease(i, &key).map(|()| d));
        lab.finish_round(&mut stats, round, res, None);
    }
    stats.finish();
}

#[test]
fn fault_lease_expired_while_agent_stopped() {
    require_root();
    // Short leases, so that one expires while its agent is stopped.
    let lab = Lab::new("ex", 1, 3, &["--lease-ttl=5s", "--renew-margin=3s"]);
    let mut stats = HealStats::new("lease-expired-sigstop", "SIGCONT after the lease expired");
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let key = lab.lease_of(i);
        let pid = lab.nodes[i].agent_pid().expect("agent");
        let stopped = Instant::now();
        signal(pid, Signal::SIGSTOP);
        let expired = wait_until(Duration::from_secs(30), || lab.etcd.get(&key).is_none());
        let start = Instant::now();
        signal(pid, Signal::SIGCONT);
        let res = if !expired {
            Err(format!("{key} did not expire while the agent was stopped"))
        } else {
            eprintln!(
                "round {round}: {key} expired {:.1} s after SIGSTOP",
                stopped.elapsed().as_secs_f64()
            );
            lab.healed(start, None)
                .and_then(|d| lab.same_lease(i, &key).map(|()| d))
        };
        lab.finish_round(&mut stats, round, res, None);
    }
    stats.finish();
}

/// Wait until node `i` holds a lease other than `old` and its subnet.env
/// says so.
fn moved_away(lab: &Lab, i: usize, old: &str) -> Result<String, String> {
    let node = &lab.nodes[i];
    let mut now = String::new();
    let moved = wait_until(HEAL_DEADLINE, || {
        let keys = leases_of(&lab.etcd, &node.ip);
        let env = std::fs::read_to_string(node.subnet_file()).unwrap_or_default();
        match &keys[..] {
            [k] if k != old => {
                now = k.clone();
                let sn = k
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .replacen('-', "/", 1);
                env.lines()
                    .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
                    .is_some_and(|s| subnet_of(s) == sn)
            }
            _ => false,
        }
    });
    moved
        .then_some(now)
        .ok_or_else(|| format!("node {i} did not move off {old}"))
}

#[test]
fn fault_subnet_taken_while_agent_stopped() {
    require_root();
    let mut lab = Lab::new("st", 1, 3, &["--lease-ttl=5s", "--renew-margin=3s"]);
    let mut stats = HealStats::new(
        "subnet-taken-while-stopped",
        "SIGCONT; includes re-creating the node's pod in its new subnet",
    );
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let key = lab.lease_of(i);
        let pid = lab.nodes[i].agent_pid().expect("agent");
        signal(pid, Signal::SIGSTOP);
        let expired = wait_until(Duration::from_secs(30), || lab.etcd.get(&key).is_none());
        // Another node leases the subnet meanwhile.
        let subnet = key
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .replacen('-', "/", 1);
        let thief = Probe::at(&subnet, &format!("aa:bb:cc:00:fb:{:02x}", round as u8));
        let taken = thief.put(&lab.etcd, HEAL_DEADLINE);
        let start = Instant::now();
        signal(pid, Signal::SIGCONT);
        let res = if !expired {
            Err(format!("{key} did not expire while the agent was stopped"))
        } else {
            taken
                .and_then(|()| moved_away(&lab, i, &key))
                .and_then(|now| {
                    eprintln!(
                        "round {round}: node {i} moved from {key} to {now} {:.2} s after SIGCONT",
                        start.elapsed().as_secs_f64()
                    );
                    lab.replace_pod(i, &format!("st{round}p{i}"))
                })
                .and_then(|()| lab.healed(start, None))
        };
        lab.finish_round(&mut stats, round, res, Some(&thief));
    }
    stats.finish();
}

#[test]
fn fault_vxlan_device_deleted() {
    require_root();
    let lab = Lab::new("dd", 1, 3, &[]);
    let mut stats = HealStats::new("flannel.1-deleted", "ip link del flannel.1");
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let start = Instant::now();
        lab.nodes[i]
            .exec(&["ip", "link", "del", "flannel.1"])
            .expect_ok();
        let res = lab.healed(start, None);
        lab.finish_round(&mut stats, round, res, None);
    }
    stats.finish();
}

#[test]
fn fault_state_on_vxlan_device_removed() {
    require_root();
    let lab = Lab::new("sr", 1, 3, &[]);
    let mut flushed = HealStats::new(
        "flannel.1-address-deleted",
        "ip addr del of flannel.1's only address",
    );
    let mut removed = HealStats::new(
        "remote-route-arp-fdb-deleted",
        "ip route del + ip neigh del + bridge fdb del of another node's entries",
    );
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let node = &lab.nodes[i];
        // Its last address gone, the kernel also flushes every route and
        // ARP entry on the device. (Not `ip addr flush`: it gives up with
        // "Flush remains incomplete" when the agent puts the address back
        // between its rounds.)
        let own = subnet_of(&node.wait_subnet(HEAL_DEADLINE));
        let addr = format!("{}/32", own.split('/').next().unwrap_or_default());
        let start = Instant::now();
        let out = node.exec(&["ip", "addr", "del", &addr, "dev", "flannel.1"]);
        let res = if out.success() {
            lab.healed(start, None)
        } else {
            Err(format!("cannot remove the address by hand: {out}"))
        };
        lab.finish_round(&mut flushed, round, res, None);

        let other = &lab.nodes[(i + 1) % lab.nodes.len()];
        let sn = subnet_of(&other.wait_subnet(HEAL_DEADLINE));
        let gw = sn.split('/').next().unwrap_or_default().to_string();
        let mac = other.vtep_mac().expect("flannel.1");
        let start = Instant::now();
        let res = [
            &["ip", "route", "del", &sn, "dev", "flannel.1"][..],
            &["ip", "neigh", "del", &gw, "dev", "flannel.1"],
            &[
                "bridge",
                "fdb",
                "del",
                &mac,
                "dev",
                "flannel.1",
                "dst",
                &other.ip,
            ],
        ]
        .iter()
        .map(|argv| node.exec(argv))
        .find(|out| !out.success())
        .map_or(Ok(()), |out| Err(format!("cannot remove by hand: {out}")))
        .and_then(|()| lab.healed(start, None));
        lab.finish_round(&mut removed, round, res, None);
    }
    eprintln!("{}", flushed.line());
    eprintln!("{}", removed.line());
    flushed.assert_healed();
    removed.assert_healed();
}

/// Did `log` gain the lock refusal naming `pid` after byte `from`?
fn refused(log: &str, from: usize, pid: u32) -> bool {
    let new = log.get(from..).unwrap_or_default();
    new.contains(&format!("another netboot agent (PID {pid}"))
        && new.contains("already running in this network namespace")
}

/// A second agent on a node whose agent runs: it must exit, refusing
/// clearly, while the first keeps serving (a probe lease written after
/// the refusal reaches every node).
fn second_agent_refused(lab: &Lab, i: usize, probe: &Probe) -> Result<Duration, String> {
    let node = &lab.nodes[i];
    let first = node.agent_pid().ok_or("the node has no agent")?;
    let from = node.log().len();
    let start = Instant::now();
    let mut dup = node.spawn_agent(&lab.ep, &lab.args());
    if !wait_until(Duration::from_secs(30), || dup.exited().is_some()) {
        return Err(format!("second agent (PID {}) kept running", dup.pid()));
    }
    let status = dup.exited().expect("exited");
    if status.success() || !refused(&node.log(), from, first) {
        return Err(format!(
            "second agent exited with {status} without the lock refusal:\n{}",
            node.log().get(from..).unwrap_or_default()
        ));
    }
    lab.healed(start, Some(probe))
}

/// Kill node `i`'s agent and start two at once: exactly one takes the
/// lock and serves, the other refuses naming it.
fn agent_replaced_by_one_of_two(
    lab: &mut Lab,
    i: usize,
    probe: &Probe,
) -> Result<Duration, String> {
    let args = lab.args.clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let from = lab.nodes[i].log().len();
    let start = Instant::now();
    lab.nodes[i].kill_agent();
    let mut a = lab.nodes[i].spawn_agent(&lab.ep, &args);
    let mut b = lab.nodes[i].spawn_agent(&lab.ep, &args);
    if !wait_until(Duration::from_secs(30), || {
        a.exited().is_some() || b.exited().is_some()
    }) {
        return Err("two agents started together both kept running".into());
    }
    // Let a second exit show up, if there is one.
    std::thread::sleep(Duration::from_millis(300));
    let (winner, mut loser) = match (a.exited(), b.exited()) {
        (None, Some(_)) => (a, b),
        (Some(_), None) => (b, a),
        (x, y) => return Err(format!("both agents exited: {x:?} {y:?}")),
    };
    let log = lab.nodes[i].log();
    let status = loser.exited().expect("exited");
    if status.success() || !refused(&log, from, winner.pid()) {
        return Err(format!(
            "the losing agent exited with {status} without naming PID {}:\n{}",
            winner.pid(),
            log.get(from..).unwrap_or_default()
        ));
    }
    lab.nodes[i].adopt_agent(winner);
    lab.healed(start, Some(probe))
}

#[test]
fn fault_two_agents_on_one_node() {
    require_root();
    let mut lab = Lab::new("ta", 1, 3, &[]);
    let mut dup_stats = HealStats::new("two-agents", "the second agent's start (it must refuse)");
    let mut rep_stats = HealStats::new(
        "agent-killed-two-restarted",
        "SIGKILL of the agent, two new ones started at once",
    );
    for round in 0..rounds(1) {
        let i = round % lab.nodes.len();
        let key = lab.lease_of(i);
        let probe = Probe::new(2 * round as u8);
        let res = second_agent_refused(&lab, i, &probe);
        lab.finish_round(&mut dup_stats, round, res, Some(&probe));
        let probe = Probe::new(2 * round as u8 + 1);
        let res = agent_replaced_by_one_of_two(&mut lab, i, &probe)
            .and_then(|d| lab.same_lease(i, &key).map(|()| d));
        lab.finish_round(&mut rep_stats, round, res, Some(&probe));
    }
    eprintln!("{}", dup_stats.line());
    eprintln!("{}", rep_stats.line());
    dup_stats.assert_healed();
    rep_stats.assert_healed();
}
