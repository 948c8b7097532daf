//! One address range and the order host-local walks it.
//!
//! Mirrors containernetworking/plugins `host-local/backend/allocator`
//! (`range.go` for the defaults, `allocator.go` `RangeIter` for the order),
//! so that a node can alternate between host-local and netboot-cni and see
//! the same round-robin: after `last_reserved_ip.<i>`, up to `rangeEnd`,
//! then from `rangeStart`, never the gateway.

use super::error::IpamError;
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One range as a host-local `ranges[i][0]` entry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    /// The pod subnet. Host bits are ignored (`10.244.1.1/24` is
    /// `10.244.1.0/24`): flannel's `FLANNEL_SUBNET` carries them and
    /// flannel masks them off before handing the subnet to host-local.
    pub subnet: IpNet,
    /// First address handed out, inclusive (default: network + 1).
    pub range_start: Option<IpAddr>,
    /// Last address handed out, inclusive (default: the address before the
    /// IPv4 broadcast; the last address of an IPv6 subnet).
    pub range_end: Option<IpAddr>,
    /// Default: [`default_gateway`].
    pub gateway: Option<IpAddr>,
}

impl RangeSpec {
    /// The whole subnet with host-local's defaults.
    pub fn subnet(subnet: IpNet) -> RangeSpec {
        RangeSpec {
            subnet,
            range_start: None,
            range_end: None,
            gateway: None,
        }
    }
}

/// The gateway rule shared with host-local (`range.go` "claim .1") and the
/// bridge plugin: the first address after the network address.
pub fn default_gateway(subnet: &IpNet) -> IpAddr {
    let net = subnet.trunc();
    to_ip(net.network().is_ipv4(), to_int(net.network()) + 1)
}

/// A validated [`RangeSpec`], addresses as integers of one family.
#[derive(Debug, Clone)]
pub(crate) struct Range {
    pub(crate) subnet: IpNet,
    pub(crate) gateway: IpAddr,
    v4: bool,
    start: u128,
    end: u128,
    network: u128,
    /// The IPv4 broadcast address; IPv6 has none.
    broadcast: Option<u128>,
}

impl Range {
    /// Validates `spec` and fills in host-local's defaults.
    pub(crate) fn new(spec: &RangeSpec) -> Result<Range, IpamError> {
        let subnet = spec.subnet.trunc();
        let v4 = subnet.network().is_ipv4();
        // host-local `Canonicalize`: a /31, /32, /127 or /128 has no
        // address left once the network address and the gateway are taken.
        if subnet.prefix_len() > subnet.max_prefix_len() - 2 {
            return Err(invalid(format!(
                "network {subnet} too small to allocate from"
            )));
        }
        let network = to_int(subnet.network());
        let last = to_int(subnet.broadcast());
        let broadcast = v4.then_some(last);
        let inside = |what: &str, ip: IpAddr| -> Result<u128, IpamError> {
            if ip.is_ipv4() != v4 || !subnet.contains(&ip) {
                return Err(invalid(format!("{what} {ip} not in network {subnet}")));
            }
            Ok(to_int(ip))
        };
        let start = match spec.range_start {
            Some(ip) => inside("rangeStart", ip)?,
            None => network + 1,
        };
        let end = match spec.range_end {
            Some(ip) => inside("rangeEnd", ip)?,
            None if v4 => last - 1,
            None => last,
        };
        if start > end {
            return Err(invalid(format!(
                "rangeStart {} is after rangeEnd {} in {subnet}",
                to_ip(v4, start),
                to_ip(v4, end)
            )));
        }
        let gateway = match spec.gateway {
            Some(ip) => inside("gateway", ip)?,
            None => network + 1,
        };
        if gateway == network || Some(gateway) == broadcast {
            return Err(invalid(format!(
                "gateway {} is not a host address of {subnet}",
                to_ip(v4, gateway)
            )));
        }
        let range = Range {
            subnet,
            gateway: to_ip(v4, gateway),
            v4,
            start,
            end,
            network,
            broadcast,
        };
        if range.capacity() == 0 {
            return Err(invalid(format!("range {range} has no usable address")));
        }
        Ok(range)
    }

