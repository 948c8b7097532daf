//! Reading flannel's subnet.env: the one reader of it in `netboot`, for
//! `status`, `doctor`, the agent and `leave` (the agent writes it:
//! `agent/env.rs`). Keys per family: `FLANNEL_NETWORK` /
//! `FLANNEL_SUBNET` (IPv4), `FLANNEL_IPV6_NETWORK` / `FLANNEL_IPV6_SUBNET`
//! (IPv6), then `FLANNEL_MTU` and `FLANNEL_IPMASQ`.

use std::collections::BTreeMap;
use std::path::Path;

use ipnet::IpNet;

use crate::lease::SubnetKey;

/// `KEY=VALUE` lines of a subnet.env.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubnetEnv {
    pub vars: BTreeMap<String, String>,
}

/// The subnet key of a family.
pub fn subnet_var(v6: bool) -> &'static str {
    if v6 {
        "FLANNEL_IPV6_SUBNET"
    } else {
        "FLANNEL_SUBNET"
    }
}

/// The network key of a family.
pub fn network_var(v6: bool) -> &'static str {
    if v6 {
        "FLANNEL_IPV6_NETWORK"
    } else {
        "FLANNEL_NETWORK"
    }
}

/// "IPv4" or "IPv6", for messages.
pub fn family_name(v6: bool) -> &'static str {
    if v6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

impl SubnetEnv {
    pub fn parse(text: &str) -> SubnetEnv {
        SubnetEnv {
            vars: text
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        }
    }

    /// The file at `path`, `None` when it cannot be read.
    pub fn read(path: &Path) -> Option<SubnetEnv> {
        std::fs::read_to_string(path)
            .ok()
            .map(|t| SubnetEnv::parse(&t))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// FLANNEL_SUBNET / FLANNEL_IPV6_SUBNET as written (the first usable
    /// address with the subnet's length, `10.2.3.1/24`), when it parses as
    /// an address of that family.
    pub fn subnet(&self, v6: bool) -> Option<IpNet> {
        self.get(subnet_var(v6))?
            .parse::<IpNet>()
            .ok()
            .filter(|n| matches!(n, IpNet::V6(_)) == v6)
    }

    /// The network address form of [`SubnetEnv::subnet`] (`10.2.3.0/24`).
    pub fn subnet_net(&self, v6: bool) -> Option<IpNet> {
        self.subnet(v6).map(|n| n.trunc())
    }

    /// FLANNEL_NETWORK / FLANNEL_IPV6_NETWORK (a comma list in flannel).
    pub fn networks(&self, v6: bool) -> Vec<IpNet> {
        self.get(network_var(v6))
            .into_iter()
            .flat_map(|v| v.split(','))
            .filter_map(|n| n.trim().parse::<IpNet>().ok())
            .collect()
    }

    /// Every cluster network the file names, IPv4 first.
    pub fn all_networks(&self) -> Vec<IpNet> {
        let mut all = self.networks(false);
        all.extend(self.networks(true));
        all
    }

    /// The subnets the file names, in network form, as a lease key
    /// (`10.2.3.1/24` → `10.2.3.0/24`).
    pub fn subnet_key(&self) -> SubnetKey {
        SubnetKey {
            v4: match self.subnet_net(false) {
                Some(IpNet::V4(n)) => Some(n),
                _ => None,
            },
            v6: match self.subnet_net(true) {
                Some(IpNet::V6(n)) => Some(n),
                _ => None,
            },
        }
    }

    /// Which families the file describes (a subnet key present).
    pub fn has(&self, v6: bool) -> bool {
        self.vars.contains_key(subnet_var(v6))
    }

    pub fn mtu(&self) -> Option<u32> {
        self.get("FLANNEL_MTU")?.parse().ok()
    }

    /// Only the exact string `true` counts, as in the flannel CNI plugin.
    pub fn ipmasq(&self) -> bool {
        self.get("FLANNEL_IPMASQ") == Some("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_values() {
        let e = SubnetEnv::parse(
            "FLANNEL_IPV6_NETWORK=fd42:10::/56\nFLANNEL_IPV6_SUBNET=fd42:10:0:3::1/64\n\
             FLANNEL_MTU=1430\nFLANNEL_IPMASQ=true\n",
        );
        assert!(!e.has(false) && e.has(true));
        assert_eq!(e.subnet(false), None);
        assert_eq!(
            e.subnet_net(true),
            Some("fd42:10:0:3::/64".parse().unwrap())
        );
        assert_eq!(e.networks(true), vec!["fd42:10::/56".parse().unwrap()]);
        assert_eq!(e.mtu(), Some(1430));
        assert!(e.ipmasq());
        // A subnet of the wrong family is not a subnet of this one.
        let e = SubnetEnv::parse("FLANNEL_SUBNET=fd00::1/64\nFLANNEL_IPMASQ=True\n");
        assert_eq!(e.subnet(false), None);
        assert!(!e.ipmasq());
    }

    #[test]
    fn subnets_as_a_lease_key_and_every_network() {
        let e = SubnetEnv::parse(
            "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\n\
             FLANNEL_IPV6_NETWORK=fd42:10::/56\nFLANNEL_IPV6_SUBNET=fd42:10:0:3::1/64\n",
        );
        let k = e.subnet_key();
        assert_eq!(k.v4, Some("10.2.3.0/24".parse().unwrap()));
        assert_eq!(k.v6, Some("fd42:10:0:3::/64".parse().unwrap()));
        assert_eq!(
            e.all_networks(),
            vec![
                "10.2.0.0/16".parse::<IpNet>().unwrap(),
                "fd42:10::/56".parse().unwrap()
            ]
        );
        let none = SubnetEnv::default().subnet_key();
        assert!(none.v4.is_none() && none.v6.is_none());
    }
}
