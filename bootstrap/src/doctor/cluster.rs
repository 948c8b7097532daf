//! The cluster as doctor sees it: etcd reachable, the network config valid,
//! every lease (with the time left on it).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::args::DoctorArgs;
use super::finding::Finding;
use crate::etcd::Etcd;
use crate::leases::{self, Listed};
use crate::netconfig::{Effective, NetConfig, VxlanOptions};

/// What etcd told us.
pub struct Cluster {
    /// The valid network config's settings (None: missing or invalid).
    pub effective: Option<Settings>,
    pub leases: Vec<Listed>,
}

/// What doctor needs from the effective network config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub v4: Option<Ipv4Net>,
    pub v6: Option<Ipv6Net>,
    /// `vxlan` or `host-gw` (a valid config has no other).
    pub backend: String,
    /// vxlan's options (defaults for host-gw).
    pub vxlan: VxlanOptions,
}

impl Settings {
    pub fn from_effective(e: &Effective) -> Settings {
        Settings {
            v4: e.v4.as_ref().map(|v| v.network),
            v6: e.v6.as_ref().map(|v| v.network),
            backend: e.backend.clone(),
            vxlan: e.vxlan(),
        }
    }

    /// The cluster network of a family, when the family is enabled.
    pub fn network(&self, v6: bool) -> Option<IpNet> {
        if v6 {
            self.v6.map(IpNet::V6)
        } else {
            self.v4.map(IpNet::V4)
        }
    }

    pub fn is_vxlan(&self) -> bool {
        self.backend == "vxlan"
    }

    /// `IPv4 10.2.0.0/16 + IPv6 fd00::/48, backend vxlan (VNI 1, port 8472)`.
    pub fn describe(&self) -> String {
        let nets: Vec<String> = [false, true]
            .into_iter()
            .filter_map(|v6| {
                self.network(v6)
                    .map(|n| format!("{} {n}", crate::subnet_env::family_name(v6)))
            })
            .collect();
        format!(
            "{}, backend {}{}",
            nets.join(" + "),
            self.backend,
            if self.is_vxlan() {
                format!(" ({})", vxlan_options(&self.vxlan))
            } else {
                String::new()
            }
        )
    }
}

/// `VNI 1, port 8472, DirectRouting, MTU 9000`: the options that are set.
pub fn vxlan_options(o: &VxlanOptions) -> String {
    let mut parts = vec![format!("VNI {}", o.vni), format!("port {}", o.port)];
    for (on, name) in [
        (o.direct_routing, "DirectRouting"),
        (o.gbp, "GBP"),
        (o.learning, "Learning"),
    ] {
        if on {
            parts.push(name.into());
        }
    }
    if let Some(m) = o.mtu {
        parts.push(format!("MTU {m}"));
    }
    parts.join(", ")
}

/// Is `ip` an address of an interface in this network namespace?
pub fn is_local(nl: &mut netkit::Netlink, ip: IpAddr) -> bool {
    nl.addr()
        .list(None)
        .unwrap_or_default()
        .iter()
        .any(|a| a.addr.addr() == ip)
}

/// The `etcd` check: reachable, holding a valid network config.
pub fn etcd_check(a: &DoctorArgs) -> (Finding, Option<Cluster>) {
    const CHECK: &str = "etcd";
    let key = a.etcd.key("config");
    let connected = a
        .etcd
        .opts()
        .and_then(|o| Etcd::connect(&o, &key))
        .and_then(|mut etcd| {
            let cfg = etcd.get(&key)?;
            let leases = leases::list(&mut etcd, &a.etcd.key("subnets/"))?;
            Ok((etcd.endpoint().to_string(), cfg, leases))
        });
    let (ep, cfg, leases) = match connected {
        Ok(v) => v,
        Err(e) => {
            return (
                Finding::problem(
                    CHECK,
                    format!("etcd is unreachable from this node: {e:#}"),
                    format!(
                        "start etcd or fix the address: `curl {}/health` must answer from this \
                         node; the agent cannot renew its lease and new nodes cannot join \
                         meanwhile",
                        a.etcd.endpoints.first().map_or("URL", String::as_str)
                    ),
                ),
                None,
            )
        }
    };
    let Some(cfg) = cfg else {
        return (
            Finding::problem(
                CHECK,
                format!("etcd at {ep} answers, but {key} holds no network config"),
                "run `netboot init --etcd URL --network CIDR` once for the cluster",
            ),
            Some(Cluster {
                effective: None,
                leases,
            }),
        );
    };
    let effective = NetConfig::parse(&cfg.value)
        .ok()
        .and_then(|c| c.check().ok())
        .map(|e| Settings::from_effective(&e));
    let finding = match &effective {
        Some(s) => Finding::ok(
            CHECK,
            format!("etcd at {ep}: {}, {} lease(s)", s.describe(), leases.len()),
        ),
        None => Finding::problem(
            CHECK,
            format!(
                "the network config at {key} is not valid: {}",
                String::from_utf8_lossy(&cfg.value)
            ),
            "see `netboot config --etcd URL` for what is wrong; rewrite it with `netboot init --force`",
        ),
    };
    (finding, Some(Cluster { effective, leases }))
}
