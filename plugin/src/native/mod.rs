//! Native mode: the whole pod network done in-process over netlink, with no
//! other binary on the node (the cure for `failed to find plugin "bridge"`,
//! flannel#2301/#1730/#1847).
//!
//! It interprets the same rendered bridge + host-local config that bridge
//! mode hands to the reference binaries (`flannel::bridge_delegate`), and
//! keeps their on-disk formats and devices: host-local's IPAM store,
//! `cni0`. hostPorts are its own (map elements in `inet netboot`), and
//! each attachment's record says so, so a node can switch between bridge
//! and native mode mid-life and DEL still undoes either's attachments.
//!
//! ADD, in order (each step undone by [`undo`] if a later one fails):
//! 1. record the intent durably (what DEL needs: bridge, veth name, store),
//!    then flannel's scratch file naming netboot-cni (so the upstream
//!    flannel plugin's DEL hands the attachment back, `add::add`);
//! 2. allocate the IPs (host-local compatible store, flock'ed);
//! 3. under the node lock: bridge up with the gateway address of each
//!    family, stale address reconciled; forwarding and the node
//!    masquerade rule set ensured once;
//! 4. veth with its peer created directly in the pod; addresses (IPv6
//!    without DAD, see `ipv6`), routes;
//! 5. bandwidth shaping (tbf, ifb) when requested ([`bandwidth`]);
//! 6. port mappings (one nftables transaction of map elements, see
//!    [`ports`]) when requested, then the stale UDP conntrack entries
//!    toward them deleted ([`crate::conntrack`]).

pub mod bandwidth;
pub mod bridge;
mod check;
pub mod conf;
mod ips;
mod ipv6;
mod links;
mod node;
pub mod pod;
mod ports;
#[cfg(test)]
mod test_dual;

use crate::ctx::{ipam_err, kernel, load_subnet_env, result_dns, Ctx};
use crate::flannel;
use crate::ipam::{self, Allocated};
use crate::record::Record;
pub use crate::record::{NativeState, PortLayout, PortRule};
pub use check::check;
use cni::error::{codes, CniError};
use cni::result::{CniResult, Interface, IpConfig, Route};
use conf::NativeConf;
use ipnet::IpNet;
use ips::pool;
pub use links::{delete_links, orphan_veths};
use netkit::{Netlink, Netns};
use node::node_lock;
pub use ports::mappings;
use ports::{add_ports, del_ports};
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;

/// Builds the state for this invocation from today's config and subnet.env.
pub fn plan(ctx: &Ctx) -> Result<(NativeState, NativeConf), CniError> {
    plan_for(ctx, &ctx.args.container_id, &ctx.args.ifname)
}

/// [`plan`] for another attachment (GC of one whose record is damaged).
pub fn plan_for(
    ctx: &Ctx,
    container_id: &str,
    ifname: &str,
) -> Result<(NativeState, NativeConf), CniError> {
    refuse_multi_range_sets(ctx)?;
    let env = load_subnet_env(ctx)?;
    let rendered = flannel::bridge_delegate(&ctx.conf, &env);
    let nconf = NativeConf::from_delegate(&rendered)?;
    let ipam_dir = match &nconf.ipam_data_dir {
        Some(d) => d.join(&ctx.conf.net.name),
        None => ipam::store_dir(&serde_json::Map::new(), &ctx.conf.net.name),
    };
    let snat = ctx
        .conf
        .portmap
        .get("snat")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok((
        NativeState {
            conf: rendered,
            bridge: nconf.bridge.clone(),
            host_veth: netkit::host_veth_name(container_id, ifname),
            ipam_dir,
            port_mappings: ctx.conf.port_mappings(),
            snat,
            sweep_ports: false,
            port_layout: PortLayout::Maps,
            port_rules: Vec::new(),
            bandwidth: None,
            ifb: None,
        },
        nconf,
    ))
}

