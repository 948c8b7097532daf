//! The measurements. Each phase runs its implementations alternately in
//! one run (A/B, order rotated every round) so that drift of the machine
//! hits all of them alike.

use super::datapath::{self, DataPathLevel, Target};
use super::plugins::{BenchNode, Impl, Instr, OpStats, Pod};
use super::stats::Series;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

/// Per-implementation series, keyed by `Impl::key`.
pub type PerImpl<T> = BTreeMap<&'static str, T>;

fn rotated(imps: &[Impl], by: usize) -> Vec<Impl> {
    let mut v = imps.to_vec();
    if !v.is_empty() {
        let n = v.len();
        v.rotate_left(by % n);
    }
    v
}

/// Phase 1: sequential ADD then DEL of one pod (one port mapping), each
/// implementation in turn, on one node.
#[derive(Debug, Default)]
pub struct Ab {
    pub iterations: usize,
    pub add: PerImpl<Series>,
    pub del: PerImpl<Series>,
    /// One fsync of a fresh 4 KiB file in the node's temp dir per round:
    /// how busy the disk was (native ADD fsyncs, the reference does not).
    pub disk_fsync: Series,
}

impl Ab {
    pub fn add_del(&self, imp: Impl) -> Series {
        match (self.add.get(imp.key()), self.del.get(imp.key())) {
            (Some(a), Some(d)) => Series::sum(&[a, d]),
            _ => Series::default(),
        }
    }
}

pub fn ab(node: &BenchNode, iterations: usize) -> Ab {
    let warmup = 2;
    let mut out = Ab {
        iterations,
        ..Ab::default()
    };
    for i in 0..iterations + warmup {
        // A fresh pod netns per round, shared by the three (each detaches
        // before the next attaches).
        let mut pod = Pod::new(Impl::Native, &format!("ab{i}"), 18080);
        let fsync = disk_fsync(&node.node.dir().join("fsync-probe"));
        if i >= warmup {
            out.disk_fsync.push(fsync);
        }
        for imp in rotated(&Impl::ALL, i) {
            pod.rename(imp, &format!("ab{i}"), 18080);
            let a = node.add(imp, &mut pod, Instr::Plain);
            let d = node.del(imp, &mut pod, Instr::Plain);
            if i >= warmup {
                out.add.entry(imp.key()).or_default().push(a.elapsed);
                out.del.entry(imp.key()).or_default().push(d.elapsed);
            }
        }
    }
    out
}

/// Time to write and fsync a new 4 KiB file (then removed).
fn disk_fsync(path: &std::path::Path) -> Duration {
    use std::io::Write;
    let t = Instant::now();
    let mut f = std::fs::File::create(path).expect("create fsync probe");
    f.write_all(&[0u8; 4096]).expect("write fsync probe");
    f.sync_all().expect("fsync probe");
    let took = t.elapsed();
    let _ = std::fs::remove_file(path);
    took
}

/// Phases 5 and 6: ADD/DEL under the RSS probe or under strace.
#[derive(Debug, Default)]
pub struct Instrumented {
    pub samples: usize,
    pub add: PerImpl<Vec<OpStats>>,
    pub del: PerImpl<Vec<OpStats>>,
}

pub fn instrumented(node: &BenchNode, instr: Instr, samples: usize) -> Instrumented {
    let mut out = Instrumented {
        samples,
        ..Instrumented::default()
    };
    let name = if instr == Instr::Probe { "rss" } else { "st" };
    for i in 0..samples {
        let mut pod = Pod::new(Impl::Native, &format!("{name}{i}"), 18081);
        for imp in rotated(&Impl::ALL, i) {
            pod.rename(imp, &format!("{name}{i}"), 18081);
            let a = node.add(imp, &mut pod, instr);
            let d = node.del(imp, &mut pod, instr);
            out.add.entry(imp.key()).or_default().push(a);
            out.del.entry(imp.key()).or_default().push(d);
        }
    }
    out
}

