//! The vxlan backend's options as flanneld reads them
//! (`pkg/backend/vxlan/vxlan.go` VXLANConfig, decoded with Go's
//! case-insensitive `encoding/json`): `MTU`, `GBP`, `Learning`,
//! `DirectRouting`. `MacPrefix` (and `Name`) are Windows-only in flanneld
//! and ignored on Linux; they are reported as such.

use serde_json::Value;

use super::model::Effective;

/// vxlan `Port` 0 means the kernel default, 8472.
pub const VXLAN_DEFAULT_PORT: u16 = 8472;
/// flannel's default VNI.
pub const DEFAULT_VNI: u32 = 1;

/// flannel's vxlan overhead (outer IPv4 + UDP + VXLAN + inner Ethernet):
/// a device gets the outgoing MTU minus 50.
const VXLAN_OVERHEAD: u32 = 50;
/// The extra 20 bytes of an IPv6 outer header: `flannel-v6.<VNI>` gets the
/// outgoing MTU minus 70.
const VXLAN6_EXTRA: u32 = 20;

/// Smallest MTU the kernel accepts on an IPv4 device (68) plus the vxlan
/// overhead flanneld subtracts (50).
const MIN_MTU: i64 = 68 + 50;

/// Every vxlan setting with flanneld's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanOptions {
    pub vni: u32,
    pub port: u16,
    /// Desired MTU of the outgoing packets (the device gets MTU - 50);
    /// `None`: the external interface's MTU.
    pub mtu: Option<u32>,
    pub gbp: bool,
    pub learning: bool,
    pub direct_routing: bool,
    /// Windows-only keys that were given (ignored here).
    pub ignored: Vec<String>,
}

fn key_is(k: &str, name: &str) -> bool {
    k.eq_ignore_ascii_case(name)
}

/// Read the options among a backend's other keys; one message per bad
/// value. Unknown keys are ignored, as Go's decoder does.
pub fn parse_vxlan(other: &[(String, Value)]) -> Result<VxlanOptions, Vec<String>> {
    let mut o = VxlanOptions {
        vni: DEFAULT_VNI,
        port: VXLAN_DEFAULT_PORT,
        mtu: None,
        gbp: false,
        learning: false,
        direct_routing: false,
        ignored: Vec::new(),
    };
    let mut errs = Vec::new();
    // Go's decoder: the last of several case-variants wins.
    for (k, v) in other {
        let flag = |errs: &mut Vec<String>| match v {
            Value::Bool(b) => Some(*b),
            Value::Null => Some(false),
            _ => {
                errs.push(format!("Backend {k} must be true or false, not {v}"));
                None
            }
        };
        if key_is(k, "MTU") {
            match v {
                Value::Null => o.mtu = None,
                Value::Number(n) => match n.as_i64() {
                    Some(m) if (MIN_MTU..=65535).contains(&m) => o.mtu = Some(m as u32),
                    _ => errs.push(format!(
                        "Backend {k} {n} is out of range: the outgoing MTU must be {MIN_MTU} to \
                         65535 (the vxlan device gets MTU - 50)"
                    )),
                },
                _ => errs.push(format!("Backend {k} must be a number, not {v}")),
            }
        } else if key_is(k, "GBP") {
            o.gbp = flag(&mut errs).unwrap_or(o.gbp);
        } else if key_is(k, "Learning") {
            o.learning = flag(&mut errs).unwrap_or(o.learning);
        } else if key_is(k, "DirectRouting") {
            o.direct_routing = flag(&mut errs).unwrap_or(o.direct_routing);
        } else if key_is(k, "MacPrefix") || key_is(k, "Name") {
            o.ignored.push(k.clone());
        }
    }
    if errs.is_empty() {
        Ok(o)
    } else {
        Err(errs)
    }
}

/// flanneld's vxlan device name for a family and VNI: `flannel.<VNI>` or
/// `flannel-v6.<VNI>`.
pub fn device_name(v6: bool, vni: u32) -> String {
    if v6 {
        format!("flannel-v6.{vni}")
    } else {
        format!("flannel.{vni}")
    }
}

impl VxlanOptions {
    /// The device flanneld uses for a family: `flannel.<VNI>` (IPv4
    /// underlay) or `flannel-v6.<VNI>` (IPv6).
    pub fn device_name(&self, v6: bool) -> String {
        device_name(v6, self.vni)
    }

    /// What a family's device loses to encapsulation: 50 or 70 bytes.
    pub fn overhead(v6: bool) -> u32 {
        VXLAN_OVERHEAD + if v6 { VXLAN6_EXTRA } else { 0 }
    }

    /// The device MTU for an interface of MTU `ext_mtu`: Backend MTU (or
    /// the interface's) minus the overhead.
    pub fn device_mtu(&self, v6: bool, ext_mtu: u32) -> u32 {
        self.mtu
            .unwrap_or(ext_mtu)
            .saturating_sub(Self::overhead(v6))
    }
}

impl Effective {
    /// The vxlan options of a valid vxlan config (`check` has validated
    /// them; a non-vxlan config gets the defaults).
    pub fn vxlan(&self) -> VxlanOptions {
        let mut o = parse_vxlan(&self.backend_other)
            .unwrap_or_else(|_| parse_vxlan(&[]).expect("defaults parse"));
        o.vni = self.vni.unwrap_or(DEFAULT_VNI);
        o.port = self.port.unwrap_or(VXLAN_DEFAULT_PORT);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(pairs: &[(&str, Value)]) -> Result<VxlanOptions, Vec<String>> {
        let v: Vec<(String, Value)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        parse_vxlan(&v)
    }

    #[test]
    fn options_as_go_reads_them() {
        let o = opts(&[
            ("directrouting", json!(true)),
            ("GBP", json!(true)),
            ("Learning", json!(false)),
            ("MTU", json!(9000)),
            ("MacPrefix", json!("0E-2A")),
        ])
        .unwrap();
        assert!(o.direct_routing && o.gbp && !o.learning);
        assert_eq!(o.mtu, Some(9000));
        assert_eq!(o.ignored, vec!["MacPrefix".to_string()]);
        assert_eq!(opts(&[]).unwrap().mtu, None);
        assert_eq!(o.device_name(true), "flannel-v6.1");
        assert_eq!(o.device_mtu(true, 1500), 8930);
        assert_eq!(opts(&[]).unwrap().device_mtu(false, 1500), 1450);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = opts(&[
            ("GBP", json!("yes")),
            ("MTU", json!(50)),
            ("Mtu", json!("x")),
        ])
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].contains("Backend GBP must be true or false"), "{e:?}");
        assert!(e[1].contains("Backend MTU 50 is out of range"), "{e:?}");
        assert!(e[2].contains("Backend Mtu must be a number"), "{e:?}");
    }
}
