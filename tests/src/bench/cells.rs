//! The pieces every report section shares: number cells, a series by
//! implementation, and a goal with its verdict line.

use super::phases::PerImpl;
use super::plugins::Impl;
use super::stats::Series;

pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
    pub value: f64,
}

pub(super) fn get(m: &PerImpl<Series>, imp: Impl) -> &Series {
    static EMPTY: Series = Series(Vec::new());
    m.get(imp.key()).unwrap_or(&EMPTY)
}

pub(super) fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}")
    } else {
        "-".into()
    }
}

pub(super) fn x(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}x")
    } else {
        "-".into()
    }
}

pub(super) fn print_goals(goals: &[Goal]) {
    for g in goals {
        println!(
            "{:<10} {:<62} {}",
            match g.met {
                Some(true) => "MET",
                Some(false) => "NOT MET",
                None => "NOT RUN",
            },
            g.goal,
            g.measured
        );
    }
}
