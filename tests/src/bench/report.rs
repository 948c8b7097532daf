//! The printed tables and their shared formatting; the goals are in
//! [`super::goals`] (printed here), the scale section in [`super::report_scale`], the
//! JSON dump in [`super::report_json`].

use super::cells::{f, get, print_goals, x, Goal};
use super::phases::{Ab, Concurrent, Instrumented, Scale};
use super::plugins::{Impl, OpStats};
use super::stats::{ratio, Series};
use std::collections::BTreeMap;

/// Everything one run measured (a phase left out by `--only` is `None`).
#[derive(Debug, Default)]
pub struct Results {
    pub ab: Option<Ab>,
    pub rss: Option<Instrumented>,
    pub procs: Option<Instrumented>,
    pub concurrent: Option<Concurrent>,
    pub scale: Option<Scale>,
    pub phase_secs: Vec<(&'static str, f64)>,
    pub total_secs: f64,
    /// /proc/loadavg at the start and the end (the VM may be shared).
    pub load: (String, String),
}

/// Prints every table, then each goal section (title, goals) in order.
pub fn print(r: &Results, goal_sections: &[(&str, Vec<Goal>)]) {
    println!();
    println!(
        "load average (1/5/15 min) at start: {}; at end: {}",
        r.load.0, r.load.1
    );
    if let Some(ab) = &r.ab {
        print_ab(ab);
    }
    if let Some(s) = &r.scale {
        super::report_scale::print_scale(s);
    }
    if let Some(c) = &r.concurrent {
        print_concurrent(c);
    }
    if let Some(i) = &r.rss {
        print_rss(i, r.procs.as_ref());
    }
    if let Some(i) = &r.procs {
        print_procs(i);
    }
    for (title, goals) in goal_sections {
        println!();
        println!("== goals ({title}) ==");
        print_goals(goals);
    }
    let phases: Vec<String> = r
        .phase_secs
        .iter()
        .map(|(p, s)| format!("{p} {s:.1} s"))
        .collect();
    println!();
    println!(
        "total run time {:.1} s ({})",
        r.total_secs,
        phases.join(", ")
    );
}

fn print_ab(ab: &Ab) {
    println!();
    println!(
        "== 1-2. ADD and DEL of one pod with one port mapping: {} alternating rounds, ms ==",
        ab.iterations
    );
    println!("reference = Debian bridge+host-local+portmap called directly; netboot native: CNI_PATH is an empty dir");
    println!(
        "{:<8} {:>9} {:>8} | {:>9} {:>8} | {:>9} {:>8} | {:>11} {:>10} {:>10}",
        "",
        "reference",
        "",
        "nb bridge",
        "",
        "nb native",
        "",
        "ref/native",
        "native/ref",
        "bridge/ref"
    );
    println!(
        "{:<8} {:>9} {:>8} | {:>9} {:>8} | {:>9} {:>8} | {:>11} {:>10} {:>10}",
        "op", "median", "p95", "median", "p95", "median", "p95", "(x faster)", "", ""
    );
    let rows: Vec<(&str, [Series; 3])> = vec![
        ("ADD", Impl::ALL.map(|i| get(&ab.add, i).clone())),
        ("DEL", Impl::ALL.map(|i| get(&ab.del, i).clone())),
        ("ADD+DEL", Impl::ALL.map(|i| ab.add_del(i))),
    ];
    for (op, [r, b, n]) in rows {
        println!(
            "{op:<8} {:>9} {:>8} | {:>9} {:>8} | {:>9} {:>8} | {:>11} {:>10} {:>10}",
            f(r.median()),
            f(r.p95()),
            f(b.median()),
            f(b.p95()),
            f(n.median()),
            f(n.p95()),
            x(ratio(r.median(), n.median())),
            format!("{:.3}", ratio(n.median(), r.median())),
            format!("{:.3}", ratio(b.median(), r.median())),
        );
    }
    let d = &ab.disk_fsync;
    println!(
        "disk: write+fsync of a 4 KiB file in the node's dir, once per round: median {} ms, p95 {} ms, max {} ms",
        f(d.median()),
        f(d.p95()),
        f(d.max())
    );
}

fn print_concurrent(c: &Concurrent) {
    println!();
    println!(
        "== 4. {} concurrent ADDs, then {} concurrent DELs (one thread per pod): {} rounds, ms ==",
        c.n, c.n, c.rounds
    );
    println!(
        "{:<28} | {:>10} {:>10} | {:>10} {:>10} | {:>10}",
        "", "native", "", "reference", "", "ref/native"
    );
    println!(
        "{:<28} | {:>10} {:>10} | {:>10} {:>10} | {:>10}",
        "", "median", "max", "median", "max", ""
    );
    for (what, m) in [
        ("wall time of all ADDs", &c.add_wall),
        ("wall time of all DELs", &c.del_wall),
        ("single ADD inside the burst", &c.add_each),
        ("single DEL inside the burst", &c.del_each),
    ] {
        let (n, r) = (get(m, Impl::Native), get(m, Impl::Reference));
        println!(
            "{what:<28} | {:>10} {:>10} | {:>10} {:>10} | {:>10}",
            f(n.median()),
            f(n.max()),
            f(r.median()),
            f(r.max()),
            x(ratio(r.median(), n.median()))
        );
    }
}

/// Peak RSS of one (implementation, plugin binary), KiB: the max over its
/// samples, with what the process held at exit in the sample with the
/// largest own peak.
pub(super) struct RssRow {
    pub(super) imp: Impl,
    pub(super) plugin: String,
    pub(super) own: Option<u64>,
    pub(super) tree: u64,
    pub(super) anon: Option<u64>,
    pub(super) file: Option<u64>,
    pub(super) maps: Vec<(String, u64)>,
}

pub(super) fn rss_table(i: &Instrumented) -> Vec<RssRow> {
    let mut out = Vec::new();
    for imp in Impl::ALL {
        let mut per: BTreeMap<String, RssRow> = BTreeMap::new();
        for op in all_ops(i, imp) {
            for p in &op.procs {
                let Some(s) = &p.rss else { continue };
                let e = per.entry(p.plugin.clone()).or_insert(RssRow {
                    imp,
                    plugin: p.plugin.clone(),
                    own: None,
                    tree: 0,
                    anon: None,
                    file: None,
                    maps: Vec::new(),
                });
                if s.self_kib.is_some() && s.self_kib >= e.own {
                    e.own = s.self_kib;
                    e.anon = s.anon_kib;
                    e.file = s.file_kib;
                    e.maps = s.maps.clone();
                }
                e.tree = e.tree.max(s.tree_kib);
            }
        }
        out.extend(per.into_values());
    }
    out
}

fn all_ops(i: &Instrumented, imp: Impl) -> impl Iterator<Item = &OpStats> {
    i.add
        .get(imp.key())
        .into_iter()
        .chain(i.del.get(imp.key()))
        .flatten()
}

/// Peak RSS of the netboot-cni process in native mode (own, tree), KiB.
pub(super) fn native_rss(i: &Instrumented) -> Option<(Option<u64>, u64)> {
    rss_table(i)
        .into_iter()
        .find(|r| r.imp == Impl::Native && r.plugin == "netboot-cni")
        .map(|r| (r.own, r.tree))
}

/// The programs a plugin ran below itself, from the strace phase.
fn children_of(procs: Option<&Instrumented>, imp: Impl, plugin: &str) -> String {
    let Some(i) = procs else {
        return "its children".into();
    };
    let mut names: Vec<String> = all_ops(i, imp)
        .flat_map(|op| op.procs.iter())
        .filter(|p| p.plugin == plugin)
        .flat_map(|p| p.execs.iter().skip(1).cloned())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        "no children".into()
    } else {
        names.join(", ")
    }
}

