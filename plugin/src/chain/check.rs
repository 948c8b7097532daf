//! CHECK of a delegated attachment: the delegate's own CHECK, and the
//! chained plugins' state looked at directly (portmap 1.1.1's own CHECK is
//! broken for IPv4 mappings, containernetworking/plugins#819; the reference
//! bandwidth plugin's compares a buffer the kernel reports clamped for
//! containerd's bursts).

use crate::ctx::{broken, Ctx};
use crate::delegate::with_prev_result;
use crate::record::Record;
use cni::error::CniError;
use cni::result::CniResult;
use serde_json::Value;
use std::net::IpAddr;

/// The delegate's own CHECK (bridge: link, addresses, bridge membership),
/// given the ADD result `prev_value` as prevResult.
pub fn check_delegate(ctx: &Ctx, rec: &Record, prev_value: &Value) -> Result<(), CniError> {
    if let Some(call) = &rec.delegate {
        let call = with_prev_result(call, &with_route_gateways(prev_value))?;
        ctx.delegates
            .run(cni::args::Command::Check, &call)
            .map_err(|e| e.context(format!("{} CHECK", call.type_)))?;
    }
    Ok(())
}

/// The chained plugins' state: the port mappings' DNAT rules, the
/// bandwidth shaping's qdiscs and ifb.
pub fn check_chained(ctx: &Ctx, rec: &Record, prev: &CniResult) -> Result<(), CniError> {
    let (net, cid) = (&ctx.conf.net, &ctx.args.container_id);
    if let Some(pm) = &rec.portmap {
        if pm.conf.get("backend").and_then(Value::as_str) != Some("nftables") {
            let ips: Vec<IpAddr> = prev.ips.iter().map(|ip| ip.address.addr()).collect();
            check_dnat_rules(&net.name, cid, &ips)?;
        }
    }
    if let Some(bw) = &rec.bandwidth {
        crate::shaping::check_delegated(ctx, bw)?;
    }
    Ok(())
}

/// host-local routes usually carry no `gw`; bridge installs them via the
/// interface's gateway, and then its own CHECK (plugins v1.1.1
/// `ip.ValidateExpectedRoute`) looks for a route with *no* gateway and
/// fails on every healthy pod. Spelling out the gateway the kernel route
/// really has keeps the delegate's CHECK meaningful.
fn with_route_gateways(prev: &Value) -> Value {
    let mut prev = prev.clone();
    let gateways: Vec<String> = prev["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip["gateway"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(routes) = prev.get_mut("routes").and_then(Value::as_array_mut) {
        for r in routes.iter_mut().filter(|r| r.get("gw").is_none()) {
            let v6 = r["dst"].as_str().is_some_and(|d| d.contains(':'));
            if let Some(gw) = gateways.iter().find(|g| g.contains(':') == v6) {
                r["gw"] = Value::String(gw.clone());
            }
        }
    }
    prev
}

/// The reference portmap's iptables rules of the attachment (found by
/// their comment, [`netkit::firewall::portmap_dnat_present`]), in the nat
/// table of each family the pod has an address of (it forwards the first
/// IP of each family, `forwardPorts`).
fn check_dnat_rules(network: &str, container_id: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    for v6 in [false, true] {
        if !ips.iter().any(|ip| ip.is_ipv6() == v6) {
            continue;
        }
        let present = netkit::firewall::portmap_dnat_present(v6, network, container_id)
            .map_err(|e| CniError::internal(e.to_string()))?;
        if !present {
            return Err(broken(format!(
                "port mapping rules of container {container_id:?} are missing from the {}nat table",
                if v6 { "IPv6 " } else { "" }
            )));
        }
    }
    Ok(())
}
