//! What a port mapping is, whichever layout programs it: CNI
//! `portMappings` entries, the spec of one attachment's mappings, and
//! their validation.

use std::net::IpAddr;

use super::nft::{check_ident, quote_comment};
use crate::error::{Error, Result};

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The nft keyword (and CNI `protocol` value): `tcp`, `udp`, `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (`meta l4proto`).
    pub(crate) fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
            Proto::Sctp => libc::IPPROTO_SCTP as u8,
        }
    }

    /// Parse a CNI `protocol` (case-insensitive, as portmap lowercases it).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// One CNI `portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Proto,
    /// Only traffic to this host address is mapped. An address of the other
    /// family than a container IP is skipped for that IP (as upstream); an
    /// unspecified address (`0.0.0.0`, `::`) means "any".
    pub host_ip: Option<IpAddr>,
}

/// Everything [`add_port_mappings`](crate::firewall::add_port_mappings) / [`check_port_mappings`](crate::firewall::check_port_mappings) need.
#[derive(Debug, Clone, Copy)]
pub struct PortmapSpec<'a> {
    /// CNI network name (only for validation and messages: upstream's nft
    /// comments do not carry it).
    pub network: &'a str,
    /// CNI_CONTAINERID; becomes every rule's comment.
    pub container_id: &'a str,
    /// CNI_IFNAME (validation and messages only).
    pub ifname: &'a str,
    /// The container's addresses; as upstream, the first IPv4 and the first
    /// IPv6 one are mapped, the rest ignored.
    pub container_ips: &'a [IpAddr],
    pub mappings: &'a [PortMapping],
    /// portmap `snat` (upstream default: true): masquerade hairpin traffic
    /// (pod → its own hostPort) and, for IPv4, traffic from 127.0.0.1.
    pub snat: bool,
    /// portmap `masqAll`: with `snat`, masquerade mapped traffic from any
    /// source instead of only hairpin/localhost.
    pub masq_all: bool,
}

/// True when the plugin must set `net.ipv4.conf.<host-if>.route_localnet=1`
/// (netkit::sysctl, on the bridge or host interface the container is routed
/// through) after [`add_port_mappings`](super::add_port_mappings): with `snat` and an IPv4 container
/// address, connections to `127.0.0.1:hostPort` are DNATed to the pod, and
/// the kernel drops packets with a 127/8 source that cross a routing
/// boundary unless route_localnet is on (upstream portmap does the same in
/// `cmdAdd`). IPv6 has no equivalent (`::1` traffic is never mapped).
pub fn needs_route_localnet(spec: &PortmapSpec) -> bool {
    spec.snat && !spec.mappings.is_empty() && spec.container_ips.iter().any(IpAddr::is_ipv4)
}

pub(crate) fn validate(ctx: &str, spec: &PortmapSpec) -> Result<()> {
    check_ident(ctx, "network name", spec.network)?;
    check_ident(ctx, "container ID", spec.container_id)?;
    check_ident(ctx, "interface name", spec.ifname)?;
    quote_comment(ctx, spec.container_id)?;
    if let Some(m) = spec
        .mappings
        .iter()
        .find(|m| m.host_port == 0 || m.container_port == 0)
    {
        return Err(Error::invalid(
            ctx,
            format!("port mapping {m:?}: ports must be > 0"),
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Container `c1` of network `cbr` on `eth0`, with SNAT.
    pub(crate) fn spec<'a>(
        ips: &'a [IpAddr],
        maps: &'a [PortMapping],
        masq_all: bool,
    ) -> PortmapSpec<'a> {
        PortmapSpec {
            network: "cbr",
            container_id: "c1",
            ifname: "eth0",
            container_ips: ips,
            mappings: maps,
            snat: true,
            masq_all,
        }
    }

    #[test]
    fn rejects_injection() {
        let ips = ["10.0.0.2".parse().unwrap()];
        let mut s = spec(&ips, &[], false);
        s.container_id = "x\" ; flush ruleset ; \"";
        // validate() only: nothing in a unit test may reach the host's nft.
        assert!(validate("t", &s).is_err());
        let maps = [PortMapping {
            host_port: 0,
            container_port: 80,
            protocol: Proto::Tcp,
            host_ip: None,
        }];
        assert!(validate("t", &spec(&ips, &maps, false)).is_err());
    }
}