fn kib(v: Option<u64>) -> String {
    v.map_or_else(
        || "-".into(),
        |k| format!("{k} KiB ({:.2} MiB)", k as f64 / 1024.0),
    )
}

fn print_rss(i: &Instrumented, procs: Option<&Instrumented>) {
    println!();
    println!(
        "== 5. Peak RSS, max over {} ADDs and {} DELs (own = VmHWM of that process at exit; tree = with the children it waited for) ==",
        i.samples, i.samples
    );
    println!(
        "{:<15} {:<12} {:>22} {:>22} {:>17}  tree includes",
        "implementation", "process", "own peak", "tree peak", "anon/file at exit"
    );
    for r in rss_table(i) {
        let af = match (r.anon, r.file) {
            (Some(a), Some(f)) => format!("{a}/{f} KiB"),
            _ => "-".into(),
        };
        println!(
            "{:<15} {:<12} {:>22} {:>22} {:>17}  {}",
            r.imp.label(),
            r.plugin,
            kib(r.own),
            kib(Some(r.tree)),
            af,
            children_of(procs, r.imp, &r.plugin)
        );
    }
    if let Some(r) = rss_table(i)
        .into_iter()
        .find(|r| r.imp == Impl::Native && r.plugin == "netboot-cni")
    {
        let top: Vec<String> = r
            .maps
            .iter()
            .take(6)
            .map(|(n, k)| format!("{n} {k}"))
            .collect();
        println!(
            "netboot native netboot-cni at exit, KiB by mapping: {}",
            top.join(", ")
        );
    }
    println!("(own and tree come from different kernel counters, which are per-CPU approximations: they may differ by a few hundred KiB)");
}

/// Mean number of fsync/fdatasync calls per op.
pub(super) fn sync_count(ops: &[OpStats]) -> f64 {
    let n = ops.len().max(1) as f64;
    ops.iter()
        .flat_map(|op| op.procs.iter())
        .map(|p| p.syncs as f64)
        .sum::<f64>()
        / n
}

/// Mean number of processes per op, and per program name.
pub(super) fn proc_counts(ops: &[OpStats]) -> (f64, BTreeMap<String, f64>) {
    let n = ops.len().max(1) as f64;
    let mut per: BTreeMap<String, f64> = BTreeMap::new();
    let mut total = 0.0;
    for op in ops {
        for p in &op.procs {
            for e in &p.execs {
                *per.entry(e.clone()).or_default() += 1.0 / n;
                total += 1.0 / n;
            }
        }
    }
    (total, per)
}

fn count(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else {
        format!("{v:.1}")
    }
}

fn print_procs(i: &Instrumented) {
    println!();
    println!(
        "== 6. Processes and disk flushes per operation (strace -f, node in steady state, mean of {}) ==",
        i.samples
    );
    for imp in Impl::ALL {
        for (op, m) in [("ADD", &i.add), ("DEL", &i.del)] {
            let Some(ops) = m.get(imp.key()) else {
                continue;
            };
            let (total, per) = proc_counts(ops);
            let detail: Vec<String> = per
                .iter()
                .map(|(k, v)| format!("{k} {}", count(*v)))
                .collect();
            println!(
                "{:<15} {op}: {:>5} processes ({}); {} fsync",
                imp.label(),
                count(total),
                detail.join(", "),
                count(sync_count(ops))
            );
        }
    }
}
