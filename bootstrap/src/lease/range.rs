//! The subnet range of one address family that leases are picked from, and
//! the pick itself as flannel's etcd `LocalManager.allocateSubnet` does it:
//! one at random among the first 100 free subnets from SubnetMin upwards.
//! IPv4 and IPv6 share the arithmetic (addresses as u128).

use std::net::IpAddr;

use ipnet::IpNet;

/// The subnet range of one family (from an `Effective4`/`Effective6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub network: IpNet,
    pub len: u8,
    pub min: IpAddr,
    pub max: IpAddr,
}

fn num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

impl Range {
    fn bits(&self) -> u32 {
        match self.network {
            IpNet::V4(_) => 32,
            IpNet::V6(_) => 128,
        }
    }

    fn step(&self) -> u128 {
        1u128 << (self.bits() - u32::from(self.len))
    }

    fn net_at(&self, n: u128) -> IpNet {
        let ip = match self.network {
            IpNet::V4(_) => IpAddr::V4((n as u32).into()),
            IpNet::V6(_) => IpAddr::V6(n.into()),
        };
        IpNet::new(ip, self.len).expect("valid length")
    }

    /// flannel's `isSubnetConfigCompat`: inside the network, of the
    /// configured length, between SubnetMin and SubnetMax.
    pub fn fits(&self, sn: IpNet) -> bool {
        sn.prefix_len() == self.len
            && self.network.contains(&sn)
            && num(sn.network()) >= num(self.min)
            && num(sn.network()) <= num(self.max)
    }

    /// Up to `limit` free subnets from SubnetMin upwards: those overlapping
    /// no taken subnet.
    pub fn free(&self, taken: &[IpNet], limit: usize) -> Vec<IpNet> {
        let mut out = Vec::new();
        let (mut n, max) = (num(self.min), num(self.max));
        while n <= max && out.len() < limit {
            let sn = self.net_at(n);
            if !taken.iter().any(|t| t.contains(&sn) || sn.contains(t)) {
                out.push(sn);
            }
            match n.checked_add(self.step()) {
                Some(next) => n = next,
                None => break,
            }
        }
        out
    }

    /// flannel's choice: one at random among the first 100 free subnets.
    /// `None` when the range is exhausted.
    pub fn pick(&self, taken: &[IpNet], seed: u64) -> Option<IpNet> {
        let free = self.free(taken, 100);
        if free.is_empty() {
            return None;
        }
        Some(free[(seed % free.len() as u64) as usize])
    }

    /// How many subnets the range holds, for messages.
    pub fn size(&self) -> u128 {
        (num(self.max) - num(self.min)) / self.step() + 1
    }
}

/// A seed for [`Range::pick`]: time and PID mixed (no need for a crypto
/// RNG; flannel uses math/rand).
pub fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    seed_from(t, std::process::id())
}

/// [`random_seed`] from the wall clock in nanoseconds and a PID: machines
/// booted together run their agent under the same PID often enough, so
/// the nanoseconds alone must make the seeds differ.
pub fn seed_from(nanos: u64, pid: u32) -> u64 {
    let mut x = nanos ^ (u64::from(pid) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn picks_free_and_reports_exhaustion() {
        let r = Range {
            network: net("10.2.0.0/16"),
            len: 24,
            min: "10.2.1.0".parse().unwrap(),
            max: "10.2.3.0".parse().unwrap(),
        };
        assert_eq!(r.size(), 3);
        let (a, b, c) = (net("10.2.1.0/24"), net("10.2.2.0/24"), net("10.2.3.0/24"));
        assert_eq!(r.free(&[a, c], 100), vec![b]);
        assert_eq!(r.pick(&[a, c], 12345), Some(b));
        assert_eq!(r.pick(&[a, b, c], 1), None);
        // A bigger foreign subnet covering everything also exhausts it.
        assert_eq!(r.pick(&[net("10.2.0.0/16")], 1), None);
        assert!(r.fits(b));
        assert!(!r.fits(net("10.2.4.0/24")));
        assert!(!r.fits(net("10.2.1.0/25")));
    }

    #[test]
    fn ipv6_ranges() {
        let r = Range {
            network: net("fd42:10::/56"),
            len: 64,
            min: "fd42:10:0:1::".parse().unwrap(),
            max: "fd42:10:0:ff::".parse().unwrap(),
        };
        assert_eq!(r.size(), 255);
        let taken = [net("fd42:10:0:1::/64"), net("fd42:10:0:3::/64")];
        assert_eq!(
            r.free(&taken, 2),
            vec![net("fd42:10:0:2::/64"), net("fd42:10:0:4::/64")]
        );
        assert!(r.fits(net("fd42:10:0:ff::/64")));
        assert!(!r.fits(net("fd42:10:0:100::/64")));
        assert!(!r.fits(net("10.2.1.0/24")));
        // The top of the address space does not overflow.
        let top = Range {
            network: net("ffff:ffff:ffff:ffff::/64"),
            len: 66,
            min: "ffff:ffff:ffff:ffff:4000::".parse().unwrap(),
            max: "ffff:ffff:ffff:ffff:c000::".parse().unwrap(),
        };
        assert_eq!(top.free(&[], 100).len(), 3);
    }
}
