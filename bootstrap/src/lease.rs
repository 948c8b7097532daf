//! flannel's subnet leases as stored in etcd: the key
//! (`<prefix>/subnets/10.2.3.0-24`, flannel `pkg/subnet/subnet.go`
//! MakeSubnetKey), the value (`pkg/lease/lease.go` LeaseAttrs with the vxlan
//! backend's `{VNI, VtepMAC}`), and picking a free subnet the way flannel's
//! etcd `LocalManager.allocateSubnet` does.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use cni::gojson::{self, GoValue};

/// `10.2.3.0/24` → `10.2.3.0-24` (the last part of the lease key).
pub fn subnet_key_name(net: Ipv4Net) -> String {
    format!("{}-{}", net.network(), net.prefix_len())
}

/// The IPv4 subnet named by a lease key (`…/10.2.3.0-24`, or the dual-stack
/// form `…/10.2.3.0-24&fd00::-64`). `None` for anything else.
pub fn parse_subnet_key(key: &str) -> Option<Ipv4Net> {
    let name = key.rsplit('/').next()?;
    let v4 = name.split('&').next()?;
    let (ip, len) = v4.rsplit_once('-')?;
    let net = Ipv4Net::new(ip.parse().ok()?, len.parse().ok()?).ok()?;
    // A key with host bits (`10.2.1.5-24`) names no subnet flannel could
    // have leased; taking it as-is would program a route the kernel refuses
    // (SECURITY.md F4).
    (net.addr() == net.network()).then_some(net)
}

/// The value flanneld's vxlan backend writes, byte for byte: Go's
/// `json.Marshal` of LeaseAttrs (field order PublicIP, PublicIPv6 (nil
/// pointer → null), BackendType, BackendData; BackendV6Data omitted when
/// empty) with BackendData = `{"VNI":n,"VtepMAC":"aa:bb:…"}` (lower-case
/// MAC, as `net.HardwareAddr.String`).
pub fn vxlan_lease_json(public_ip: Ipv4Addr, vni: u32, vtep_mac: [u8; 6]) -> String {
    format!(
        "{{\"PublicIP\":\"{public_ip}\",\"PublicIPv6\":null,\"BackendType\":\"vxlan\",\
         \"BackendData\":{{\"VNI\":{vni},\"VtepMAC\":\"{}\"}}}}",
        netkit::fmt_mac(&vtep_mac)
    )
}

/// What the agent needs from another node's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLease {
    pub subnet: Ipv4Net,
    pub public_ip: Ipv4Addr,
    pub backend: String,
    pub vtep_mac: Option<[u8; 6]>,
    pub vni: Option<u32>,
}