/// Phase 4: `n` pods attached (then detached) at once, one thread each.
#[derive(Debug, Default)]
pub struct Concurrent {
    pub n: usize,
    pub rounds: usize,
    /// Wall time of all ADDs, one sample per round.
    pub add_wall: PerImpl<Series>,
    pub del_wall: PerImpl<Series>,
    /// Latency of each single ADD / DEL inside those rounds.
    pub add_each: PerImpl<Series>,
    pub del_each: PerImpl<Series>,
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Del,
}

/// All of `pods` at once; returns (wall time, each op's latency).
fn burst(node: &BenchNode, imp: Impl, pods: &mut [Pod], op: Op) -> (Duration, Vec<Duration>) {
    let barrier = Barrier::new(pods.len() + 1);
    std::thread::scope(|s| {
        // Threads are created by this thread, which is in `node`'s netns,
        // so they and the plugins they spawn start there too.
        let handles: Vec<_> = pods
            .iter_mut()
            .map(|pod| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    match op {
                        Op::Add => node.add(imp, pod, Instr::Plain).elapsed,
                        Op::Del => node.del(imp, pod, Instr::Plain).elapsed,
                    }
                })
            })
            .collect();
        barrier.wait();
        let t = Instant::now();
        let each: Vec<Duration> = handles
            .into_iter()
            .map(|h| h.join().expect("concurrent plugin call"))
            .collect();
        (t.elapsed(), each)
    })
}

pub fn concurrent(nodes: &[(Impl, &BenchNode)], n: usize, rounds: usize) -> Concurrent {
    let mut out = Concurrent {
        n,
        rounds,
        ..Concurrent::default()
    };
    for round in 0..rounds {
        let order: Vec<_> = if round % 2 == 0 {
            nodes.to_vec()
        } else {
            nodes.iter().rev().copied().collect()
        };
        for (imp, node) in order {
            node.enter();
            let mut pods: Vec<Pod> = (0..n)
                .map(|k| Pod::new(imp, &format!("c{round}-{k}-"), 30000 + k as u16))
                .collect();
            let (wall, each) = burst(node, imp, &mut pods, Op::Add);
            out.add_wall.entry(imp.key()).or_default().push(wall);
            let s = out.add_each.entry(imp.key()).or_default();
            each.into_iter().for_each(|d| s.push(d));
            let (wall, each) = burst(node, imp, &mut pods, Op::Del);
            out.del_wall.entry(imp.key()).or_default().push(wall);
            let s = out.del_each.entry(imp.key()).or_default();
            each.into_iter().for_each(|d| s.push(d));
        }
    }
    out
}

/// Phase 3: cost of one more pod with `level` pods already on the node.
#[derive(Debug, Default)]
pub struct ScaleLevel {
    pub level: usize,
    pub add: PerImpl<Series>,
    pub del: PerImpl<Series>,
    /// CPU time of the same calls (see `OpStats::cpu`).
    pub add_cpu: PerImpl<Series>,
    pub del_cpu: PerImpl<Series>,
    /// Native nodes only: CPU time of the kernel's bridge-port removal
    /// alone, by hand in the same rounds (see [`super::portdel`]).
    pub port_del_cpu: PerImpl<Series>,
    /// The data path at this level (see [`datapath`]).
    pub datapath: PerImpl<DataPathLevel>,
}

#[derive(Debug, Default)]
pub struct Scale {
    pub reps: usize,
    /// Wait between filling a level and measuring it.
    pub settle: Duration,
    pub levels: Vec<ScaleLevel>,
    /// ADD latency of every filler pod, in order (the growth curve; two
    /// filler ADDs run at a time).
    pub fill: PerImpl<Series>,
}

/// Filler pods are attached by this many threads at once: the state they
/// leave is the same, and the reference chain fills 500 pods in half the
/// time (its per-pod cost grows with the rule set).
const FILL_WORKERS: usize = 2;

