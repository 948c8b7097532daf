//! Quantities in a pod spec: memory sizes, CPU counts and cpusets. Each is
//! checked while deserializing, so a bad value is reported at its path.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A memory size in bytes, written as a number of bytes or with a unit:
/// decimal `k`/`K`, `M`, `G`, `T` (×1000ⁿ) or binary `Ki`, `Mi`, `Gi`, `Ti`
/// (×1024ⁿ), as Kubernetes quantities; `b`/`B` suffixes (`64MB`, `64MiB`)
/// are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemorySize(pub u64);

impl MemorySize {
    /// Parses `64Mi`, `1G`, `1048576`, `1.5Gi`.
    pub fn parse(s: &str) -> Result<MemorySize, String> {
        let bad = || format!("{s:?} is not a size");
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        if num.is_empty() {
            return Err(bad());
        }
        let unit = unit.trim();
        let unit = unit
            .strip_suffix(['b', 'B'])
            .filter(|u| !u.is_empty())
            .unwrap_or(unit);
        let mult: u64 = match unit {
            "" | "b" | "B" => 1,
            "k" | "K" => 1000,
            "M" | "m" => 1000_u64.pow(2),
            "G" | "g" => 1000_u64.pow(3),
            "T" | "t" => 1000_u64.pow(4),
            "Ki" | "ki" | "KI" => 1 << 10,
            "Mi" | "mi" | "MI" => 1 << 20,
            "Gi" | "gi" | "GI" => 1 << 30,
            "Ti" | "ti" | "TI" => 1 << 40,
            _ => return Err(bad()),
        };
        let bytes = if num.contains('.') {
            let f: f64 = num.parse().map_err(|_| bad())?;
            let b = f * mult as f64;
            if !b.is_finite() || b >= u64::MAX as f64 {
                return Err(format!("{s:?} is too large"));
            }
            b as u64
        } else {
            let n: u64 = num.parse().map_err(|_| bad())?;
            n.checked_mul(mult)
                .ok_or_else(|| format!("{s:?} is too large"))?
        };
        Ok(MemorySize(bytes))
    }
}

impl Serialize for MemorySize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for MemorySize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = MemorySize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes or with a unit, like 64Mi or 1G")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MemorySize, E> {
                Ok(MemorySize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MemorySize, E> {
                u64::try_from(v)
                    .map(MemorySize)
                    .map_err(|_| E::custom(format!("{v} is not a size")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<MemorySize, E> {
                MemorySize::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemorySize, E> {
                MemorySize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A CPU limit in CPUs (`0.5`, `2`, or `"1.5"`), turned into a CFS quota.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpus(pub f64);

/// The CFS period podrun uses (docker's and runc's default).
pub const CFS_PERIOD_US: u64 = 100_000;

impl Cpus {
    fn check(v: f64) -> Result<Cpus, String> {
        // The kernel's minimum quota is 1 ms (1000 µs) per period.
        if !v.is_finite() || !(0.01..=4096.0).contains(&v) {
            return Err(format!("{v} is not a CPU count between 0.01 and 4096"));
        }
        Ok(Cpus(v))
    }

    /// CFS quota in µs per [`CFS_PERIOD_US`].
    pub fn quota_us(self) -> i64 {
        (self.0 * CFS_PERIOD_US as f64).round() as i64
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0)
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Cpus;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of CPUs, like 0.5")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cpus, E> {
                Cpus::check(v as f64).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cpus, E> {
                Cpus::check(v as f64).map_err(E::custom)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cpus, E> {
                Cpus::check(v).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cpus, E> {
                let f: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| E::custom(format!("{v:?} is not a number of CPUs")))?;
                Cpus::check(f).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A cpuset list (`0-3,6`), kept in its canonical text form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSet {
    /// The CPUs, sorted and deduplicated.
    pub cpus: Vec<u32>,
}

impl CpuSet {
    /// Parses the kernel's list syntax: comma-separated CPUs and ranges.
    pub fn parse(s: &str) -> Result<CpuSet, String> {
        let bad = || format!("{s:?} is not a cpuset (like \"0-3,6\")");
        let mut cpus = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (part, part),
            };
            let lo: u32 = lo.parse().map_err(|_| bad())?;
            let hi: u32 = hi.parse().map_err(|_| bad())?;
            if lo > hi || hi >= 8192 {
                return Err(bad());
            }
            cpus.extend(lo..=hi);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(CpuSet { cpus })
    }
}

impl fmt::Display for CpuSet {
    /// Canonical list form, ranges collapsed: `0-3,6`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.cpus.len() {
            let start = self.cpus[i];
            let mut end = start;
            while i + 1 < self.cpus.len() && self.cpus[i + 1] == end + 1 {
                i += 1;
                end = self.cpus[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

impl Serialize for CpuSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for CpuSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = CpuSet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a cpuset like \"0-3,6\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<CpuSet, E> {
                CpuSet::parse(&v.to_string()).map_err(E::custom)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CpuSet, E> {
                CpuSet::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}
