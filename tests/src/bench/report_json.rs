//! The JSON dump of every number (`--json FILE`).

use super::cells::get;
use super::goals::{goals, goals17};
use super::phases::PerImpl;
use super::plugins::Impl;
use super::report::{proc_counts, rss_table, sync_count, Results};
use super::report_scale::{paired, scale_bounds};
use super::stats::{ratio, round, Series};
use serde_json::{json, Map, Value};

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
                let datapath: Map<String, Value> = l
                    .datapath
                    .iter()
                    .map(|(k, d)| {
                        let vals = |s: &Series| {
                            json!({"median": round(s.median()), "min": round(s.quantile(0.0)), "max": round(s.max()),
                                   "samples": s.0.iter().map(|v| round(*v)).collect::<Vec<_>>()})
                        };
                        (k.to_string(), json!({
                            "hostport_tcp_mbps": vals(&d.hostport_mbps),
                            "pod_to_pod_tcp_mbps": vals(&d.pod_to_pod_mbps),
                            "hostport_cpu_us_per_mb": vals(&d.hostport_cpu_us_per_mb),
                            "pod_to_pod_cpu_us_per_mb": vals(&d.pod_to_pod_cpu_us_per_mb),
                            "hostport_new_conns_per_s": vals(&d.hostport_conns_per_s),
                        }))
                    })
                    .collect();
                json!({
                    "existing_pods": l.level,
                    "add": per_impl_json(&l.add), "del": per_impl_json(&l.del),
                    "add_cpu": per_impl_json(&l.add_cpu), "del_cpu": per_impl_json(&l.del_cpu),
                    "bridge_port_removal_cpu": per_impl_json(&l.port_del_cpu),
                    "datapath": datapath,
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
        let r = |(a, b): (f64, f64)| round(ratio(a, b));
        v["native_over_base_node_same_rounds"] = Value::Array(
            paired(s)
                .into_iter()
                .map(|p| {
                    json!({"existing_pods": p.level, "add_cpu": r(p.add_cpu), "del_cpu": r(p.del_cpu),
                           "bridge_port_removal_cpu": r(p.port_del_cpu),
                           "add_wall": r(p.add_wall), "hostport_tcp_mbps": r(p.hostport),
                           "pod_to_pod_tcp_mbps": r(p.pod_to_pod), "hostport_cpu_us_per_mb": r(p.hostport_cpu),
                           "pod_to_pod_cpu_us_per_mb": r(p.pod_to_pod_cpu), "hostport_new_conns_per_s": r(p.conns)})
                })
                .collect(),
        );
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
    let goal_json = |gs: Vec<super::cells::Goal>| {
        Value::Array(
            gs.into_iter()
                .map(|g| json!({"goal": g.goal, "met": g.met, "value": round(g.value), "measured": g.measured}))
                .collect(),
        )
    };
    root.insert("goals".into(), goal_json(goals(r)));
    root.insert("goals_issue17".into(), goal_json(goals17(r)));
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
