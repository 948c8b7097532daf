//! flannel's subnet leases as stored in etcd: the key
//! (`<prefix>/subnets/10.2.3.0-24`, dual stack `10.2.3.0-24&fd00:0:0:3::-64`,
//! IPv6-only `0.0.0.0-0&fd00:0:0:3::-64`; flannel `pkg/subnet/subnet.go`
//! MakeSubnetKey/ParseSubnetKey), the value (`pkg/lease/lease.go`
//! LeaseAttrs, with the vxlan backend's `{VNI, VtepMAC}` per family), and
//! the subnet ranges leases are picked from ([`range`]).

mod range;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde_json::Value;

use cni::gojson::{self, GoValue};

#[cfg(test)]
pub use range::seed_from;
pub use range::{random_seed, Range};

/// The subnets a lease key names: IPv4 (absent for the IPv6-only
/// `0.0.0.0-0` placeholder) and IPv6 (dual stack or IPv6-only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubnetKey {
    pub v4: Option<Ipv4Net>,
    pub v6: Option<Ipv6Net>,
}

impl SubnetKey {
    /// The last part of the key: `10.2.3.0-24`, `10.2.3.0-24&fd00::-64`,
    /// or `0.0.0.0-0&fd00::-64` for an IPv6-only lease (flannel's empty
    /// IPv4 subnet).
    pub fn name(&self) -> String {
        let v4 = self.v4.map_or("0.0.0.0-0".to_string(), |n| {
            format!("{}-{}", n.network(), n.prefix_len())
        });
        match self.v6 {
            Some(n) => format!("{v4}&{}-{}", n.network(), n.prefix_len()),
            None => v4,
        }
    }

    /// The subnet of one family.
    pub fn get(&self, v6: bool) -> Option<IpNet> {
        if v6 {
            self.v6.map(IpNet::V6)
        } else {
            self.v4.map(IpNet::V4)
        }
    }

    /// Both subnets for messages: `10.2.3.0/24`, `10.2.3.0/24 + fd00::/64`.
    pub fn show(&self) -> String {
        match (self.v4, self.v6) {
            (Some(a), Some(b)) => format!("{a} + {b}"),
            (Some(a), None) => a.to_string(),
            (None, Some(b)) => b.to_string(),
            (None, None) => "no subnet".into(),
        }
    }
}

/// The subnets named by a lease key, or `None` for anything flanneld would
/// not read as a lease key. Subnets with host bits (`10.2.1.5-24`) are
/// refused: no node could have leased them, and a route to them is refused
/// by the kernel (docs/security.md F4).
pub fn parse_key(key: &str) -> Option<SubnetKey> {
    let name = key.rsplit('/').next()?;
    let (v4, v6) = match name.split_once('&') {
        Some((a, b)) => (a, Some(b)),
        None => (name, None),
    };
    let (ip, len) = v4.rsplit_once('-')?;
    let net4 = Ipv4Net::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
    // `0.0.0.0-0` is flannel's empty IPv4 subnet: "no IPv4" next to an
    // IPv6 subnet, and alone no subnet at all (never a default route).
    let v4 = if net4.prefix_len() == 0 {
        (net4.addr().is_unspecified() && v6.is_some()).then_some(())?;
        None
    } else {
        (net4.addr() == net4.network()).then_some(net4)?;
        Some(net4)
    };
    let v6 = match v6 {
        Some(s) => {
            let (ip, len) = s.rsplit_once('-')?;
            let n = Ipv6Net::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
            (n.addr() == n.network()).then_some(n)?;
            Some(n)
        }
        None => None,
    };
    Some(SubnetKey { v4, v6 })
}

/// The vxlan backend's per-family data: `{"VNI":1,"VtepMAC":"aa:…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanData {
    pub vni: u32,
    pub vtep_mac: [u8; 6],
}

