//! The printed tables, the goals of issue 3, and the JSON dump.

use super::phases::{Ab, Concurrent, Instrumented, PerImpl, Scale};
use super::plugins::{Impl, OpStats};
use super::stats::{ratio, round, Series};
use serde_json::{json, Map, Value};
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

fn get(m: &PerImpl<Series>, imp: Impl) -> &Series {
    static EMPTY: Series = Series(Vec::new());
    m.get(imp.key()).unwrap_or(&EMPTY)
}

fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "-".into()
    }
}

fn x(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}x")
    } else {
        "-".into()
    }
}

pub fn print(r: &Results) {
    println!();
    println!(
        "load average (1/5/15 min) at start: {}; at end: {}",
        r.load.0, r.load.1
    );
    if let Some(ab) = &r.ab {
        print_ab(ab);
    }
    if let Some(s) = &r.scale {
        print_scale(s);
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
    println!();
    println!("== goals (issue 3) ==");
    for g in goals(r) {
        println!(
            "{:<10} {:<52} {}",
            match g.met {
                Some(true) => "MET",
                Some(false) => "NOT MET",
                None => "NOT RUN",
            },
            g.goal,
            g.measured
        );
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

fn print_scale(s: &Scale) {
    println!();
    println!(
        "== 3. One more pod (ADD, then DEL) with N pods already on the node (distinct hostPorts), {} s after filling: median of {}, ms ==",
        s.settle.as_secs(),
        s.reps
    );
    println!(
        "{:>13} | {:>10} {:>10} | {:>10} {:>10} | {:>14}",
        "existing pods", "native ADD", "native DEL", "ref ADD", "ref DEL", "ref/native ADD"
    );
    for l in &s.levels {
        let (na, nd) = (get(&l.add, Impl::Native), get(&l.del, Impl::Native));
        let (ra, rd) = (get(&l.add, Impl::Reference), get(&l.del, Impl::Reference));
        println!(
            "{:>13} | {:>10} {:>10} | {:>10} {:>10} | {:>14}",
            l.level,
            f(na.median()),
            f(nd.median()),
            f(ra.median()),
            f(rd.median()),
            x(ratio(ra.median(), na.median()))
        );
    }
    println!("CPU time of the same calls (user+sys of the plugin processes and their children; load inflates it far less than wall time), ms:");
    for l in &s.levels {
        let (na, nd) = (get(&l.add_cpu, Impl::Native), get(&l.del_cpu, Impl::Native));
        let (ra, rd) = (
            get(&l.add_cpu, Impl::Reference),
            get(&l.del_cpu, Impl::Reference),
        );
        println!(
            "{:>13} | {:>10} {:>10} | {:>10} {:>10} | {:>14}",
            l.level,
            f(na.median()),
            f(nd.median()),
            f(ra.median()),
            f(rd.median()),
            x(ratio(ra.median(), na.median()))
        );
    }
    if let Some((lo, hi)) = scale_bounds(s) {
        for (imp, op) in [
            (Impl::Native, "ADD"),
            (Impl::Native, "DEL"),
            (Impl::Reference, "ADD"),
            (Impl::Reference, "DEL"),
        ] {
            let m = |l: &super::phases::ScaleLevel, cpu: bool| {
                let src = match (op == "ADD", cpu) {
                    (true, false) => &l.add,
                    (false, false) => &l.del,
                    (true, true) => &l.add_cpu,
                    (false, true) => &l.del_cpu,
                };
                get(src, imp).median()
            };
            println!(
                "{:<15} {op} cost@{} / cost@{}: {} (CPU time: {})",
                imp.label(),
                hi.level,
                lo.level,
                x(ratio(m(hi, false), m(lo, false))),
                x(ratio(m(hi, true), m(lo, true)))
            );
        }
    }
    for imp in [Impl::Native, Impl::Reference] {
        let fill = get(&s.fill, imp);
        if !fill.is_empty() {
            let n = fill.0.len();
            let tail = Series(fill.0[n.saturating_sub(20)..].to_vec());
            println!(
                "{:<15} filling the node: {n} ADDs, first {} ms, last 20 median {} ms",
                imp.label(),
                f(fill.0[0]),
                f(tail.median())
            );
        }
    }
}

fn scale_bounds(s: &Scale) -> Option<(&super::phases::ScaleLevel, &super::phases::ScaleLevel)> {
    let lo = s.levels.iter().min_by_key(|l| l.level)?;
    let hi = s.levels.iter().max_by_key(|l| l.level)?;
    (lo.level != hi.level).then_some((lo, hi))
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
struct RssRow {
    imp: Impl,
    plugin: String,
    own: Option<u64>,
    tree: u64,
    anon: Option<u64>,
    file: Option<u64>,
    maps: Vec<(String, u64)>,
}

fn rss_table(i: &Instrumented) -> Vec<RssRow> {
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
fn native_rss(i: &Instrumented) -> Option<(Option<u64>, u64)> {
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
fn sync_count(ops: &[OpStats]) -> f64 {
    let n = ops.len().max(1) as f64;
    ops.iter()
        .flat_map(|op| op.procs.iter())
        .map(|p| p.syncs as f64)
        .sum::<f64>()
        / n
}

/// Mean number of processes per op, and per program name.
fn proc_counts(ops: &[OpStats]) -> (f64, BTreeMap<String, f64>) {
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

pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
    pub value: f64,
}

fn goal(goal: String, measured: String, met: Option<bool>, value: f64) -> Goal {
    Goal {
        goal,
        measured,
        met,
        value,
    }
}

pub fn goals(r: &Results) -> Vec<Goal> {
    let mut out = Vec::new();
    let not_run = |g: &str| goal(g.into(), "(phase not run)".into(), None, f64::NAN);
    match &r.ab {
        Some(ab) => {
            let (ra, na) = (
                get(&ab.add, Impl::Reference).median(),
                get(&ab.add, Impl::Native).median(),
            );
            let v = ratio(ra, na);
            out.push(goal(
                "ADD >= 8x faster than the reference".into(),
                format!(
                    "{} (reference {} ms / native {} ms, medians)",
                    x(v),
                    f(ra),
                    f(na)
                ),
                v.is_finite().then_some(v >= 8.0),
                v,
            ));
            let (rt, nt) = (
                ab.add_del(Impl::Reference).median(),
                ab.add_del(Impl::Native).median(),
            );
            let v = ratio(rt, nt);
            out.push(goal(
                "ADD+DEL >= 4x faster than the reference".into(),
                format!(
                    "{} (reference {} ms / native {} ms, medians)",
                    x(v),
                    f(rt),
                    f(nt)
                ),
                v.is_finite().then_some(v >= 4.0),
                v,
            ));
        }
        None => {
            out.push(not_run("ADD >= 8x faster than the reference"));
            out.push(not_run("ADD+DEL >= 4x faster than the reference"));
        }
    }
    match r.scale.as_ref().and_then(|s| scale_bounds(s)) {
        Some((lo, hi)) => {
            let (a, b) = (
                get(&hi.add, Impl::Native).median(),
                get(&lo.add, Impl::Native).median(),
            );
            let v = ratio(a, b);
            let note = if hi.level < 500 {
                " (fewer than the 500 pods the goal names)"
            } else {
                ""
            };
            out.push(goal(
                format!("native per-ADD cost@{} <= 1.2x cost@{}", hi.level, lo.level),
                format!("{} ({} ms / {} ms){note}", x(v), f(a), f(b)),
                v.is_finite().then_some(v <= 1.2),
                v,
            ));
        }
        None => out.push(not_run("flat per-ADD cost up to 500 pods (<= 1.2x)")),
    }
    match &r.concurrent {
        Some(c) => {
            let w = get(&c.add_wall, Impl::Native);
            let v = w.median();
            let note = if c.n != 20 { " (goal is for 20)" } else { "" };
            out.push(goal(
                format!("{} concurrent native ADDs < 150 ms wall", c.n),
                format!(
                    "{} ms median of {} rounds (max {} ms){note}",
                    f(v),
                    w.0.len(),
                    f(w.max())
                ),
                v.is_finite().then_some(v < 150.0),
                v,
            ));
        }
        None => out.push(not_run("20 concurrent ADDs < 150 ms wall")),
    }
    match r.rss.as_ref().and_then(native_rss) {
        Some((own, tree)) => {
            let v = own.unwrap_or(tree) as f64 / 1024.0;
            let what = if own.is_some() {
                "netboot-cni process"
            } else {
                "netboot-cni + children (ptrace unavailable)"
            };
            out.push(goal(
                "peak RSS < 3 MiB (netboot-cni, native, ADD and DEL)".into(),
                format!(
                    "{v:.2} MiB {what}; with the nft it runs: {:.2} MiB",
                    tree as f64 / 1024.0
                ),
                Some(v < 3.0),
                v,
            ));
        }
        None => out.push(not_run("peak RSS < 3 MiB")),
    }
    out
}

fn per_impl_json(m: &PerImpl<Series>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, s)| (k.to_string(), s.to_json()))
            .collect::<Map<_, _>>(),
    )
}

pub fn to_json(r: &Results, config: Value) -> Value {
    let mut root = Map::new();
    root.insert("config".into(), config);
    if let Some(ab) = &r.ab {
        let add_del: PerImpl<Series> = Impl::ALL
            .iter()
            .map(|i| (i.key(), ab.add_del(*i)))
            .collect();
        let med = |m: &PerImpl<Series>, i: Impl| get(m, i).median();
        let ratios = json!({
            "add_reference_over_native": round(ratio(med(&ab.add, Impl::Reference), med(&ab.add, Impl::Native))),
            "add_native_over_reference": round(ratio(med(&ab.add, Impl::Native), med(&ab.add, Impl::Reference))),
            "del_reference_over_native": round(ratio(med(&ab.del, Impl::Reference), med(&ab.del, Impl::Native))),
            "del_native_over_reference": round(ratio(med(&ab.del, Impl::Native), med(&ab.del, Impl::Reference))),
            "add_del_reference_over_native": round(ratio(med(&add_del, Impl::Reference), med(&add_del, Impl::Native))),
            "add_del_native_over_reference": round(ratio(med(&add_del, Impl::Native), med(&add_del, Impl::Reference))),
            "add_bridge_over_reference": round(ratio(med(&ab.add, Impl::Bridge), med(&ab.add, Impl::Reference))),
            "del_bridge_over_reference": round(ratio(med(&ab.del, Impl::Bridge), med(&ab.del, Impl::Reference))),
            "add_del_bridge_over_reference": round(ratio(med(&add_del, Impl::Bridge), med(&add_del, Impl::Reference))),
        });
        root.insert(
            "add_del".into(),
            json!({
                "iterations": ab.iterations,
                "add": per_impl_json(&ab.add),
                "del": per_impl_json(&ab.del),
                "add_plus_del": per_impl_json(&add_del),
                "disk_fsync": ab.disk_fsync.to_json(),
                "ratios": ratios,
            }),
        );
    }
    if let Some(s) = &r.scale {
        let levels: Vec<Value> = s
            .levels
            .iter()
            .map(|l| {
                json!({
                    "existing_pods": l.level,
                    "add": per_impl_json(&l.add), "del": per_impl_json(&l.del),
                    "add_cpu": per_impl_json(&l.add_cpu), "del_cpu": per_impl_json(&l.del_cpu),
                })
            })
            .collect();
        let mut v = json!({"reps": s.reps, "levels": levels, "fill_add": per_impl_json(&s.fill)});
        if let Some((lo, hi)) = scale_bounds(s) {
            for imp in [Impl::Native, Impl::Reference] {
                for (op, a, b) in [("add", &hi.add, &lo.add), ("del", &hi.del, &lo.del)] {
                    v[format!(
                        "{}_{op}_cost_ratio_{}_over_{}",
                        imp.key(),
                        hi.level,
                        lo.level
                    )] = round(ratio(get(a, imp).median(), get(b, imp).median()));
                }
                for (op, a, b) in [
                    ("add", &hi.add_cpu, &lo.add_cpu),
                    ("del", &hi.del_cpu, &lo.del_cpu),
                ] {
                    v[format!(
                        "{}_{op}_cpu_ratio_{}_over_{}",
                        imp.key(),
                        hi.level,
                        lo.level
                    )] = round(ratio(get(a, imp).median(), get(b, imp).median()));
                }
            }
        }
        root.insert("scale".into(), v);
    }
    if let Some(c) = &r.concurrent {
        root.insert(
            "concurrent".into(),
            json!({
                "n": c.n, "rounds": c.rounds,
                "add_wall": per_impl_json(&c.add_wall), "del_wall": per_impl_json(&c.del_wall),
                "add_each": per_impl_json(&c.add_each), "del_each": per_impl_json(&c.del_each),
            }),
        );
    }
    if let Some(i) = &r.rss {
        let rows: Vec<Value> = rss_table(i)
            .into_iter()
            .map(|r| {
                json!({"implementation": r.imp.key(), "process": r.plugin, "own_peak_kib": r.own,
                       "tree_peak_kib": r.tree, "anon_kib_at_exit": r.anon, "file_kib_at_exit": r.file,
                       "kib_by_mapping_at_exit": r.maps.iter().map(|(n, k)| (n.clone(), json!(k))).collect::<Map<_, _>>()})
            })
            .collect();
        root.insert(
            "peak_rss".into(),
            json!({"samples": i.samples, "max": rows}),
        );
    }
    if let Some(i) = &r.procs {
        let mut m = Map::new();
        for imp in Impl::ALL {
            for (op, ops) in [("add", &i.add), ("del", &i.del)] {
                if let Some(ops) = ops.get(imp.key()) {
                    let (total, per) = proc_counts(ops);
                    m.insert(
                        format!("{}_{op}", imp.key()),
                        json!({"total": round(total), "fsyncs": round(sync_count(ops)), "per_program": per.into_iter().map(|(k, v)| (k, round(v))).collect::<Map<_, _>>()}),
                    );
                }
            }
        }
        root.insert(
            "processes_per_op".into(),
            json!({"samples": i.samples, "mean": m}),
        );
    }
    root.insert(
        "goals".into(),
        Value::Array(
            goals(r)
                .into_iter()
                .map(|g| json!({"goal": g.goal, "met": g.met, "value": round(g.value), "measured": g.measured}))
                .collect(),
        ),
    );
    root.insert(
        "phase_seconds".into(),
        Value::Object(
            r.phase_secs
                .iter()
                .map(|(p, s)| (p.to_string(), round(*s)))
                .collect(),
        ),
    );
    root.insert("total_seconds".into(), round(r.total_secs));
    root.insert(
        "loadavg".into(),
        json!({"start": r.load.0, "end": r.load.1}),
    );
    Value::Object(root)
}