    /// Whether `ip` lies in `[rangeStart, rangeEnd]` (host-local
    /// `Range.Contains`).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.v4 && (self.start..=self.end).contains(&to_int(ip))
    }

    /// Whether `ip` may be handed out: in the range and neither the
    /// network, the broadcast nor the gateway address. host-local skips only
    /// the gateway and relies on its default bounds for the other two; an
    /// explicit `rangeStart`/`rangeEnd` on them would make it hand them out,
    /// which no pod can use.
    pub(crate) fn usable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && self.usable_int(to_int(ip))
    }

    fn usable_int(&self, n: u128) -> bool {
        n != self.network && Some(n) != self.broadcast && n != to_int(self.gateway)
    }

    /// How many addresses the range can hand out.
    pub(crate) fn capacity(&self) -> u128 {
        let skipped = [
            Some(self.network),
            self.broadcast,
            Some(to_int(self.gateway)),
        ]
        .into_iter()
        .flatten()
        .filter(|n| (self.start..=self.end).contains(n))
        .count() as u128;
        (self.end - self.start + 1) - skipped
    }

    /// Usable addresses in host-local's round-robin order: after `last`
    /// when it lies in the range, wrapping to `rangeStart` and ending with
    /// `last` itself; otherwise from `rangeStart`.
    pub(crate) fn candidates(&self, last: Option<IpAddr>) -> impl Iterator<Item = IpAddr> + '_ {
        let (first, wrap) = match last.filter(|ip| self.contains(*ip)).map(to_int) {
            Some(l) if l < self.end => (l + 1, Some(l)),
            _ => (self.start, None),
        };
        let head = first..=self.end;
        let tail = wrap.map(|l| self.start..=l).into_iter().flatten();
        head.chain(tail)
            .filter(|n| self.usable_int(*n))
            .map(|n| to_ip(self.v4, n))
    }

    /// Whether two ranges share an address (host-local rejects overlapping
    /// range sets).
    pub(crate) fn overlaps(&self, other: &Range) -> bool {
        self.v4 == other.v4 && self.start <= other.end && other.start <= self.end
    }
}

/// host-local's `Range.String`: `<rangeStart>-<rangeEnd>`, which its
/// exhaustion message quotes.
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, e) = (to_ip(self.v4, self.start), to_ip(self.v4, self.end));
        write!(f, "{s}-{e}")
    }
}

fn invalid(msg: String) -> IpamError {
    IpamError::Invalid(msg)
}

fn to_int(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a).into(),
        IpAddr::V6(a) => a.into(),
    }
}