impl VxlanData {
    fn json(&self) -> String {
        format!(
            "{{\"VNI\":{},\"VtepMAC\":\"{}\"}}",
            self.vni,
            netkit::fmt_mac(&self.vtep_mac)
        )
    }

    fn parse(m: &gojson::Members) -> Option<VxlanData> {
        let vtep_mac = str_field(m, "VtepMAC").and_then(|s| netkit::parse_mac(&s))?;
        let vni = match m.field("VNI") {
            Some(GoValue::Scalar(Value::Number(n))) => {
                n.as_u64().and_then(|v| u32::try_from(v).ok())
            }
            _ => None,
        }?;
        Some(VxlanData { vni, vtep_mac })
    }
}

/// A lease value (flannel's LeaseAttrs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attrs {
    /// `0.0.0.0` when the node runs without IPv4 (as flanneld writes it).
    pub public_ip: Ipv4Addr,
    pub public_ipv6: Option<Ipv6Addr>,
    pub backend: String,
    /// vxlan's BackendData (IPv4 tunnel); `None` for host-gw.
    pub data: Option<VxlanData>,
    /// vxlan's BackendV6Data (IPv6 tunnel).
    pub data6: Option<VxlanData>,
}

fn str_field(m: &gojson::Members, f: &str) -> Option<String> {
    match m.field(f)? {
        GoValue::Scalar(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl Attrs {
    /// The value flanneld writes, byte for byte: Go's `json.Marshal` of
    /// LeaseAttrs (PublicIP, PublicIPv6 (nil pointer: `null`), BackendType,
    /// then BackendData and BackendV6Data, both omitted when empty), MACs in
    /// lower case as `net.HardwareAddr.String`.
    pub fn to_json(&self) -> String {
        let v6 = self
            .public_ipv6
            .map_or("null".to_string(), |a| format!("\"{a}\""));
        let mut s = format!(
            "{{\"PublicIP\":\"{}\",\"PublicIPv6\":{v6},\"BackendType\":\"{}\"",
            self.public_ip, self.backend
        );
        if let Some(d) = &self.data {
            s.push_str(&format!(",\"BackendData\":{}", d.json()));
        }
        if let Some(d) = &self.data6 {
            s.push_str(&format!(",\"BackendV6Data\":{}", d.json()));
        }
        s.push('}');
        s
    }

    /// Decode a value as flanneld does (keys match case-insensitively, like
    /// Go's `encoding/json`). Errors say what is wrong in plain words.
    pub fn parse(value: &[u8]) -> Result<Attrs, String> {
        let m = gojson::parse_object(value)?;
        let public_ip = match str_field(&m, "PublicIP") {
            Some(s) => s.parse().map_err(|_| "PublicIP is not an IPv4 address")?,
            None => Ipv4Addr::UNSPECIFIED,
        };
        let public_ipv6 = match m.field("PublicIPv6") {
            Some(GoValue::Scalar(Value::String(s))) => {
                Some(s.parse().map_err(|_| "PublicIPv6 is not an IPv6 address")?)
            }
            _ => None,
        };
        let data_of = |f: &str| match m.field(f) {
            Some(GoValue::Object(o)) => VxlanData::parse(o),
            _ => None,
        };
        Ok(Attrs {
            public_ip,
            public_ipv6,
            backend: str_field(&m, "BackendType").unwrap_or_default(),
            data: data_of("BackendData"),
            data6: data_of("BackendV6Data"),
        })
    }

    /// The public address of one family (`None` for IPv4 `0.0.0.0`).
    pub fn public(&self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.public_ipv6.map(IpAddr::V6)
        } else {
            Some(IpAddr::V4(self.public_ip)).filter(|a| !a.is_unspecified())
        }
    }

    /// The vxlan data of one family.
    pub fn vxlan(&self, v6: bool) -> Option<VxlanData> {
        if v6 {
            self.data6
        } else {
            self.data
        }
    }
}

/// A lease as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: SubnetKey,
    pub attrs: Attrs,
}

impl Lease {
    pub fn parse(key: &str, value: &[u8]) -> Result<Lease, String> {
        let k = parse_key(key).ok_or("the key does not name a subnet")?;
        Ok(Lease {
            key: k,
            attrs: Attrs::parse(value)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x0a, 0xbc, 0, 0x11, 0x22, 0xff];

    #[test]
    fn values_are_flanneld_bytes() {
        let mut a = Attrs {
            public_ip: "192.168.100.11".parse().unwrap(),
            public_ipv6: None,
            backend: "vxlan".into(),
            data: Some(VxlanData {
                vni: 1,
                vtep_mac: MAC,
            }),
            data6: None,
        };
        assert_eq!(
            a.to_json(),
            r#"{"PublicIP":"192.168.100.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:bc:00:11:22:ff"}}"#
        );
        a.public_ipv6 = Some("fd00:100::11".parse().unwrap());
        a.data6 = Some(VxlanData {
            vni: 1,
            vtep_mac: [2, 0, 0, 0, 0, 1],
        });
        assert_eq!(
            a.to_json(),
            r#"{"PublicIP":"192.168.100.11","PublicIPv6":"fd00:100::11","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:bc:00:11:22:ff"},"BackendV6Data":{"VNI":1,"VtepMAC":"02:00:00:00:00:01"}}"#
        );
        let hg = Attrs {
            public_ip: Ipv4Addr::UNSPECIFIED,
            public_ipv6: Some("fd00:100::11".parse().unwrap()),
            backend: "host-gw".into(),
            data: None,
            data6: None,
        };
        assert_eq!(
            hg.to_json(),
            r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:100::11","BackendType":"host-gw"}"#
        );
        assert_eq!(Attrs::parse(a.to_json().as_bytes()).unwrap(), a);
        assert_eq!(Attrs::parse(hg.to_json().as_bytes()).unwrap(), hg);
        assert_eq!(hg.public(false), None);
    }

    #[test]
    fn keys_round_trip() {
        let n: Ipv4Net = "10.2.3.0/24".parse().unwrap();
        let n6: Ipv6Net = "fd00:0:0:3::/64".parse().unwrap();
        for (k, name) in [
            (
                SubnetKey {
                    v4: Some(n),
                    v6: None,
                },
                "10.2.3.0-24",
            ),
            (
                SubnetKey {
                    v4: Some(n),
                    v6: Some(n6),
                },
                "10.2.3.0-24&fd00:0:0:3::-64",
            ),
            (
                SubnetKey {
                    v4: None,
                    v6: Some(n6),
                },
                "0.0.0.0-0&fd00:0:0:3::-64",
            ),
        ] {
            assert_eq!(k.name(), name);
            assert_eq!(
                parse_key(&format!("/coreos.com/network/subnets/{name}")),
                Some(k)
            );
        }
        assert_eq!(parse_key("/p/subnets/garbage"), None);
        assert_eq!(parse_key("/p/subnets/10.2.1.5-24"), None);
        assert_eq!(parse_key("/p/subnets/10.2.1.0-24&fd00::1-64"), None);
        assert_eq!(parse_key("/p/subnets/0.0.0.0-0"), None);
    }

    #[test]
    fn parses_odd_case_lease() {
        let l = Lease::parse(
            "/x/subnets/10.2.5.0-24",
            br#"{"publicip":"192.168.1.2","backendtype":"vxlan","backenddata":{"vni":1,"vtepmac":"AA:BB:CC:DD:EE:FF"}}"#,
        )
        .unwrap();
        assert_eq!(
            l.attrs.public_ip,
            "192.168.1.2".parse::<Ipv4Addr>().unwrap()
        );
        let d = l.attrs.data.unwrap();
        assert_eq!(d.vtep_mac, [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]);
        assert_eq!(d.vni, 1);
        assert!(Lease::parse("/x/subnets/10.2.5.0-24", br#"{"PublicIP":"nope"}"#).is_err());
    }
}
