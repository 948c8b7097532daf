//! The agent at cluster scale (issue 20), measured, not asserted: one etcd,
//! N simulated flanneld leases (Grant + Put, flanneld's key and value), K
//! real `netboot agent`s, each in its own namespace node on one underlay.
//! For every N × K it reports:
//!
//! - start-to-converged: agents started together, until each has a route
//!   to every other node (N + K − 1);
//! - idle: etcd requests and bytes per agent per minute, from etcd's own
//!   `/metrics` (unary calls plus messages on streams; gRPC bytes sent and
//!   received), and the agents' CPU (share of one core) and RSS;
//! - the storm: etcd stopped and started again; the peak of its Range
//!   requests per second after it, the time until a lease written once it
//!   is back is in every agent's kernel, and how many agents listed again;
//! - the burst: B leases more written at once (a rack joining), and the
//!   time from the last write until the last agent has them all.
//!
//! `#[ignore]`d: it takes minutes. `scripts/scale.sh` runs it on release
//! builds; parameters come from the environment:
//! `NETBOOT_SCALE_LEASES` (default `100,1000,5000`), `NETBOOT_SCALE_AGENTS`
//! (`1,20`), `NETBOOT_SCALE_IDLE_SECS` (300: the idle window),
//! `NETBOOT_SCALE_BURST` (1000), `NETBOOT_SCALE_OUT` (also write the table
//! there), `NETBOOT_SCALE_LOGS` (print node 0's agent log). Needs root; nothing touches the root netns.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netboot_tests::agent_load::{EtcdV3, ProcSample};
use netboot_tests::cluster::{AgentNode, EtcdCluster, Underlay, PREFIX};
use netboot_tests::require_root;
use netboot_tests::scale::{sim_lease, sim_net, write_sims, RouteCounter, Scrape, CONFIG};

/// The simulated node written after etcd's restart (10.252.88.0/24: after
/// every N + burst the run may write, inside the network).
const PROBE: u32 = 39_000;
/// A phase that has not converged by then fails the run.
const DEADLINE: Duration = Duration::from_secs(600);

fn env_list(name: &str, default: &str) -> Vec<u32> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
        })
        .collect()
}

#[derive(Debug, Default)]
struct Row {
    n: u32,
    k: u32,
    written_s: f64,
    converged_s: f64,
    start_cpu_s: f64,
    req_min: f64,
    sent_min: f64,
    recv_min: f64,
    cpu_mean: f64,
    cpu_max: f64,
    rss_mib: f64,
    storm_rps: f64,
    storm_ranges: f64,
    storm_s: f64,
    relists: usize,
    burst_write_s: f64,
    burst_s: f64,
    burst_cpu_s: f64,
}

const HEADER: &str = "| leases N | agents K | start→converged (s, slowest agent) | start: agent CPU (s, mean) | idle etcd requests /agent/min | idle etcd bytes sent /agent/min | idle bytes received /agent/min | idle agent CPU (% of a core, mean / max) | agent RSS (MiB, max) | storm: peak Range/s | storm: Range requests | storm: reconverged (s) | storm: relists | burst: write (s) | burst: last in kernel after last write (s) | burst: agent CPU (s, mean) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

impl Row {
    fn line(&self) -> String {
        format!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.3} / {:.3} | {:.1} | {:.0} | {:.0} | {:.2} | {} | {:.2} | {:.2} | {:.3} |",
            self.n,
            self.k,
            self.converged_s,
            self.start_cpu_s,
            self.req_min,
            self.sent_min,
            self.recv_min,
            self.cpu_mean,
            self.cpu_max,
            self.rss_mib,
            self.storm_rps,
            self.storm_ranges,
            self.storm_s,
            self.relists,
            self.burst_write_s,
            self.burst_s,
            self.burst_cpu_s,
        )
    }
}

