//! Native port mappings (hostPort): portmap's nftables rules for the
//! pod's addresses of both families, recorded by handle so that DEL
//! removes exactly them.

use super::{kernel, NativeState};
use crate::Ctx;
use cni::error::CniError;
use netkit::firewall::{self, PortMapping, PortmapSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// One nftables rule of a port mapping (`firewall::RuleRef`), as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// `ip` or `ip6` (the `cni_hostport` table of that family).
    pub family: String,
    pub chain: String,
    pub handle: u64,
}

impl PortRule {
    pub(super) fn from_ref(r: firewall::RuleRef) -> PortRule {
        let family = if r.v6 { "ip6" } else { "ip" };
        PortRule {
            family: family.into(),
            chain: r.chain,
            handle: r.handle,
        }
    }

    pub(super) fn to_ref(&self) -> Option<firewall::RuleRef> {
        let v6 = match self.family.as_str() {
            "ip" => false,
            "ip6" => true,
            _ => return None,
        };
        Some(firewall::RuleRef {
            v6,
            chain: self.chain.clone(),
            handle: self.handle,
        })
    }
}

/// Parses recorded/runtime port mappings (`{hostPort, containerPort,
/// protocol, hostIP}`, validated up front by `PluginConf`).
pub fn mappings(state: &NativeState) -> Vec<PortMapping> {
    state
        .port_mappings
        .iter()
        .filter_map(parse_mapping)
        .collect()
}

pub(crate) fn parse_mapping(m: &Value) -> Option<PortMapping> {
    let port = |k: &str| {
        m.get(k)
            .and_then(Value::as_u64)
            .and_then(|p| u16::try_from(p).ok())
    };
    let protocol = match m.get("protocol").and_then(Value::as_str) {
        None | Some("") => firewall::Proto::Tcp,
        Some(p) => firewall::Proto::parse(p)?,
    };
    let host_ip = match m.get("hostIP").and_then(Value::as_str) {
        None | Some("") => None,
        Some(ip) => Some(ip.parse().ok()?),
    };
    Some(PortMapping {
        host_port: port("hostPort")?,
        container_port: port("containerPort")?,
        protocol,
        host_ip,
    })
}

pub(super) fn add_ports(
    ctx: &Ctx,
    state: &NativeState,
    ips: &[IpAddr],
) -> Result<Vec<firewall::RuleRef>, CniError> {
    let maps = mappings(state);
    let spec = PortmapSpec {
        network: &ctx.conf.net.name,
        container_id: &ctx.args.container_id,
        ifname: &ctx.args.ifname,
        container_ips: ips,
        mappings: &maps,
        snat: state.snat,
        masq_all: false,
    };
    let rules = firewall::add_port_mappings_tracked(&spec)
        .map_err(|e| kernel("program port mappings", e))?;
    if firewall::needs_route_localnet(&spec) {
        // Traffic to 127.0.0.1:hostPort is DNATed to the pod; the kernel
        // drops martian-sourced packets leaving via the bridge unless
        // route_localnet is on (portmap does the same).
        // The plugin runs in the node netns: no thread needed.
        let key = format!("net/ipv4/conf/{}/route_localnet", state.bridge);
        netkit::sysctl::set(&key, "1").map_err(|e| kernel("enable route_localnet", e))?;
    }
    Ok(rules)
}

/// Removes the attachment's port mappings: by recorded handle when every
/// recorded rule is still there and still ours, else by listing the table.
pub(super) fn del_ports(
    ctx: &Ctx,
    container_id: &str,
    state: &NativeState,
    v4: bool,
    v6: bool,
) -> Result<(), netkit::Error> {
    let refs: Option<Vec<firewall::RuleRef>> =
        state.port_rules.iter().map(PortRule::to_ref).collect();
    if let Some(refs) = refs.filter(|r| !r.is_empty()) {
        // Any doubt (Ok(false)) or failure: the listing decides.
        if let Ok(true) = firewall::del_port_rules(container_id, &refs) {
            return Ok(());
        }
    }
    firewall::del_port_mappings_in(&ctx.conf.net.name, container_id, v4, v6)
}
