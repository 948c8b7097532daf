//! Latency samples and their quantiles (milliseconds).

use serde_json::{json, Value};
use std::time::Duration;

/// Samples of one measured quantity, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Series(pub Vec<f64>);

impl Series {
    pub fn push(&mut self, d: Duration) {
        self.0.push(ms(d));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank quantile (`q` in 0..=1); NaN when empty.
    pub fn quantile(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let idx = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(idx).copied().unwrap_or(f64::NAN)
    }

    pub fn median(&self) -> f64 {
        self.quantile(0.5)
    }

    pub fn p95(&self) -> f64 {
        self.quantile(0.95)
    }

    pub fn max(&self) -> f64 {
        self.0.iter().copied().fold(f64::NAN, f64::max)
    }

    /// Element-wise sum of equally long series (ADD+DEL of the same pod).
    pub fn sum(parts: &[&Series]) -> Series {
        let n = parts.iter().map(|s| s.0.len()).min().unwrap_or(0);
        Series((0..n).map(|i| parts.iter().map(|s| s.0[i]).sum()).collect())
    }

    pub fn to_json(&self) -> Value {
        json!({
            "n": self.0.len(),
            "median_ms": round(self.median()),
            "p95_ms": round(self.p95()),
            "min_ms": round(self.quantile(0.0)),
            "max_ms": round(self.max()),
            "samples_ms": self.0.iter().map(|v| round(*v)).collect::<Vec<_>>(),
        })
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Three decimals, and NaN as JSON null.
pub fn round(v: f64) -> Value {
    if v.is_finite() {
        json!((v * 1000.0).round() / 1000.0)
    } else {
        Value::Null
    }
}

/// `a / b`, NaN when either is not a positive finite number.
pub fn ratio(a: f64, b: f64) -> f64 {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        a / b
    } else {
        f64::NAN
    }
}