/// Native IPAM allocates from one range per set (what flannel renders);
/// host-local's several ranges per set are refused, not half-honoured.
fn refuse_multi_range_sets(ctx: &Ctx) -> Result<(), CniError> {
    let sets = ctx.conf.ip_ranges()?;
    match sets.iter().position(|s| s.len() > 1) {
        None => Ok(()),
        Some(i) => Err(CniError::new(
            codes::UNSUPPORTED_FIELD,
            format!(
                "runtimeConfig.ipRanges[{i}] has {} ranges; native mode allocates from one range per set (mode \"bridge\" with host-local takes several)",
                sets[i].len()
            ),
        )),
    }
}

/// Native ADD; `rec` already holds the plan and has been saved durably.
pub fn add(ctx: &Ctx, rec: &mut Record) -> Result<CniResult, CniError> {
    let state = rec
        .native
        .clone()
        .ok_or_else(|| CniError::internal("native state missing"))?;
    let nconf = NativeConf::from_delegate(&state.conf)?;
    let pod_ns = open_pod_netns(&ctx.args.netns)?;
    // `clear_stale` already refused a second ADD of this attachment from
    // its record, so the store's O(pods) duplicate scan is skipped.
    let allocated = pool(&state, &nconf)?
        .allocate_new(&ctx.args.container_id, &ctx.args.ifname)
        .map_err(ipam_err)?;
    let gateways: Vec<IpNet> = allocated
        .iter()
        .map(gateway_net)
        .collect::<Result<_, _>>()?;
    let mut nl = Netlink::open().map_err(|e| kernel("open netlink", e))?;
    let bridge = {
        let _lock = node_lock(ctx)?;
        let (bridge, changed) = bridge::ensure(&mut nl, &nconf, &gateways, &ctx.store)?;
        node::ensure_setup(ctx, &nconf, changed)?;
        bridge
    };
    let host = pod::create_veth(
        &mut nl,
        &pod_ns,
        &state.host_veth,
        &ctx.args.ifname,
        &bridge,
        &nconf,
    )?;
    bandwidth::apply(&mut nl, &host, &state)?;
    let addrs: Vec<(IpNet, IpAddr)> = allocated
        .iter()
        .map(|a| {
            Ok((
                IpNet::new(a.ip, a.prefix).map_err(|e| CniError::internal(e.to_string()))?,
                a.gateway,
            ))
        })
        .collect::<Result<_, CniError>>()?;
    let want = pod::PodAddressing {
        addrs: &addrs,
        routes: &nconf.routes,
        default_gw: nconf.is_default_gateway,
        enable_dad: nconf.enable_dad,
    };
    let pod_link = pod::configure(&pod_ns, &ctx.args.ifname, &want)?;
    if !state.port_mappings.is_empty() {
        let ips: Vec<IpAddr> = allocated.iter().map(|a| a.ip).collect();
        add_ports(ctx, &state, &ips)?;
        // After the DNAT elements exist, so the next datagram meets them.
        crate::conntrack::flush_udp(&ctx.log, &mappings(&state), &ips);
    }
    Ok(result(ctx, &bridge, &host, &pod_link, &addrs, &nconf))
}

fn gateway_net(a: &Allocated) -> Result<IpNet, CniError> {
    IpNet::new(a.gateway, a.prefix).map_err(|e| CniError::internal(e.to_string()))
}

fn open_pod_netns(path: &str) -> Result<Netns, CniError> {
    Netns::open(Path::new(path)).map_err(|e| {
        CniError::new(
            codes::INVALID_ENV,
            format!("CNI_NETNS {path:?} is not a usable network namespace: {e}"),
        )
    })
}

