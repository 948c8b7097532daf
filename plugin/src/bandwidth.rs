//! The `bandwidth` capability (CNI CONVENTIONS.md): kubelet's
//! `kubernetes.io/ingress-bandwidth` / `egress-bandwidth` pod annotations,
//! handed to the plugin by the runtime as `runtimeConfig.bandwidth`.
//!
//! What clients send:
//! - containerd's CRI (`toCNIBandWidth`) converts an annotation into a rate
//!   in bits/s and sets the burst to 2^32-1 bits (math.MaxUint32), with Go
//!   field names (`IngressRate`, ...) since go-cni's `BandWidth` has no
//!   json tags; containerd 1.6 sends an all-zero entry for every pod;
//! - podman / libcni send `ingressRate`, `ingressBurst`, `egressRate`,
//!   `egressBurst` (the reference plugin's tags).
//!
//! Validation is the reference plugin's (plugins/meta/bandwidth
//! `validateRateAndBurst`): a rate needs a burst and vice versa, and a
//! burst must stay below 4 GiB (`burst/8 < 2^32-1`). An all-zero entry
//! means "not shaped" there too (`isZero`).

use cni::error::{codes, CniError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One direction's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Bits per second.
    pub rate: u64,
    /// Bits.
    pub burst: u64,
}

/// A validated, non-empty `runtimeConfig.bandwidth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bandwidth {
    /// Traffic to the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Shape>,
    /// Traffic from the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Shape>,
}

/// The entry's four fields, as the reference plugin spells them.
pub const FIELDS: [&str; 4] = ["ingressRate", "ingressBurst", "egressRate", "egressBurst"];

fn invalid(field: &str, msg: impl std::fmt::Display) -> CniError {
    CniError::new(
        codes::INVALID_CONFIG,
        format!("invalid config: runtimeConfig.bandwidth.{field}: {msg}"),
    )
}

impl Bandwidth {
    /// Builds the entry from its fields' values (looked up by
    /// `PluginConf::bandwidth`); `None` when nothing is limited.
    pub fn from_fields(get: impl Fn(&str) -> Option<Value>) -> Result<Option<Bandwidth>, CniError> {
        let mut v = [0u64; 4];
        for (slot, field) in v.iter_mut().zip(FIELDS) {
            *slot = match get(field) {
                None | Some(Value::Null) => 0,
                Some(x) => x
                    .as_u64()
                    .ok_or_else(|| invalid(field, format!("{x} is not a non-negative integer")))?,
            };
        }
        let ingress = shape(v[0], v[1], "ingress")?;
        let egress = shape(v[2], v[3], "egress")?;
        Ok((ingress.is_some() || egress.is_some()).then_some(Bandwidth { ingress, egress }))
    }

    /// The entry as the reference `bandwidth` plugin reads it.
    pub fn to_value(&self) -> Value {
        let (ir, ib) = self.ingress.map_or((0, 0), |s| (s.rate, s.burst));
        let (er, eb) = self.egress.map_or((0, 0), |s| (s.rate, s.burst));
        json!({"ingressRate": ir, "ingressBurst": ib, "egressRate": er, "egressBurst": eb})
    }
}

fn shape(rate: u64, burst: u64, dir: &str) -> Result<Option<Shape>, CniError> {
    match (rate, burst) {
        (0, 0) => Ok(None),
        (_, 0) => Err(invalid(
            &format!("{dir}Burst"),
            "if rate is set, burst must also be set",
        )),
        (0, _) => Err(invalid(
            &format!("{dir}Rate"),
            "if burst is set, rate must also be set",
        )),
        (_, b) if b / 8 >= u64::from(u32::MAX) => Err(invalid(
            &format!("{dir}Burst"),
            "burst cannot be more than 4GB",
        )),
        (rate, burst) => Ok(Some(Shape { rate, burst })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Option<Bandwidth>, CniError> {
        Bandwidth::from_fields(|f| v.get(f).cloned())
    }

    #[test]
    fn empty_and_all_zero_entries_shape_nothing() {
        assert_eq!(parse(json!({})).unwrap(), None);
        let zero = json!({"ingressRate":0,"ingressBurst":0,"egressRate":0,"egressBurst":0});
        assert_eq!(parse(zero).unwrap(), None);
    }

    #[test]
    fn containerd_entry_for_one_annotation() {
        let bw = parse(json!({"ingressRate": 10_000_000u64, "ingressBurst": 4294967295u64}))
            .unwrap()
            .unwrap();
        assert_eq!(bw.egress, None);
        assert_eq!(
            bw.ingress,
            Some(Shape {
                rate: 10_000_000,
                burst: 4_294_967_295
            })
        );
        assert_eq!(bw.to_value()["ingressBurst"], 4_294_967_295u64);
    }

    #[test]
    fn refuses_what_the_reference_refuses_naming_the_field() {
        for (v, field) in [
            (json!({"ingressRate": 1000}), "ingressBurst"),
            (json!({"egressBurst": 1000}), "egressRate"),
            (
                json!({"egressRate": 8, "egressBurst": 8u64 * u64::from(u32::MAX)}),
                "egressBurst",
            ),
            (
                json!({"ingressRate": -5, "ingressBurst": 10}),
                "ingressRate",
            ),
            (
                json!({"ingressRate": "10M", "ingressBurst": 10}),
                "ingressRate",
            ),
            (
                json!({"ingressRate": 1.5, "ingressBurst": 10}),
                "ingressRate",
            ),
        ] {
            let e = parse(v.clone()).unwrap_err();
            assert_eq!(e.code, codes::INVALID_CONFIG, "{v}");
            assert!(
                e.msg.contains(&format!("runtimeConfig.bandwidth.{field}")),
                "{v}: {}",
                e.msg
            );
        }
    }
}
