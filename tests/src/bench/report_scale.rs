//! Section 3 of the report: one more pod with N pods on the node, and the
//! data path at each level.

use super::cells::{f, get, x};
use super::datapath::DataPathLevel;
use super::phases::{PerImpl, Scale, ScaleLevel, NATIVE_BASE};
use super::plugins::Impl;
use super::stats::{ratio, Series};

pub(super) fn print_scale(s: &Scale) {
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
    // One line a level: ADD and DEL of each implementation, and the ratio.
    let row = |level: usize, add: &PerImpl<Series>, del: &PerImpl<Series>| {
        let (na, nd) = (get(add, Impl::Native), get(del, Impl::Native));
        let (ra, rd) = (get(add, Impl::Reference), get(del, Impl::Reference));
        println!(
            "{:>13} | {:>10} {:>10} | {:>10} {:>10} | {:>14}",
            level,
            f(na.median()),
            f(nd.median()),
            f(ra.median()),
            f(rd.median()),
            x(ratio(ra.median(), na.median()))
        );
    };
    for l in &s.levels {
        row(l.level, &l.add, &l.del);
    }
    println!("CPU time of the same calls (user+sys of the plugin processes and their children; load inflates it far less than wall time), ms:");
    for l in &s.levels {
        row(l.level, &l.add_cpu, &l.del_cpu);
    }
    if let Some((lo, hi)) = scale_bounds(s) {
        for (imp, op) in [
            (Impl::Native, "ADD"),
            (Impl::Native, "DEL"),
            (Impl::Reference, "ADD"),
            (Impl::Reference, "DEL"),
        ] {
            let m = |l: &ScaleLevel, cpu: bool| {
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
    print_datapath(s);
    print_paired(s);
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

pub(super) fn scale_bounds(s: &Scale) -> Option<(&ScaleLevel, &ScaleLevel)> {
    let lo = s.levels.iter().min_by_key(|l| l.level)?;
    let hi = s.levels.iter().max_by_key(|l| l.level)?;
    (lo.level != hi.level).then_some((lo, hi))
}

/// The data path rows: for each level, native then reference, medians.
fn print_datapath(s: &Scale) {
    if s.levels.iter().all(|l| l.datapath.is_empty()) {
        return;
    }
    println!(
        "data path, median of {}: MB/s of a 256 MiB TCP transfer and its CPU cost (sender + receiver thread, µs per MB); new connections/s through the hostPort (200 each):",
        s.levels
            .iter()
            .flat_map(|l| l.datapath.values())
            .map(|d| d.hostport_mbps.0.len())
            .max()
            .unwrap_or(0)
    );
    println!(
        "{:>13} | {:>15} {:>15} {:>8} | {:>15} {:>15} {:>8}",
        "", "native", "", "", "reference", "", ""
    );
    println!(
        "{:>13} | {:>15} {:>15} {:>8} | {:>15} {:>15} {:>8}",
        "existing pods",
        "hostPort MB/s",
        "pod-pod MB/s",
        "conn/s",
        "hostPort MB/s",
        "pod-pod MB/s",
        "conn/s"
    );
    let cell =
        |l: &ScaleLevel, imp: Impl, pick: fn(&DataPathLevel) -> (&Series, Option<&Series>)| {
            l.datapath.get(imp.key()).map_or_else(
                || "-".to_string(),
                |d| match pick(d) {
                    (v, Some(cpu)) => format!("{:.0} ({:.0}µs)", v.median(), cpu.median()),
                    (v, None) => format!("{:.0}", v.median()),
                },
            )
        };
    for l in &s.levels {
        let row: Vec<String> = [Impl::Native, Impl::Reference]
            .into_iter()
            .flat_map(|imp| {
                [
                    cell(l, imp, |d| {
                        (&d.hostport_mbps, Some(&d.hostport_cpu_us_per_mb))
                    }),
                    cell(l, imp, |d| {
                        (&d.pod_to_pod_mbps, Some(&d.pod_to_pod_cpu_us_per_mb))
                    }),
                    cell(l, imp, |d| (&d.hostport_conns_per_s, None)),
                ]
            })
            .collect();
        println!(
            "{:>13} | {:>15} {:>15} {:>8} | {:>15} {:>15} {:>8}",
            l.level, row[0], row[1], row[2], row[3], row[4], row[5]
        );
    }
}

/// `key`'s series in `m` (an implementation's key, or [`NATIVE_BASE`]).
pub(super) fn by_key<'a>(m: &'a PerImpl<Series>, key: &str) -> &'a Series {
    static EMPTY: Series = Series(Vec::new());
    m.get(key).unwrap_or(&EMPTY)
}

/// Native at each level against the native node that stays at the first
/// level, same rounds: (level, [ADD cpu, DEL cpu] as (at level, at base),
/// data path ratios (hostPort, pod to pod, conn/s) when measured).
pub(super) struct Paired {
    pub level: usize,
    pub add_cpu: (f64, f64),
    pub del_cpu: (f64, f64),
    /// The kernel's bridge-port removal by hand (see `portdel`).
    pub port_del_cpu: (f64, f64),
    pub add_wall: (f64, f64),
    pub hostport: (f64, f64),
    pub pod_to_pod: (f64, f64),
    pub hostport_cpu: (f64, f64),
    pub pod_to_pod_cpu: (f64, f64),
    pub conns: (f64, f64),
}

pub(super) fn paired(s: &Scale) -> Vec<Paired> {
    let n = Impl::Native.key();
    let med = |m: &PerImpl<Series>| (by_key(m, n).median(), by_key(m, NATIVE_BASE).median());
    s.levels
        .iter()
        .filter(|l| l.add_cpu.contains_key(NATIVE_BASE))
        .map(|l| {
            let dp = |pick: fn(&DataPathLevel) -> &Series| match (
                l.datapath.get(n),
                l.datapath.get(NATIVE_BASE),
            ) {
                (Some(a), Some(b)) => (pick(a).median(), pick(b).median()),
                _ => (f64::NAN, f64::NAN),
            };
            Paired {
                level: l.level,
                add_cpu: med(&l.add_cpu),
                del_cpu: med(&l.del_cpu),
                port_del_cpu: med(&l.port_del_cpu),
                add_wall: med(&l.add),
                hostport: dp(|d| &d.hostport_mbps),
                pod_to_pod: dp(|d| &d.pod_to_pod_mbps),
                hostport_cpu: dp(|d| &d.hostport_cpu_us_per_mb),
                pod_to_pod_cpu: dp(|d| &d.pod_to_pod_cpu_us_per_mb),
                conns: dp(|d| &d.hostport_conns_per_s),
            }
        })
        .collect()
}

fn print_paired(s: &Scale) {
    let rows = paired(s);
    let Some(base) = s.levels.first().map(|l| l.level) else {
        return;
    };
    if rows.is_empty() {
        return;
    }
    println!(
        "netboot native at N pods / a native node holding {base} pod(s), measured in the same rounds (medians; CPU ms, data path as above):"
    );
    println!(
        "{:>13} | {:>18} {:>18} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8}",
        "existing pods",
        "ADD CPU N/base",
        "DEL CPU N/base",
        "ADD wall",
        "hostPort",
        "cpu/MB",
        "pod-pod",
        "cpu/MB",
        "conn/s"
    );
    let r = |(a, b): (f64, f64)| x(ratio(a, b));
    let both = |(a, b): (f64, f64)| format!("{}/{} {}", f(a), f(b), x(ratio(a, b)));
    for p in rows {
        println!(
            "{:>13} | {:>18} {:>18} {:>8} | {:>8} {:>8} {:>8} {:>8} {:>8}",
            p.level,
            both(p.add_cpu),
            both(p.del_cpu),
            r(p.add_wall),
            r(p.hostport),
            r(p.hostport_cpu),
            r(p.pod_to_pod),
            r(p.pod_to_pod_cpu),
            r(p.conns)
        );
    }
}
