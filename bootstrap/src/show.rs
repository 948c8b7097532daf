//! `netboot config`: the stored network config, normalized, with the
//! settings flanneld derives from it.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::cli::ConfigArgs;
use crate::etcd::{Etcd, Kv};
use crate::netconfig::NetConfig;

/// The stored config as a report: raw, normalized, effective, problems.
pub struct ConfigReport {
    pub key: String,
    pub stored: String,
    pub normalized: Option<String>,
    /// (field, value, whether it is a default flanneld computes).
    pub effective: Vec<(String, String, bool)>,
    pub problems: Vec<String>,
}

impl ConfigReport {
    pub fn new(kv: &Kv) -> ConfigReport {
        let stored = String::from_utf8_lossy(&kv.value).into_owned();
        let mut r = ConfigReport {
            key: kv.key.clone(),
            stored,
            normalized: None,
            effective: Vec::new(),
            problems: Vec::new(),
        };
        match NetConfig::parse(&kv.value) {
            Err(e) => r.problems = e.0,
            Ok(c) => {
                let explicit = c.to_value();
                r.normalized = Some(c.to_json());
                match c.check() {
                    Err(p) => r.problems = p,
                    Ok(e) => {
                        r.effective = e
                            .fields()
                            .into_iter()
                            .map(|(k, v)| {
                                let set = lookup(&explicit, &k).is_some();
                                (k, v, !set)
                            })
                            .collect()
                    }
                }
            }
        }
        r
    }

    pub fn to_json(&self) -> Value {
        let eff: serde_json::Map<String, Value> = self
            .effective
            .iter()
            .map(|(k, v, d)| (k.clone(), json!({"value": v, "default": d})))
            .collect();
        json!({
            "key": self.key,
            "stored": self.stored,
            "normalized": self.normalized.as_ref().and_then(|n| serde_json::from_str::<Value>(n).ok()),
            "effective": eff,
            "problems": self.problems,
        })
    }

    pub fn to_text(&self) -> String {
        let mut s = format!(
            "Network config at {}\n  stored:     {}\n",
            self.key, self.stored
        );
        if let Some(n) = &self.normalized {
            s += &format!("  normalized: {n}\n");
        }
        if !self.effective.is_empty() {
            s += "  effective settings (\"default\" = computed by flanneld, as shown):\n";
            for (k, v, d) in &self.effective {
                s += &format!("    {k:<16} {v}{}\n", if *d { "   (default)" } else { "" });
            }
        }
        for p in &self.problems {
            s += &format!("  PROBLEM: {p}\n");
        }
        s
    }
}

/// "Backend.VNI" in a canonical config value.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// Read `<prefix>/config` or say, as flanneld does, that it is missing.
pub fn read_config(etcd: &mut Etcd, key: &str) -> Result<Kv> {
    match etcd.get(key)? {
        Some(kv) => Ok(kv),
        None => bail!(
            "no network config at {key} on {}: create it with `netboot init --etcd ...` \
             (flannel reads the etcd v3 API; a config written with the v2 API is invisible)",
            etcd.endpoint()
        ),
    }
}

pub fn config_cmd(a: &ConfigArgs) -> Result<()> {
    let key = a.etcd.key("config");
    let mut etcd = Etcd::connect(&a.etcd.opts()?, &key)?;
    let r = ConfigReport::new(&read_config(&mut etcd, &key)?);
    if a.json {
        crate::out::emitln(&serde_json::to_string_pretty(&r.to_json())?)?;
    } else {
        crate::out::emit(&r.to_text())?;
    }
    if !r.problems.is_empty() {
        bail!(
            "the stored network config has {} problem(s) (listed above)",
            r.problems.len()
        );
    }
    Ok(())
}