fn str_field(m: &gojson::Members, f: &str) -> Option<String> {
    match m.field(f)? {
        GoValue::Scalar(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl RemoteLease {
    /// Decode a lease key and value as flanneld does (keys match
    /// case-insensitively, like Go's `encoding/json`). Errors say what is
    /// wrong in plain words.
    pub fn parse(key: &str, value: &[u8]) -> Result<RemoteLease, String> {
        let subnet = parse_subnet_key(key).ok_or("the key does not name a subnet")?;
        let m = gojson::parse_object(value)?;
        let public_ip = str_field(&m, "PublicIP")
            .ok_or("no PublicIP")?
            .parse()
            .map_err(|_| "PublicIP is not an IPv4 address")?;
        let backend = str_field(&m, "BackendType").unwrap_or_default();
        let (mut vtep_mac, mut vni) = (None, None);
        if let Some(GoValue::Object(bd)) = m.field("BackendData") {
            vtep_mac = str_field(bd, "VtepMAC").and_then(|s| netkit::parse_mac(&s));
            if let Some(GoValue::Scalar(Value::Number(n))) = bd.field("VNI") {
                vni = n.as_u64().and_then(|v| u32::try_from(v).ok());
            }
        }
        Ok(RemoteLease {
            subnet,
            public_ip,
            backend,
            vtep_mac,
            vni,
        })
    }
}

/// The subnet range flannel hands out from (an `Effective4` of the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub network: Ipv4Net,
    pub len: u8,
    pub min: Ipv4Addr,
    pub max: Ipv4Addr,
}

impl Range {
    /// flannel's `isSubnetConfigCompat`: inside the network, of the
    /// configured length, between SubnetMin and SubnetMax.
    pub fn fits(&self, sn: Ipv4Net) -> bool {
        sn.prefix_len() == self.len
            && self.network.contains(&sn)
            && sn.network() >= self.min
            && sn.network() <= self.max
    }

    /// Up to `limit` free subnets from SubnetMin upwards: those overlapping
    /// no taken subnet.
    pub fn free(&self, taken: &[Ipv4Net], limit: usize) -> Vec<Ipv4Net> {
        let step = 1u64 << (32 - u32::from(self.len));
        let mut out = Vec::new();
        let mut ip = u64::from(u32::from(self.min));
        let max = u64::from(u32::from(self.max));
        while ip <= max && out.len() < limit {
            let sn = Ipv4Net::new(Ipv4Addr::from(ip as u32), self.len).expect("valid length");
            if !taken.iter().any(|t| t.contains(&sn) || sn.contains(t)) {
                out.push(sn);
            }
            ip += step;
        }
        out
    }

    /// flannel's choice: one at random among the first 100 free subnets.
    /// `None` when the range is exhausted.
    pub fn pick(&self, taken: &[Ipv4Net], seed: u64) -> Option<Ipv4Net> {
        let free = self.free(taken, 100);
        if free.is_empty() {
            return None;
        }
        Some(free[(seed % free.len() as u64) as usize])
    }

    /// How many subnets the range holds, for messages.
    pub fn size(&self) -> u64 {
        let step = 1u64 << (32 - u32::from(self.len));
        (u64::from(u32::from(self.max)) - u64::from(u32::from(self.min))) / step + 1
    }
}

/// A seed for [`Range::pick`]: time and PID mixed (no need for a crypto
/// RNG; flannel uses math/rand).
pub fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x = t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> Range {
        Range {
            network: "10.2.0.0/16".parse().unwrap(),
            len: 24,
            min: "10.2.1.0".parse().unwrap(),
            max: "10.2.3.0".parse().unwrap(),
        }
    }

    #[test]
    fn value_is_flanneld_bytes() {
        let v = vxlan_lease_json(
            "192.168.100.11".parse().unwrap(),
            1,
            [0x0a, 0xbc, 0, 0x11, 0x22, 0xff],
        );
        assert_eq!(
            v,
            r#"{"PublicIP":"192.168.100.11","PublicIPv6":null,"BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:bc:00:11:22:ff"}}"#
        );
    }

    #[test]
    fn keys_round_trip() {
        let n: Ipv4Net = "10.2.3.0/24".parse().unwrap();
        assert_eq!(subnet_key_name(n), "10.2.3.0-24");
        assert_eq!(
            parse_subnet_key("/coreos.com/network/subnets/10.2.3.0-24"),
            Some(n)
        );
        assert_eq!(
            parse_subnet_key("/p/subnets/10.2.3.0-24&fd00::-64"),
            Some(n)
        );
        assert_eq!(parse_subnet_key("/p/subnets/garbage"), None);
    }

    #[test]
    fn parses_odd_case_lease() {
        let l = RemoteLease::parse(
            "/x/subnets/10.2.5.0-24",
            br#"{"publicip":"192.168.1.2","backendtype":"vxlan","backenddata":{"vni":1,"vtepmac":"AA:BB:CC:DD:EE:FF"}}"#,
        )
        .unwrap();
        assert_eq!(l.public_ip, "192.168.1.2".parse::<Ipv4Addr>().unwrap());
        assert_eq!(l.vtep_mac, Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert_eq!(l.vni, Some(1));
    }

    #[test]
    fn picks_free_and_reports_exhaustion() {
        let r = range();
        assert_eq!(r.size(), 3);
        let a: Ipv4Net = "10.2.1.0/24".parse().unwrap();
        let b: Ipv4Net = "10.2.2.0/24".parse().unwrap();
        let c: Ipv4Net = "10.2.3.0/24".parse().unwrap();
        assert_eq!(r.free(&[a, c], 100), vec![b]);
        assert_eq!(r.pick(&[a, c], 12345), Some(b));
        assert_eq!(r.pick(&[a, b, c], 1), None);
        // A bigger foreign subnet covering everything also exhausts it.
        assert_eq!(r.pick(&["10.2.0.0/16".parse().unwrap()], 1), None);
        assert!(r.fits(b));
        assert!(!r.fits("10.2.4.0/24".parse().unwrap()));
        assert!(!r.fits("10.2.1.0/25".parse().unwrap()));
    }
}