/// Wait until every node has `want` routes through flannel.1, the one to
/// `last` among them (checked first: a single lookup while it is not
/// there); seconds from `since` until the slowest got there.
fn wait_routes(
    counters: &mut [RouteCounter],
    want: usize,
    last: Ipv4Addr,
    since: Instant,
    what: &str,
) -> f64 {
    let mut done: Vec<Option<f64>> = vec![None; counters.len()];
    loop {
        for (c, d) in counters.iter_mut().zip(done.iter_mut()) {
            if d.is_none() && c.has(last.into()) && c.count() >= want {
                *d = Some(since.elapsed().as_secs_f64());
            }
        }
        if done.iter().all(Option::is_some) {
            return done.into_iter().flatten().fold(0.0, f64::max);
        }
        assert!(
            since.elapsed() < DEADLINE,
            "{what}: not every agent has {want} routes after {DEADLINE:?}: {:?}",
            counters
                .iter_mut()
                .map(RouteCounter::count)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Mean CPU seconds the agents used between two samples.
fn cpu_s(a: &[ProcSample], b: &[ProcSample]) -> f64 {
    let t: f64 = a
        .iter()
        .zip(b)
        .map(|(a, b)| (b.cpu_ns - a.cpu_ns) as f64 / 1e9)
        .sum();
    t / a.len().max(1) as f64
}

fn sample_all(pids: &[u32]) -> Vec<ProcSample> {
    pids.iter()
        .map(|p| ProcSample::of(*p).expect("agent alive"))
        .collect()
}

fn measure(n: u32, k: u32, idle: u64, burst: u32) -> Row {
    let mut row = Row {
        n,
        k,
        ..Row::default()
    };
    let ul = Underlay::new();
    let mut etcd = EtcdCluster::start(&ul, 1);
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let (ns, url) = (etcd.members[0].ns.path().to_owned(), etcd.members[0].url());
    let v3 = EtcdV3::new(&ns, &url);
    row.written_s = write_sims(&v3, 0, n).as_secs_f64();

    // Start-to-converged.
    let ep = etcd.endpoints();
    let mut nodes: Vec<AgentNode> = (0..k)
        .map(|i| AgentNode::new(&ul, &format!("sc{i}"), 11 + i as u8))
        .collect();
    let mut counters: Vec<RouteCounter> = nodes
        .iter()
        .map(|n| RouteCounter::new(n.ns.path()))
        .collect();
    let started = Instant::now();
    let pids: Vec<u32> = nodes
        .iter_mut()
        .map(|nd| nd.start_agent(&ep, &[]))
        .collect();
    let all = (n + k - 1) as usize;
    let zero: Vec<ProcSample> = pids.iter().map(|_| ProcSample::default()).collect();
    row.converged_s = wait_routes(&mut counters, all, sim_net(n - 1), started, "start");
    row.start_cpu_s = cpu_s(&zero, &sample_all(&pids));

    // Idle.
    std::thread::sleep(Duration::from_secs(5));
    let s0 = Scrape::take(&ns, &url).expect("etcd metrics");
    let p0: Vec<ProcSample> = pids
        .iter()
        .map(|p| ProcSample::of(*p).expect("agent alive"))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(idle));
    let s1 = Scrape::take(&ns, &url).expect("etcd metrics");
    let p1: Vec<ProcSample> = pids
        .iter()
        .map(|p| ProcSample::of(*p).expect("agent alive"))
        .collect();
    let wall = t0.elapsed().as_secs_f64();
    let per = |d: f64| d / f64::from(k) / (wall / 60.0);
    row.req_min = per(s1.requests() - s0.requests());
    row.sent_min = per(s1.sent_bytes() - s0.sent_bytes());
    row.recv_min = per(s1.received_bytes() - s0.received_bytes());
    let cpu: Vec<f64> = p0
        .iter()
        .zip(&p1)
        .map(|(a, b)| (b.cpu_ns - a.cpu_ns) as f64 / 1e9 / wall * 100.0)
        .collect();
    row.cpu_mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
    row.cpu_max = cpu.iter().copied().fold(0.0, f64::max);
    row.rss_mib = p1
        .iter()
        .map(|p| p.rss_kb as f64 / 1024.0)
        .fold(0.0, f64::max);

    // The storm: etcd restarted under every agent.
    let logs0: Vec<usize> = nodes.iter().map(|nd| nd.log().len()).collect();
    etcd.members[0].stop();
    etcd.members[0].restart();
    let down = Instant::now();
    let first = loop {
        if let Some(s) = Scrape::take(&ns, &url) {
            break s;
        }
        assert!(
            down.elapsed() < Duration::from_secs(60),
            "etcd did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let back = Instant::now();
    // Counters start from zero in the new process: the first scrape holds
    // every Range since it started.
    let mut samples = vec![(down, 0.0), (back, first.ranges())];
    let (probe_k, probe_v) = sim_lease(PROBE);
    v3.must("write the probe lease", |mut c| async move {
        c.put(probe_k, probe_v, None).await.map(|_| ())
    });
    let mut reconverged = None;
    while back.elapsed() < Duration::from_secs(15) || reconverged.is_none() {
        if reconverged.is_none() && counters.iter_mut().all(|c| c.has(sim_net(PROBE).into())) {
            reconverged = Some(back.elapsed().as_secs_f64());
        }
        if let Some(s) = Scrape::take(&ns, &url) {
            samples.push((Instant::now(), s.ranges()));
        }
        assert!(
            back.elapsed() < DEADLINE,
            "agents did not reconverge after the restart"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    row.storm_s = reconverged.unwrap_or_default();
    row.storm_ranges = samples.last().map_or(0.0, |s| s.1);
    row.storm_rps = peak_rate(&samples);
    row.relists = nodes
        .iter()
        .zip(&logs0)
        .map(|(nd, from)| {
            nd.log()[*from..]
                .matches("listing the leases again")
                .count()
        })
        .sum();

    // The burst.
    let b0 = sample_all(&pids);
    row.burst_write_s = write_sims(&v3, n, n + burst).as_secs_f64();
    let last_write = Instant::now();
    let want = all + 1 + burst as usize;
    row.burst_s = wait_routes(
        &mut counters,
        want,
        sim_net(n + burst - 1),
        last_write,
        "burst",
    );
    row.burst_cpu_s = cpu_s(&b0, &sample_all(&pids));
    if std::env::var_os("NETBOOT_SCALE_LOGS").is_some() {
        eprintln!("--- agent log of node 0 ---\n{}", nodes[0].log());
    }
    drop(counters);
    drop(nodes);
    drop(etcd);
    row
}

/// The highest rate over any window of at least a second between samples
/// `(time, counter)`.
fn peak_rate(samples: &[(Instant, f64)]) -> f64 {
    let mut best: f64 = 0.0;
    for (j, (tj, vj)) in samples.iter().enumerate() {
        if let Some((ti, vi)) = samples[..j]
            .iter()
            .rev()
            .find(|(ti, _)| tj.duration_since(*ti) >= Duration::from_secs(1))
        {
            best = best.max((vj - vi) / tj.duration_since(*ti).as_secs_f64());
        }
    }
    best
}

#[test]
#[ignore = "a measurement of several minutes per configuration; scripts/scale.sh runs it"]
fn agent_scale() {
    require_root();
    let leases = env_list("NETBOOT_SCALE_LEASES", "100,1000,5000");
    let agents = env_list("NETBOOT_SCALE_AGENTS", "1,20");
    let idle = env_list("NETBOOT_SCALE_IDLE_SECS", "300")[0] as u64;
    let burst = env_list("NETBOOT_SCALE_BURST", "1000")[0];
    assert!(
        agents.iter().all(|k| (1..=100).contains(k)),
        "1 to 100 agents"
    );
    eprintln!(
        "agent scale: leases {leases:?}, agents {agents:?}, idle window {idle} s, burst {burst}"
    );
    eprintln!("{HEADER}");
    let mut lines = Vec::new();
    for &k in &agents {
        for &n in &leases {
            let row = measure(n, k, idle, burst);
            eprintln!("{}", row.line());
            lines.push(row.line());
        }
    }
    let table = format!("{HEADER}\n{}\n", lines.join("\n"));
    println!("{table}");
    if let Ok(path) = std::env::var("NETBOOT_SCALE_OUT") {
        std::fs::write(&path, &table).unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}
