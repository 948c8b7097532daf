//! Native CHECK: what the kernel and the node's state must still show for
//! an attachment native ADD made (the in-pod addresses and routes are
//! checked for every mode by `crate::check`).

use super::conf::NativeConf;
use super::ips::pool;
use super::ports::check_ports;
use super::NativeState;
use crate::ctx::{broken, ipam_err, kernel, Ctx};
use cni::error::CniError;
use netkit::firewall;
use netkit::Netlink;

/// Native CHECK, on top of the generic in-pod checks: host veth up and on
/// the bridge, an IP of every range still held in the store, port mapping
/// rules and the node masquerade rules (each family's) present.
pub fn check(ctx: &Ctx, state: &NativeState) -> Result<(), CniError> {
    let nconf = NativeConf::from_delegate(&state.conf)?;
    let mut nl = Netlink::open().map_err(|e| kernel("open netlink", e))?;
    let host = nl
        .link()
        .by_name(&state.host_veth)
        .map_err(|e| kernel("look up host veth", e))?
        .ok_or_else(|| broken(format!("host veth {} is missing", state.host_veth)))?;
    let bridge = nl
        .link()
        .by_name(&state.bridge)
        .map_err(|e| kernel("look up bridge", e))?
        .ok_or_else(|| broken(format!("bridge {} is missing", state.bridge)))?;
    if !host.up || host.master != Some(bridge.index) {
        return Err(broken(format!(
            "host veth {} is {} and {} to {}",
            host.name,
            if host.up { "up" } else { "down" },
            if host.master == Some(bridge.index) {
                "attached"
            } else {
                "not attached"
            },
            bridge.name
        )));
    }
    if let Some(bw) = &state.bandwidth {
        crate::shaping::check(&mut nl, &host, bw, state.ifb.as_deref())?;
    }
    let held = pool(state, &nconf)?
        .holds(&ctx.args.container_id, &ctx.args.ifname)
        .map_err(ipam_err)?;
    // One IP per range set (per family with flannel's [[v4],[v6]]).
    if let Some(r) = nconf
        .ranges
        .iter()
        .find(|r| !held.iter().any(|ip| r.subnet.contains(ip)))
    {
        return Err(broken(format!(
            "no IP of {} is allocated to this attachment in {}",
            r.subnet,
            state.ipam_dir.display()
        )));
    }
    if !state.port_mappings.is_empty() {
        check_ports(ctx, state, &held)?;
    }
    if nconf.ip_masq {
        for r in &nconf.ranges {
            let present = firewall::node_masquerade_present(&ctx.conf.net.name, r.subnet)
                .map_err(|e| kernel("inspect masquerade rules", e))?;
            if !present {
                return Err(broken(format!(
                    "masquerade rules for {} are missing",
                    r.subnet
                )));
            }
        }
    }
    Ok(())
}
