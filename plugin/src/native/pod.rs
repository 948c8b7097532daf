//! The pod's side: a veth pair whose peer is created directly inside the
//! pod netns (never created on the node and moved), enslaved to the bridge,
//! and the pod's addresses and routes.

use super::conf::{NativeConf, PodRoute};
use crate::ctx::kernel;
use cni::error::{codes, CniError};
use ipnet::IpNet;
use netkit::{Link, Netlink, Netns, RouteSpec};
use std::net::IpAddr;

/// Creates the veth pair and plugs the host end into the bridge. A host
/// link left by an earlier, killed ADD of the same attachment (the name is
/// derived from containerID + ifname) is replaced.
pub fn create_veth(
    nl: &mut Netlink,
    pod: &Netns,
    host: &str,
    ifname: &str,
    bridge: &Link,
    conf: &NativeConf,
) -> Result<Link, CniError> {
    let mut attempt = 0;
    loop {
        match nl.link().add_veth(host, ifname, pod, conf.mtu, None) {
            Ok(()) => break,
            Err(e) if e.is_exists() && attempt == 0 => {
                attempt += 1;
                let stale = nl
                    .link()
                    .by_name(host)
                    .map_err(|e| kernel("look up host veth", e))?;
                if stale.is_none() {
                    return Err(CniError::new(
                        codes::INVALID_ENV,
                        format!(
                            "container veth name provided ({ifname}) already exists in {}",
                            pod.label()
                        ),
                    ));
                }
                nl.link()
                    .del_by_name(host)
                    .map_err(|e| kernel(&format!("remove stale {host}"), e))?;
            }
            Err(e) => return Err(kernel(&format!("create veth {host} (peer {ifname})"), e)),
        }
    }
    let link = nl
        .link()
        .by_name(host)
        .map_err(|e| kernel("look up host veth", e))?
        .ok_or_else(|| CniError::internal(format!("{host} vanished after creation")))?;
    disable_ipv6(host);
    nl.link()
        .set_master(link.index, bridge.index)
        .map_err(|e| kernel(&format!("attach {host} to {}", bridge.name), e))?;
    if conf.hairpin {
        nl.link()
            .set_hairpin(link.index, true)
            .map_err(|e| kernel(&format!("hairpin on {host}"), e))?;
    }
    nl.link()
        .set_up(link.index)
        .map_err(|e| kernel(&format!("set {host} up"), e))?;
    Ok(link)
}

/// Turns IPv6 off on the host end (still down, so it never gets any).
///
/// A bridge port's own IP stack never sees a frame (the bridge's rx
/// handler takes them all), so IPv6 there only costs: the kernel would
/// give every host veth a link-local address (DAD, MLD reports, router
/// solicitations) plus an `fe80::/64` and an `ff00::/8` route in the
/// node's IPv6 FIB. With N pods those are N same-prefix routes, and the
/// kernel walks them linearly: every IPv6 multicast packet the node
/// receives (each new pod's MLD reports and DAD probes, flooded by the
/// bridge) looks up `ff00::/8` (`__find_rr_leaf`), and every link event
/// walks the whole FIB (`rt6_sync_up`, `fib6_clean_all`). That was most
/// of the kernel work that made one more ADD or DEL dearer on a full node.
/// Pod traffic, IPv6 included, is bridged and never touches this stack.
/// The pod's own interface keeps its IPv6.
///
/// Best effort: a kernel without IPv6 has no such file, and a read-only
/// `/proc/sys` only costs the speed-up, never the attachment.
fn disable_ipv6(host: &str) {
    let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{host}/disable_ipv6"), "1");
}

/// What the pod's interface gets: addresses with their gateways, routes.
pub struct PodAddressing<'a> {
    pub addrs: &'a [(IpNet, IpAddr)],
    pub routes: &'a [PodRoute],
    /// Default route per family via its gateway (`isDefaultGateway`).
    pub default_gw: bool,
    /// The bridge plugin's `enabledad`: run IPv6 duplicate address
    /// detection on the pod's addresses (and wait for it) instead of
    /// skipping it.
    pub enable_dad: bool,
}

/// Addresses and routes inside the pod. Returns the pod link.
pub fn configure(pod: &Netns, ifname: &str, want: &PodAddressing<'_>) -> Result<Link, CniError> {
    let ns_err = |e| kernel(&format!("netlink in {}", pod.label()), e);
    let v6 = want.addrs.iter().any(|(a, _)| a.addr().is_ipv6());
    // On this thread (`run_here`): a thread start is a scheduling wait on
    // a loaded node, and this process does nothing else meanwhile.
    let mut nl = if v6 {
        // The sysctls in the same visit that opens the socket.
        pod.run_here(|| {
            super::ipv6::prepare_pod(ifname, want.enable_dad)?;
            Netlink::open().map_err(ns_err)
        })
        .map_err(ns_err)??
    } else {
        pod.netlink_here().map_err(ns_err)?
    };
    if let Some(lo) = nl
        .link()
        .by_name("lo")
        .map_err(|e| kernel("look up lo", e))?
    {
        if !lo.up {
            nl.link()
                .set_up(lo.index)
                .map_err(|e| kernel("set lo up", e))?;
        }
    }
    let link = nl
        .link()
        .by_name(ifname)
        .map_err(|e| kernel("look up pod interface", e))?
        .ok_or_else(|| {
            CniError::internal(format!(
                "{ifname} missing in {} after creation",
                pod.label()
            ))
        })?;
    for (addr, _) in want.addrs {
        nl.addr()
            .add(link.index, *addr)
            .map_err(|e| kernel(&format!("add {addr} to {ifname}"), e))?;
    }
    nl.link()
        .set_up(link.index)
        .map_err(|e| kernel(&format!("set {ifname} up"), e))?;
    if v6 {
        super::ipv6::settle(&mut nl, link.index, ifname)?;
    }
    for spec in route_specs(link.index, want.addrs, want.routes, want.default_gw) {
        nl.route()
            .replace(&spec)
            .map_err(|e| kernel(&format!("add route {} in {}", spec.dst, pod.label()), e))?;
    }
    Ok(link)
}

/// The kernel routes for the result routes: a route without `gw` goes via
/// the gateway of its family (as the bridge plugin installs them), plus the
/// default route when the bridge is the pod's default gateway.
pub fn route_specs(
    oif: u32,
    addrs: &[(IpNet, IpAddr)],
    routes: &[PodRoute],
    default_gw: bool,
) -> Vec<RouteSpec> {
    let gw_for = |dst: &IpNet| {
        addrs
            .iter()
            .find(|(a, _)| a.addr().is_ipv4() == dst.addr().is_ipv4())
            .map(|(_, gw)| *gw)
    };
    let mut out: Vec<RouteSpec> = Vec::new();
    let mut push = |dst: IpNet, gw: Option<IpAddr>| {
        let spec = RouteSpec {
            dst,
            gw,
            oif: Some(oif),
            onlink: false,
            scope: None,
        };
        if !out.iter().any(|r| r.dst == spec.dst) {
            out.push(spec);
        }
    };
    if default_gw {
        for (a, gw) in addrs {
            let any: IpNet = if a.addr().is_ipv4() {
                "0.0.0.0/0".parse().expect("constant")
            } else {
                "::/0".parse().expect("constant")
            };
            push(any, Some(*gw));
        }
    }
    for r in routes {
        push(r.dst.trunc(), r.gw.or_else(|| gw_for(&r.dst)));
    }
    out
}