/// Attaches pods `from..to` with `workers` threads (spawned here, so in
/// `node`'s netns); returns them in order with each ADD's latency.
fn fill_to(
    node: &BenchNode,
    imp: Impl,
    from: usize,
    to: usize,
    workers: usize,
) -> Vec<(Pod, Duration)> {
    let next = AtomicUsize::new(from);
    let done = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= to {
                    break;
                }
                let mut pod = Pod::new(imp, &format!("f{k}-"), 20000 + k as u16);
                let took = node.add(imp, &mut pod, Instr::Plain).elapsed;
                done.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((k, pod, took));
            });
        }
    });
    let mut v = done.into_inner().unwrap_or_else(|e| e.into_inner());
    v.sort_by_key(|(k, _, _)| *k);
    v.into_iter().map(|(_, p, t)| (p, t)).collect()
}

/// The key of the native node that stays at the first level.
pub const NATIVE_BASE: &str = "netboot_native_base";

/// How the scale phase runs: levels, samples per level, the wait after
/// filling, data-path samples per level (0: none) and the wait before
/// them.
pub struct ScaleOpts<'a> {
    pub levels: &'a [usize],
    pub reps: usize,
    pub settle: Duration,
    pub datapath_reps: usize,
    pub datapath_settle: Duration,
}

/// Fillers stay attached until the node is deleted (deleting the node
/// netns removes their veths and rules; the pod namespaces are deleted
/// when the returned pods drop).
pub fn scale(targets: &[Target], opts: &ScaleOpts) -> (Scale, Vec<Pod>) {
    let (levels, reps, settle) = (opts.levels, opts.reps, opts.settle);
    let mut out = Scale {
        reps,
        settle,
        ..Scale::default()
    };
    let mut fillers: PerImpl<Vec<Pod>> = BTreeMap::new();
    let started = Instant::now();
    for &level in levels {
        for t in targets {
            let want = if t.grows { level } else { levels[0] };
            t.node.enter();
            let pods = fillers.entry(t.key).or_default();
            let fill = out.fill.entry(t.key).or_default();
            for (pod, took) in fill_to(t.node, t.imp, pods.len(), want, FILL_WORKERS) {
                fill.push(took);
                pods.push(pod);
            }
            eprintln!(
                "[bench] scale: {} ({}) has {want} pods ({:.0} s into the phase)",
                t.imp.label(),
                t.key,
                started.elapsed().as_secs_f64()
            );
        }
        // Optionally let the new pods' IPv6 start-up traffic (DAD, MLD,
        // router solicitations: ~12 s, flooded to every bridge port) end.
        std::thread::sleep(settle);
        let mut lvl = ScaleLevel {
            level,
            ..ScaleLevel::default()
        };
        let mut extra: PerImpl<Pod> = BTreeMap::new();
        for j in 0..reps {
            let mut order = targets.to_vec();
            order.rotate_left(j % targets.len().max(1));
            for t in order {
                t.node.enter();
                let name = format!("x{level}-{j}-");
                let port = 40000 + j as u16;
                let pod = extra
                    .entry(t.key)
                    .or_insert_with(|| Pod::new(t.imp, &name, port));
                pod.rename(t.imp, &name, port);
                let a = t.node.add(t.imp, pod, Instr::Plain);
                let d = t.node.del(t.imp, pod, Instr::Plain);
                lvl.add.entry(t.key).or_default().push(a.elapsed);
                lvl.del.entry(t.key).or_default().push(d.elapsed);
                lvl.add_cpu.entry(t.key).or_default().push(a.cpu);
                lvl.del_cpu.entry(t.key).or_default().push(d.cpu);
                if t.imp == Impl::Native {
                    if let Some(c) = super::portdel::bridge_port_removal(pod.ns.path()) {
                        lvl.port_del_cpu.entry(t.key).or_default().push(c);
                    }
                }
            }
        }
        if opts.datapath_reps > 0 {
            eprintln!("[bench] scale: data path at {level} pods");
            let (reps, settle) = (opts.datapath_reps, opts.datapath_settle);
            for (key, d) in datapath::measure(targets, level, reps, settle) {
                lvl.datapath.insert(key, d);
            }
        }
        out.levels.push(lvl);
    }
    (out, fillers.into_values().flatten().collect())
}
