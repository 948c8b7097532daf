//! Forgetting the UDP flows toward a pod's new hostPorts.
//!
//! conntrack keeps a UDP "flow" alive as long as its client keeps sending
//! from the same source port, and with it the DNAT chosen when the flow
//! began: after the pod behind a hostPort is replaced, the client's
//! datagrams would keep going to the dead pod's address. Once the new
//! mappings are in place, every UDP entry whose original destination port
//! is one of the new hostPorts (and, for a mapping with a hostIP, whose
//! original destination is that address) is deleted, so the next datagram
//! is NATed afresh, to the new pod. This is what the reference portmap
//! plugin does after adding its rules (`deletePortmapStaleConnections`) and
//! what kubelet's hostport manager did; it runs in every mode (native after
//! its nftables rules, bridge and flannel after the chained portmap, which
//! may be a release without the flush).
//!
//! Failures are logged and the ADD goes on, as upstream ("Failures are
//! informative only", portmap `main.go` cmdAdd): the pod is attached and
//! its mappings work for every new flow; only a flow that was already
//! running keeps its old destination until it idles out (30 s for UDP,
//! `nf_conntrack_udp_timeout`, 120 s once it saw replies).

use crate::log::Logger;
use netkit::conntrack::{self, FlowMatch};
use netkit::firewall::{PortMapping, Proto};
use std::net::IpAddr;

/// The conntrack selections for the UDP mappings of one family: none when
/// there is no UDP mapping (then no socket is opened at all).
pub fn udp_matches(mappings: &[PortMapping], v6: bool) -> Vec<FlowMatch> {
    mappings
        .iter()
        .filter(|m| m.protocol == Proto::Udp)
        .filter_map(|m| {
            // As the DNAT rules read it (`firewall::portmap`): a hostIP of
            // the other family maps nothing here; 0.0.0.0 / :: mean "any".
            let dst = match m.host_ip {
                Some(h) if h.is_ipv6() != v6 => return None,
                Some(h) if !h.is_unspecified() => Some(h),
                _ => None,
            };
            Some(FlowMatch {
                proto: conntrack::UDP,
                dport: m.host_port,
                dst,
            })
        })
        .collect()
}

/// Deletes the UDP flows toward `mappings` for each family the pod has an
/// address of, in the plugin's (the node's) network namespace; logs what
/// it did and any failure, never fails.
pub fn flush_udp(log: &Logger, mappings: &[PortMapping], pod_ips: &[IpAddr]) {
    for v6 in [false, true] {
        if !pod_ips.iter().any(|ip| ip.is_ipv6() == v6) {
            continue;
        }
        let matches = udp_matches(mappings, v6);
        if matches.is_empty() {
            continue;
        }
        let family = if v6 { "IPv6" } else { "IPv4" };
        match conntrack::delete_flows(v6, &matches) {
            Ok(0) => {}
            Ok(n) => log.info(&format!(
                "deleted {n} stale {family} UDP conntrack entries toward the new hostPorts"
            )),
            Err(e) => log.error(&format!(
                "failed to delete stale {family} UDP conntrack entries (running flows keep their old destination until they idle out): {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(port: u16, protocol: Proto, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port: port,
            container_port: 53,
            protocol,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn opens_no_socket_without_a_udp_mapping_of_the_pods_family() {
        let before = conntrack::sockets_opened_on_this_thread();
        let log = Logger::stderr();
        let v4: [IpAddr; 1] = ["10.2.1.5".parse().unwrap()];
        flush_udp(
            &log,
            &[m(8080, Proto::Tcp, None), m(5353, Proto::Sctp, None)],
            &v4,
        );
        flush_udp(&log, &[m(5353, Proto::Udp, Some("2001:db8::1"))], &v4);
        flush_udp(&log, &[m(5353, Proto::Udp, None)], &[]);
        assert_eq!(conntrack::sockets_opened_on_this_thread(), before);
    }

    #[test]
    fn selects_udp_ports_per_family() {
        let maps = [
            m(5353, Proto::Udp, None),
            m(8080, Proto::Tcp, None),
            m(5354, Proto::Udp, Some("192.0.2.1")),
            m(5355, Proto::Udp, Some("2001:db8::1")),
            m(5356, Proto::Udp, Some("0.0.0.0")),
            m(5357, Proto::Sctp, None),
        ];
        let ports = |v6| {
            udp_matches(&maps, v6)
                .iter()
                .map(|f| (f.dport, f.dst.map(|d| d.to_string())))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ports(false),
            [(5353, None), (5354, Some("192.0.2.1".into())), (5356, None)]
        );
        assert_eq!(
            ports(true),
            [(5353, None), (5355, Some("2001:db8::1".into()))]
        );
        assert!(udp_matches(&[m(80, Proto::Tcp, None)], false).is_empty());
    }
}