fn to_ip(v4: bool, n: u128) -> IpAddr {
    if v4 {
        // Values come from a v4 subnet, so they fit; saturate rather than panic.
        IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Range {
        Range::new(&RangeSpec {
            subnet: subnet.parse().unwrap(),
            range_start: start.map(ip),
            range_end: end.map(ip),
            gateway: gw.map(ip),
        })
        .unwrap()
    }

    fn order(r: &Range, last: Option<&str>) -> Vec<String> {
        r.candidates(last.map(ip)).map(|i| i.to_string()).collect()
    }

    #[test]
    fn defaults_match_host_local() {
        let r = range("10.244.1.0/24", None, None, None);
        assert_eq!(r.to_string(), "10.244.1.1-10.244.1.254");
        assert_eq!(r.gateway, ip("10.244.1.1"));
        assert_eq!(r.capacity(), 253);
        let r6 = range("fd00::/120", None, None, None);
        assert_eq!(r6.to_string(), "fd00::1-fd00::ff");
        assert_eq!(r6.capacity(), 254);
        assert_eq!(
            default_gateway(&"10.244.1.7/24".parse().unwrap()),
            ip("10.244.1.1")
        );
        assert_eq!(
            default_gateway(&"fd00:1::/64".parse().unwrap()),
            ip("fd00:1::1")
        );
        assert_eq!(range("10.0.0.0/30", None, None, None).capacity(), 1);
        assert_eq!(
            range("fd00::/64", None, None, None).capacity(),
            (1u128 << 64) - 2
        );
    }

    #[test]
    fn host_bits_are_masked_off() {
        let r = range("10.244.1.1/24", None, None, None);
        assert_eq!(r.subnet.to_string(), "10.244.1.0/24");
    }

    #[test]
    fn order_is_round_robin_from_last_reserved() {
        let r = range("10.0.0.0/29", None, None, None);
        let all = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"];
        assert_eq!(order(&r, None), all);
        assert_eq!(
            order(&r, Some("10.0.0.4")),
            ["10.0.0.5", "10.0.0.6", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
        );
        // The last address: wrap straight to rangeStart.
        assert_eq!(order(&r, Some("10.0.0.6")), all);
        // Outside the range (a changed subnet): start over, as host-local.
        assert_eq!(order(&r, Some("10.1.0.4")), all);
        assert_eq!(order(&r, Some("10.0.0.7")), all);
    }

    #[test]
    fn skips_network_gateway_and_broadcast() {
        let r = range(
            "10.0.0.0/29",
            Some("10.0.0.0"),
            Some("10.0.0.7"),
            Some("10.0.0.3"),
        );
        assert_eq!(
            order(&r, None),
            ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
        );
        assert_eq!(r.capacity(), 5);
        assert!(!r.usable(ip("10.0.0.3")) && r.contains(ip("10.0.0.3")));
        let r = range("10.0.0.0/24", Some("10.0.0.10"), Some("10.0.0.12"), None);
        assert_eq!(
            order(&r, Some("10.0.0.11")),
            ["10.0.0.12", "10.0.0.10", "10.0.0.11"]
        );
        assert_eq!(r.to_string(), "10.0.0.10-10.0.0.12");
    }

    #[test]
    fn rejects_bad_ranges() {
        let bad = |subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>| {
            let spec = RangeSpec {
                subnet: subnet.parse().unwrap(),
                range_start: start.map(ip),
                range_end: end.map(ip),
                gateway: gw.map(ip),
            };
            match Range::new(&spec) {
                Err(IpamError::Invalid(msg)) => msg,
                other => panic!("{subnet}: expected Invalid, got {other:?}"),
            }
        };
        assert!(bad("10.0.0.0/31", None, None, None).contains("too small"));
        assert!(bad("10.0.0.0/32", None, None, None).contains("too small"));
        assert!(bad("fd00::/127", None, None, None).contains("too small"));
        assert!(bad("10.0.0.0/24", None, None, Some("10.0.1.1")).contains("gateway"));
        assert!(bad("10.0.0.0/24", None, None, Some("fd00::1")).contains("gateway"));
        assert!(bad("10.0.0.0/24", None, None, Some("10.0.0.255")).contains("gateway"));
        assert!(bad("10.0.0.0/24", Some("10.0.1.1"), None, None).contains("rangeStart"));
        assert!(bad("10.0.0.0/24", None, Some("10.0.1.1"), None).contains("rangeEnd"));
        let msg = bad("10.0.0.0/24", Some("10.0.0.9"), Some("10.0.0.8"), None);
        assert!(msg.contains("after"), "{msg}");
        assert!(bad("10.0.0.0/24", Some("10.0.0.1"), Some("10.0.0.1"), None).contains("no usable"));
    }

    #[test]
    fn overlap() {
        let a = range("10.0.0.0/24", None, Some("10.0.0.100"), None);
        let b = range("10.0.0.0/24", Some("10.0.0.101"), None, None);
        let c = range("10.0.0.0/16", None, None, None);
        let d = range("fd00::/64", None, None, None);
        assert!(!a.overlaps(&b) && a.overlaps(&c) && !a.overlaps(&d));
    }
}
