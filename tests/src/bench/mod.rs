//! The plugin benchmark (`bench_plugin`): the reference chain (Debian's
//! `bridge` + `host-local` + `portmap`, called directly as a runtime would)
//! against `netboot-cni` in bridge mode and in native mode (no binary on
//! its CNI_PATH), one port mapping per pod, alternating A/B in one run.
//! Issue 3's "Benchmark" section.
//!
//! Phases (all by default; `--only` picks some):
//! - `ab`: ADD and DEL median/p95 of the three, ratios, ADD+DEL totals;
//! - `rss`: peak RSS of every plugin process (see [`probe`]);
//! - `procs`: processes spawned per ADD/DEL (`strace -f`);
//! - `concurrent`: wall time of N concurrent ADDs, then DELs;
//! - `scale`: ADD/DEL of one more pod with 1, 100, 500, 1000 pods on the
//!   node, and the data path at each level ([`datapath`]).
//!
//! Safety: every plugin runs inside node namespaces this program creates
//! (it `setns()`es itself into them; it never touches the root netns), pods
//! are bare namespaces, and everything is deleted at the end, on a panic
//! (hook, since release builds abort) or on SIGINT/SIGTERM ([`cleanup`]).

mod cells;
mod cleanup;
mod datapath;
mod goals;
mod phases;
mod plugins;
mod portdel;
mod probe;
mod report;
mod report_json;
mod report_scale;
mod stats;

use netboot_tests::{bin_path, require_root};
use plugins::{BenchNode, Impl, Instr, Pod, MAX_PODS};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "\
usage: bench_plugin [ITERATIONS] [--iterations N] [--scale L1,L2,...] [--scale-reps N]
                    [--datapath-reps N] [--datapath-settle SECS] [--settle SECS]
                    [--concurrency N] [--rounds N]
                    [--samples N] [--only ab,rss,procs,concurrent,scale] [--json FILE]

  --iterations N   alternating ADD+DEL rounds of the A/B phase (default 30;
                   a bare number as first argument means the same)
  --scale LEVELS   existing-pod counts for the per-ADD scaling phase
                   (default 1,100,500,1000; at most 2000: the node's pod
                   subnet is a /21)
  --scale-reps N   ADD+DEL of one extra pod measured per level (default 9)
  --datapath-reps N  samples per level of a 256 MiB TCP transfer through a
                   hostPort and pod to pod, and of 200 new connections
                   through the hostPort (default 5; 0 skips them)
  --datapath-settle SECS  wait after attaching the data-path pods, before
                   measuring (default 15): their IPv6 start-up multicast
                   is flooded to every bridge port for ~12 s
  --settle SECS    wait after filling the nodes to a level, before measuring
                   it (default 0): the new pods' IPv6 start-up traffic (DAD,
                   MLD reports, router solicitations, flooded to every port
                   of the bridge) goes on for ~12 s; 15 measures steady state
  --concurrency N  pods attached at once in the concurrency phase (default 20)
  --rounds N       rounds of the concurrency phase (default 3)
  --samples N      ADD+DEL per implementation under the RSS probe and
                   under strace (default 3)
  --only PHASES    comma-separated subset of ab,rss,procs,concurrent,scale
  --json FILE      also write every number to FILE
Run as root (it creates network namespaces; never touches the root one).";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ab,
    Rss,
    Procs,
    Concurrent,
    Scale,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Ab,
        Phase::Rss,
        Phase::Procs,
        Phase::Concurrent,
        Phase::Scale,
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Ab => "ab",
            Phase::Rss => "rss",
            Phase::Procs => "procs",
            Phase::Concurrent => "concurrent",
            Phase::Scale => "scale",
        }
    }
}

