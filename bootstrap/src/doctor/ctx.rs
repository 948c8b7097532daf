//! What the checks share: the options and what is known of this node
//! (etcd's view and its subnet.env).

use super::args::DoctorArgs;
use super::cluster::{Cluster, Settings};
use crate::leases::Listed;
use crate::subnet_env::SubnetEnv;

/// What is known of this node: etcd's view (None when unreachable) and
/// its subnet.env (None when unreadable). `status` builds one too.
pub struct Node {
    pub cluster: Option<Cluster>,
    pub env: Option<SubnetEnv>,
}

impl Node {
    /// The valid network config's settings.
    pub fn settings(&self) -> Option<&Settings> {
        self.cluster.as_ref()?.effective.as_ref()
    }

    /// The families to check (`false` = IPv4): the config's, else those
    /// subnet.env describes, else IPv4.
    pub fn families(&self) -> Vec<bool> {
        let fams: Vec<bool> = match (self.settings(), &self.env) {
            (Some(s), _) => [false, true]
                .into_iter()
                .filter(|v6| s.network(*v6).is_some())
                .collect(),
            (None, Some(e)) => [false, true].into_iter().filter(|v6| e.has(*v6)).collect(),
            (None, None) => Vec::new(),
        };
        if fams.is_empty() {
            vec![false]
        } else {
            fams
        }
    }

    /// The family this node's lease is found by (`true`: IPv6): IPv4
    /// unless the config turns it off (without a config: unless subnet.env
    /// has only an IPv6 subnet).
    pub fn primary(&self) -> bool {
        match self.settings() {
            Some(s) => s.v4.is_none(),
            None => self
                .env
                .as_ref()
                .is_some_and(|e| !e.has(false) && e.has(true)),
        }
    }

    /// This node's lease: the one holding subnet.env's subnet (IPv4, or
    /// IPv6 on an IPv6-only node).
    pub fn own_lease(&self) -> Option<&Listed> {
        let v6 = self.primary();
        let sn = self.env.as_ref()?.subnet_net(v6)?;
        self.cluster
            .as_ref()?
            .leases
            .iter()
            .find(|l| l.subnets().get(v6) == Some(sn))
    }

    /// Every other lease the agent would program: readable, of the
    /// config's backend, not naming this node's address.
    pub fn peers(&self) -> Vec<&Listed> {
        let (Some(c), Some(s)) = (self.cluster.as_ref(), self.settings()) else {
            return Vec::new();
        };
        let own = self.own_lease();
        let v6 = self.primary();
        let own_ip = own.and_then(Listed::attrs).and_then(|a| a.public(v6));
        c.leases
            .iter()
            .filter(|l| own.is_none_or(|o| o.path != l.path) && l.key.is_some())
            .filter(|l| {
                l.attrs()
                    .is_some_and(|a| a.backend == s.backend && a.public(v6) != own_ip)
            })
            .collect()
    }

    /// Readable leases of other nodes announcing another backend.
    pub fn other_backend(&self) -> Vec<&Listed> {
        let (Some(c), Some(s)) = (self.cluster.as_ref(), self.settings()) else {
            return Vec::new();
        };
        let own = self.own_lease().map(|o| o.path.as_str());
        c.leases
            .iter()
            .filter(|l| Some(l.path.as_str()) != own && l.key.is_some())
            .filter(|l| l.attrs().is_some_and(|a| a.backend != s.backend))
            .collect()
    }
}

/// What the checks share.
pub struct Ctx<'a> {
    pub args: &'a DoctorArgs,
    pub node: Node,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::cluster::{Cluster, Settings};
    use crate::etcd::Kv;
    use crate::netconfig::NetConfig;

    fn node(config: &str, env: &str, leases: &[(&str, &str)]) -> Node {
        let e = NetConfig::parse(config.as_bytes())
            .unwrap()
            .check()
            .unwrap();
        let kv = |(k, v): &(&str, &str)| Kv {
            key: format!("/p/subnets/{k}"),
            value: v.as_bytes().to_vec(),
            mod_revision: 1,
            lease: 0,
        };
        Node {
            cluster: Some(Cluster {
                effective: Some(Settings::from_effective(&e)),
                leases: leases.iter().map(|l| Listed::from_kv(&kv(l))).collect(),
            }),
            env: Some(SubnetEnv::parse(env)),
        }
    }

    #[test]
    fn ipv6_only_nodes_find_their_lease_and_peers_by_ipv6() {
        let n = node(
            r#"{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"host-gw"}}"#,
            // A stale IPv4 line must not make IPv4 the lookup family.
            "FLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\n",
            &[
                (
                    "0.0.0.0-0&fd00:0:0:3::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::11","BackendType":"host-gw"}"#,
                ),
                // An older lease of ours (same address): not a peer.
                (
                    "0.0.0.0-0&fd00:0:0:9::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::11","BackendType":"host-gw"}"#,
                ),
                (
                    "0.0.0.0-0&fd00:0:0:4::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::12","BackendType":"host-gw"}"#,
                ),
                (
                    "0.0.0.0-0&fd00:0:0:5::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::13","BackendType":"vxlan"}"#,
                ),
                ("garbage", "{}"),
            ],
        );
        assert_eq!(n.families(), vec![true]);
        assert!(n.primary());
        assert!(n.own_lease().unwrap().path.ends_with("fd00:0:0:3::-64"));
        let peers: Vec<&str> = n.peers().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(peers, ["/p/subnets/0.0.0.0-0&fd00:0:0:4::-64"]);
        let other: Vec<&str> = n.other_backend().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(other, ["/p/subnets/0.0.0.0-0&fd00:0:0:5::-64"]);
    }

    #[test]
    fn families_without_a_config_come_from_subnet_env() {
        let mut n = node(
            r#"{"Network":"10.2.0.0/16","Backend":{"Type":"vxlan"}}"#,
            "",
            &[],
        );
        n.cluster = None;
        n.env = Some(SubnetEnv::parse("FLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\n"));
        assert_eq!(n.families(), vec![true]);
        assert!(n.primary());
        n.env = None;
        assert_eq!(n.families(), vec![false]);
    }
}
