//! Native port mappings (hostPort). New attachments keep them as elements
//! of netboot's maps (`netkit::firewall::hostports`): ADD adds elements,
//! DEL looks its keys up and deletes what it still owns, and neither's cost
//! depends on the pods already on the node. The record says which layout
//! made an attachment ([`PortLayout`]): attachments netboot made before
//! the maps, in upstream portmap's layout, are still removed by their
//! recorded rule handles or by listing, whatever the node's mode is now.

use super::node::node_lock;
use crate::conf::parse_mapping;
use crate::ctx::{broken, kernel, Ctx};
use crate::record::{NativeState, PortLayout, PortRule};
use cni::error::CniError;
use netkit::firewall::{self, PortMapping, PortmapSpec};
use std::net::IpAddr;

/// Parses recorded/runtime port mappings (`{hostPort, containerPort,
/// protocol, hostIP}`, validated up front by `PluginConf`).
pub fn mappings(state: &NativeState) -> Vec<PortMapping> {
    state
        .port_mappings
        .iter()
        .filter_map(parse_mapping)
        .collect()
}

fn spec<'a>(
    ctx: &'a Ctx,
    container_id: &'a str,
    ifname: &'a str,
    state: &NativeState,
    ips: &'a [IpAddr],
    maps: &'a [PortMapping],
) -> PortmapSpec<'a> {
    PortmapSpec {
        network: &ctx.conf.net.name,
        container_id,
        ifname,
        container_ips: ips,
        mappings: maps,
        snat: state.snat,
        masq_all: false,
    }
}

/// ADD's port mappings, as map elements. A host port another attachment
/// holds is taken over when that attachment is gone (no record of it on
/// this network, or a record of a pod that cannot exist any more: see
/// [`crate::ghost`]), under the node lock, which DEL holds too. One that
/// still lives keeps it: as with upstream portmap, whose older rule comes
/// first in its chain, the older pod goes on receiving that port's
/// traffic and this ADD succeeds without it (logged as an error; CHECK
/// reports the mapping as missing). Kubernetes never schedules two live
/// pods with the same host port on a node.
pub(super) fn add_ports(ctx: &Ctx, state: &NativeState, ips: &[IpAddr]) -> Result<(), CniError> {
    let maps = mappings(state);
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    let spec = spec(ctx, cid, ifname, state, ips, &maps);
    let program = |e| kernel("program port mappings", e);
    match firewall::add_hostports(&spec) {
        Ok(()) => {}
        Err(e) if e.is_exists() => {
            let _lock = node_lock(ctx)?;
            let live = |owner: &str| holder_is_live(ctx, Some(owner));
            let r = firewall::resolve_hostports(&spec, &live).map_err(program)?;
            if !r.displaced.is_empty() {
                ctx.log.info(&format!(
                    "took over host ports held by attachments that are gone: {}",
                    r.displaced.join(", ")
                ));
            }
            if !r.kept.is_empty() {
                ctx.log.error(&format!(
                    "host ports left to the live attachments holding them (this pod gets none of their traffic): {}",
                    r.kept.join(", ")
                ));
            }
        }
        Err(e) => return Err(program(e)),
    }
    if firewall::needs_route_localnet(&spec) {
        // Traffic to 127.0.0.1:hostPort is DNATed to the pod; the kernel
        // drops martian-sourced packets leaving via the bridge unless
        // route_localnet is on (portmap does the same).
        // The plugin runs in the node netns: no thread needed.
        let key = format!("net/ipv4/conf/{}/route_localnet", state.bridge);
        netkit::sysctl::set(&key, "1").map_err(|e| kernel("enable route_localnet", e))?;
    }
    Ok(())
}

/// Whether the attachment owning an element may still exist: one of
/// another network or of no known network (an element without a
/// recognisable owner) counts as live; one of this network is live while
/// its record exists and does not prove its pod gone. An unreadable record
/// counts as live too: when in doubt, nothing is taken away.
fn holder_is_live(ctx: &Ctx, owner: Option<&str>) -> bool {
    let Some((net, cid, ifname)) = owner.and_then(firewall::parse_hostport_owner) else {
        return true;
    };
    if net != ctx.conf.net.name {
        return true;
    }
    match ctx.store.load(cid, ifname) {
        Ok(Some(rec)) => {
            let boot = crate::ghost::boot_id().ok().flatten();
            crate::ghost::reason(&rec, boot.as_deref(), &crate::ghost::is_netns).is_none()
        }
        Ok(None) => false,
        Err(_) => true,
    }
}

/// CHECK of the attachment's port mappings in the layout that made them.
pub(super) fn check_ports(ctx: &Ctx, state: &NativeState, ips: &[IpAddr]) -> Result<(), CniError> {
    let maps = mappings(state);
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    let spec = spec(ctx, cid, ifname, state, ips, &maps);
    let checked = match state.port_layout {
        PortLayout::Maps => firewall::check_hostports(&spec),
        PortLayout::Portmap => firewall::check_port_mappings(&spec),
    };
    checked.map_err(|e| broken(format!("port mappings: {e}")))
}

/// Removes the attachment's port mappings in the layout its record names
/// (see the module docs); `ips` are the addresses its result recorded,
/// empty when unknown. DEL without a record (`sweep_ports`) knows neither
/// layout nor keys: it looks in both, by owner.
pub(super) fn del_ports(
    ctx: &Ctx,
    container_id: &str,
    ifname: &str,
    state: &NativeState,
    ips: &[IpAddr],
) -> Result<(), CniError> {
    let removed = |r: Result<(), netkit::Error>| r.map_err(|e| kernel("remove port mappings", e));
    let (v4, v6) = match ips {
        [] => (true, true),
        _ => (
            ips.iter().any(IpAddr::is_ipv4),
            ips.iter().any(IpAddr::is_ipv6),
        ),
    };
    let net = &ctx.conf.net.name;
    if state.sweep_ports {
        let owner = firewall::hostport_owner(net, container_id, ifname);
        removed(firewall::sweep_hostports(|o| o == owner).map(|_| ()))?;
        return removed(firewall::del_port_mappings_in(net, container_id, v4, v6));
    }
    match state.port_layout {
        PortLayout::Maps => {
            let maps = mappings(state);
            let spec = spec(ctx, container_id, ifname, state, ips, &maps);
            // Never between another ADD's read of a key and its take-over.
            let _lock = node_lock(ctx)?;
            removed(firewall::del_hostports(&spec).map(|_| ()))
        }
        PortLayout::Portmap => {
            let refs: Option<Vec<firewall::RuleRef>> =
                state.port_rules.iter().map(PortRule::to_ref).collect();
            if let Some(refs) = refs.filter(|r| !r.is_empty()) {
                // Any doubt (Ok(false)) or failure: the listing decides.
                if let Ok(true) = firewall::del_port_rules(container_id, &refs) {
                    return Ok(());
                }
            }
            removed(firewall::del_port_mappings_in(net, container_id, v4, v6))
        }
    }
}