fn result(
    ctx: &Ctx,
    bridge: &netkit::Link,
    host: &netkit::Link,
    pod: &netkit::Link,
    addrs: &[(IpNet, IpAddr)],
    nconf: &NativeConf,
) -> CniResult {
    let mac = |l: &netkit::Link| l.mac.as_ref().map(netkit::fmt_mac).unwrap_or_default();
    let iface = |l: &netkit::Link, sandbox: &str| Interface {
        name: l.name.clone(),
        mac: mac(l),
        sandbox: sandbox.to_string(),
        ..Default::default()
    };
    let mut routes: Vec<Route> = nconf
        .routes
        .iter()
        .map(|r| Route::new(r.dst, r.gw))
        .collect();
    if nconf.is_default_gateway {
        // One default route per family, via its first address's gateway
        // (bridge.go calcGateways), as `pod::route_specs` installs them.
        for (a, gw) in addrs {
            let any: IpNet = if a.addr().is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            }
            .parse()
            .expect("constant");
            if !routes.iter().any(|r| r.dst == any && r.gw.is_some()) {
                routes.push(Route::new(any, Some(*gw)));
            }
        }
    }
    CniResult {
        cni_version: ctx.conf.net.cni_version.clone(),
        interfaces: vec![
            iface(bridge, ""),
            iface(host, ""),
            iface(pod, &ctx.args.netns),
        ],
        ips: addrs
            .iter()
            .map(|(a, gw)| IpConfig {
                interface: Some(2),
                address: *a,
                gateway: nconf.is_gateway.then_some(*gw),
            })
            .collect(),
        routes,
        dns: result_dns(&nconf.dns, &ctx.conf),
    }
}

/// Undoes a (possibly partial) native attachment: port mappings, the veth
/// (deleting the host end removes the pod end and its qdiscs with it), the
/// ifb of egress shaping, the IPs. Missing
/// pieces are fine; every step runs even if an earlier one failed.
/// `result` (the recorded ADD result, when ADD finished) names the IPs, so
/// only their files are opened and only their families' rules listed.
pub fn undo(
    ctx: &Ctx,
    container_id: &str,
    ifname: &str,
    state: &NativeState,
    result: Option<&Value>,
) -> Vec<CniError> {
    let mut errors = Vec::new();
    let ips: Vec<IpAddr> = result
        .and_then(|r| CniResult::from_value(r, "1.0.0").ok())
        .map(|r| r.ips.iter().map(|ip| ip.address.addr()).collect())
        .unwrap_or_default();
    if !state.port_mappings.is_empty() || state.sweep_ports {
        if let Err(e) = del_ports(ctx, container_id, ifname, state, &ips) {
            errors.push(e);
        }
    }
    match Netlink::open() {
        Ok(mut nl) => {
            if let Err(e) = del_host_veth(&mut nl, &state.host_veth) {
                errors.push(kernel(&format!("delete {}", state.host_veth), e));
            }
            errors.extend(bandwidth::remove(&mut nl, state));
        }
        Err(e) => errors.push(kernel("open netlink", e)),
    }
    let released = NativeConf::from_delegate(&state.conf)
        .and_then(|c| pool(state, &c))
        .and_then(|p| {
            p.release_known(container_id, ifname, &ips)
                .map_err(ipam_err)
        });
    if let Err(e) = released {
        errors.push(e.context("release IPs"));
    }
    let scope = ipam::TornScope::At(&ips);
    if let Err(e) = crate::torn::release_torn(ctx, &state.ipam_dir, container_id, ifname, scope) {
        errors.push(e);
    }
    errors
}

/// Deletes a host veth (its pod end goes with it): first out of the
/// bridge, then the pair.
///
/// Deleting an enslaved port that is up makes the bridge disable the port
/// twice, once when the device closes and once when it leaves the bridge
/// (`br_stp_disable_port`), and each pass walks every port (port-state
/// selection re-arms each forwarding port's multicast timers) and the
/// whole FDB: with N pods on the node, a DEL's main growth. Leaving the
/// bridge first runs that walk once; the device that then closes is no
/// bridge port. In between the veth is a plain link with no address and
/// IPv6 off, so the dying pod's frames (addressed to the bridge's or other
/// pods' MACs) are dropped, as they are once the port is disabled.
/// A missing link is success. Leaving the bridge is only a shortcut: if it
/// fails, the deletion still removes the port.
fn del_host_veth(nl: &mut Netlink, name: &str) -> Result<(), netkit::Error> {
    let _ = nl.link().set_nomaster_by_name(name);
    nl.link().del_by_name(name)
}