#[derive(Debug)]
struct Opts {
    iterations: usize,
    scale: Vec<usize>,
    scale_reps: usize,
    datapath_reps: usize,
    datapath_settle: u64,
    settle: u64,
    concurrency: usize,
    rounds: usize,
    samples: usize,
    only: Vec<Phase>,
    json: Option<PathBuf>,
}

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        iterations: 30,
        scale: vec![1, 100, 500, 1000],
        scale_reps: 9,
        datapath_reps: 5,
        datapath_settle: 15,
        settle: 0,
        concurrency: 20,
        rounds: 3,
        samples: 3,
        only: Phase::ALL.to_vec(),
        json: None,
    };
    let num = |flag: &str, v: Option<&String>| -> Result<usize, String> {
        v.ok_or(format!("{flag} needs a value"))?
            .parse::<usize>()
            .map_err(|e| format!("{flag}: {e}"))
    };
    let mut it = args.iter();
    let mut first = true;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--iterations" => o.iterations = num(a, it.next())?,
            "--scale-reps" => o.scale_reps = num(a, it.next())?,
            "--datapath-reps" => o.datapath_reps = num(a, it.next())?,
            "--datapath-settle" => o.datapath_settle = num(a, it.next())? as u64,
            "--settle" => o.settle = num(a, it.next())? as u64,
            "--concurrency" => o.concurrency = num(a, it.next())?,
            "--rounds" => o.rounds = num(a, it.next())?,
            "--samples" => o.samples = num(a, it.next())?,
            "--scale" => {
                let v = it.next().ok_or("--scale needs a value")?;
                let mut levels = v
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--scale {s:?}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                levels.sort_unstable();
                levels.dedup();
                o.scale = levels;
            }
            "--only" => {
                let v = it.next().ok_or("--only needs a value")?;
                o.only = v
                    .split(',')
                    .map(|s| {
                        Phase::ALL
                            .into_iter()
                            .find(|p| p.name() == s.trim())
                            .ok_or(format!("--only: unknown phase {s:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--json" => o.json = Some(PathBuf::from(it.next().ok_or("--json needs a file")?)),
            n if first && n.parse::<usize>().is_ok() => o.iterations = num("ITERATIONS", Some(a))?,
            other => return Err(format!("unknown argument {other:?}")),
        }
        first = false;
    }
    if o.scale.iter().any(|&l| l > MAX_PODS) {
        return Err(format!("--scale: at most {MAX_PODS} pods"));
    }
    if o.concurrency == 0 || o.concurrency > 1000 {
        return Err("--concurrency must be in 1..=1000".into());
    }
    if o.iterations == 0 || o.scale_reps == 0 || o.rounds == 0 || o.samples == 0 {
        return Err("counts must be at least 1".into());
    }
    Ok(o)
}

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--rss-probe") {
        let plugin = args.get(1).expect("--rss-probe needs the plugin path");
        probe::probe_main(plugin);
    }
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench_plugin: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 2 });
        }
    };
    require_root();
    cleanup::install();
    let netboot = bin_path("netboot-cni");
    println!("netboot-cni binary: {}", netboot.display());
    println!(
        "machine: {} CPUs; phases: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        opts.only
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(",")
    );
    let run = |p: Phase| opts.only.contains(&p);
    let t0 = Instant::now();
    let mut r = report::Results::default();
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    r.load.0 = load();

    if run(Phase::Ab) || run(Phase::Rss) || run(Phase::Procs) {
        // One node shared by the three implementations, as in a node that
        // switches modes: same cni0, same host-local store.
        let node = BenchNode::new("bench", &netboot);
        node.enter();
        if run(Phase::Ab) {
            let t = Instant::now();
            eprintln!("[bench] A/B: {} rounds of ADD+DEL x3", opts.iterations);
            r.ab = Some(phases::ab(&node, opts.iterations));
            r.phase_secs.push(("ab", t.elapsed().as_secs_f64()));
        }
        warm(&node, &Impl::ALL);
        if run(Phase::Rss) {
            let t = Instant::now();
            eprintln!("[bench] peak RSS: {} samples", opts.samples);
            r.rss = Some(phases::instrumented(&node, Instr::Probe, opts.samples));
            r.phase_secs.push(("rss", t.elapsed().as_secs_f64()));
        }
        if run(Phase::Procs) {
            let t = Instant::now();
            if netboot_tests::exec::run_argv(&["strace", "-V"]).success() {
                eprintln!("[bench] process count: {} samples", opts.samples);
                r.procs = Some(phases::instrumented(&node, Instr::Strace, opts.samples));
            } else {
                eprintln!("[bench] strace not installed: process count skipped");
            }
            r.phase_secs.push(("procs", t.elapsed().as_secs_f64()));
        }
    }

    if run(Phase::Concurrent) || run(Phase::Scale) {
        // One node per implementation: "existing pods" are pods of the
        // same kind, and neither's rule set slows the other down. A third
        // (native) stays at the first scale level, as a yardstick measured
        // in the same rounds.
        let native = BenchNode::new("bnat", &netboot);
        let reference = BenchNode::new("bref", &netboot);
        let base = run(Phase::Scale).then(|| BenchNode::new("bnat1", &netboot));
        let nodes = [(Impl::Native, &native), (Impl::Reference, &reference)];
        for (imp, node) in nodes {
            node.enter();
            warm(node, &[imp]);
        }
        if let Some(b) = &base {
            b.enter();
            warm(b, &[Impl::Native]);
        }
        if run(Phase::Concurrent) {
            let t = Instant::now();
            eprintln!(
                "[bench] concurrency: {} rounds of {} ADDs then DELs",
                opts.rounds, opts.concurrency
            );
            r.concurrent = Some(phases::concurrent(&nodes, opts.concurrency, opts.rounds));
            r.phase_secs.push(("concurrent", t.elapsed().as_secs_f64()));
        }
        if run(Phase::Scale) && !opts.scale.is_empty() {
            let t = Instant::now();
            eprintln!("[bench] scale: levels {:?}", opts.scale);
            let peers: Vec<datapath::Peer> = nodes
                .iter()
                .map(|(_, n)| *n)
                .chain(base.as_ref())
                .map(datapath::Peer::wire)
                .collect();
            let mut targets: Vec<datapath::Target> = nodes
                .iter()
                .zip(&peers)
                .map(|(&(imp, node), peer)| datapath::Target {
                    imp,
                    key: imp.key(),
                    node,
                    peer,
                    grows: true,
                })
                .collect();
            if let (Some(node), Some(peer)) = (&base, peers.last()) {
                targets.push(datapath::Target {
                    imp: Impl::Native,
                    key: phases::NATIVE_BASE,
                    node,
                    peer,
                    grows: false,
                });
            }
            let (scale, fillers) = phases::scale(
                &targets,
                &phases::ScaleOpts {
                    levels: &opts.scale,
                    reps: opts.scale_reps,
                    settle: std::time::Duration::from_secs(opts.settle),
                    datapath_reps: opts.datapath_reps,
                    datapath_settle: std::time::Duration::from_secs(opts.datapath_settle),
                },
            );
            r.scale = Some(scale);
            r.phase_secs.push(("scale", t.elapsed().as_secs_f64()));
            let t = Instant::now();
            drop(fillers);
            r.phase_secs
                .push(("scale teardown", t.elapsed().as_secs_f64()));
        }
    }
    r.total_secs = t0.elapsed().as_secs_f64();
    r.load.1 = load();

    report::print(
        &r,
        &[
            ("issue 3", goals::goals(&r)),
            (
                "issue 17: hostPorts as nftables map elements",
                goals::goals17(&r),
            ),
        ],
    );
    if let Some(path) = &opts.json {
        let config = json!({
            "iterations": opts.iterations, "scale": opts.scale, "scale_reps": opts.scale_reps,
            "datapath_reps": opts.datapath_reps, "datapath_settle_s": opts.datapath_settle, "settle_s": opts.settle,
            "concurrency": opts.concurrency, "rounds": opts.rounds, "samples": opts.samples,
            "only": opts.only.iter().map(|p| p.name()).collect::<Vec<_>>(),
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "netboot_cni": netboot, "reference_cni_path": netboot_tests::REFERENCE_CNI_PATH,
        });
        let text =
            serde_json::to_string_pretty(&report_json::to_json(&r, config)).expect("encode JSON");
        std::fs::write(path, text + "\n")
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        println!("numbers written to {}", path.display());
    }
    let left = cleanup::own_namespaces();
    if !left.is_empty() {
        eprintln!("[bench] namespaces still present: {left:?}; deleting");
        cleanup::emergency();
    }
}

/// One ADD+DEL per implementation so the bridge, the IPAM store and the
/// firewall tables exist: later numbers are the steady state of a node
/// that already runs pods.
fn warm(node: &BenchNode, imps: &[Impl]) {
    let mut pod = Pod::new(Impl::Native, "warm", 18089);
    for &imp in imps {
        pod.rename(imp, "warm", 18089);
        node.add(imp, &mut pod, Instr::Plain);
        node.del(imp, &mut pod, Instr::Plain);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn parses_flags() {
        let o = parse_args(&args("12")).unwrap();
        assert_eq!(o.iterations, 12);
        let o = parse_args(&args(
            "--scale 500,1,100 --concurrency 5 --only ab,scale --json x.json",
        ))
        .unwrap();
        assert_eq!(o.scale, [1, 100, 500]);
        assert_eq!(o.concurrency, 5);
        assert_eq!(o.only, [Phase::Ab, Phase::Scale]);
        assert!(parse_args(&args("--only nope")).is_err());
        assert!(parse_args(&args("--scale 5000")).is_err());
        assert!(parse_args(&args("--bogus")).is_err());
    }
}
