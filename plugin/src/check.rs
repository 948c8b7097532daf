//! CHECK: is the attachment still what ADD made? (SPEC.md "CHECK")
//!
//! The upstream flannel plugin's CHECK is a TODO that always succeeds;
//! here it checks for real:
//! - the delegate's own CHECK (bridge: link, addresses, bridge membership);
//! - inside the pod netns, over netlink: the interface exists and is up,
//!   and carries every address and route of the prevResult;
//! - the port mappings' DNAT rules still exist (portmap 1.1.1's own CHECK
//!   is broken for IPv4 mappings, containernetworking/plugins#819, so we
//!   look at the rules instead of delegating);
//! - the bandwidth shaping's qdiscs and ifb (the reference plugin's CHECK
//!   compares a buffer the kernel reports clamped for containerd's bursts).

pub use crate::ctx::ATTACHMENT_BROKEN;
use crate::ctx::{broken, Ctx};
use crate::delegate::with_prev_result;
use cni::error::{codes, CniError};
use cni::result::CniResult;
use netkit::{Family, Netns};
use serde_json::Value;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command as Proc;

pub fn check(ctx: &Ctx) -> Result<(), CniError> {
    let net = &ctx.conf.net;
    let prev_value = net.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            codes::INVALID_CONFIG,
            "CHECK requires prevResult (the result of ADD)",
        )
    })?;
    let prev =
        CniResult::from_value(prev_value, &net.cni_version).map_err(|e| e.context("prevResult"))?;
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    let rec = ctx
        .store
        .load(cid, ifname)
        .map_err(|e| broken(format!("attachment record unreadable: {e}")))?
        .ok_or_else(|| {
            broken(format!(
                "container {cid:?} interface {ifname:?} is not attached to network {:?}",
                net.name
            ))
        })?;
    if let Some(state) = &rec.native {
        crate::native::check(ctx, state)?;
    }
    if let Some(call) = &rec.delegate {
        let call = with_prev_result(call, &with_route_gateways(prev_value))?;
        ctx.delegates
            .run(cni::args::Command::Check, &call)
            .map_err(|e| e.context(format!("{} CHECK", call.type_)))?;
    }
    check_netns(&ctx.args.netns, ifname, &prev)?;
    if let Some(pm) = &rec.portmap {
        if pm.conf.get("backend").and_then(Value::as_str) != Some("nftables") {
            let ips: Vec<IpAddr> = prev.ips.iter().map(|ip| ip.address.addr()).collect();
            check_dnat_rules(&net.name, cid, &ips)?;
        }
    }
    if let Some(bw) = &rec.bandwidth {
        crate::native::bandwidth::check_delegated(ctx, bw)?;
    }
    ctx.log.info("attachment is intact");
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

/// The interface, its addresses and the result's routes, seen from inside
/// the pod's netns.
fn check_netns(netns: &str, ifname: &str, prev: &CniResult) -> Result<(), CniError> {
    let ns = Netns::open(Path::new(netns))
        .map_err(|e| CniError::new(codes::INVALID_NETNS, format!("open netns {netns}: {e}")))?;
    let mut nl = ns
        .netlink()
        .map_err(|e| CniError::internal(format!("netlink in {netns}: {e}")))?;
    let link = nl
        .link_by_name(ifname)
        .map_err(|e| CniError::internal(e.to_string()))?
        .ok_or_else(|| broken(format!("interface {ifname} is missing from {netns}")))?;
    if !link.up {
        return Err(broken(format!("interface {ifname} in {netns} is down")));
    }
    let ours = prev
        .interfaces
        .iter()
        .position(|i| i.name == ifname && (i.sandbox.is_empty() || i.sandbox == netns));
    let addrs = nl
        .addrs(Some(link.index))
        .map_err(|e| CniError::internal(e.to_string()))?;
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_none() || ip.interface == ours)
    {
        if !addrs.iter().any(|a| a.addr == ip.address) {
            return Err(broken(format!(
                "{ifname} in {netns} lacks address {}",
                ip.address
            )));
        }
    }
    let mut routes = nl
        .routes(Family::V4)
        .map_err(|e| CniError::internal(e.to_string()))?;
    routes.extend(
        nl.routes(Family::V6)
            .map_err(|e| CniError::internal(e.to_string()))?,
    );
    for r in &prev.routes {
        let found = routes
            .iter()
            .any(|k| k.dst == r.dst.trunc() && (r.gw.is_none() || k.gw == r.gw));
        if !found {
            return Err(broken(format!(
                "{netns} lacks route {}",
                describe_route(r.dst, r.gw)
            )));
        }
    }
    Ok(())
}

fn describe_route(dst: ipnet::IpNet, gw: Option<std::net::IpAddr>) -> String {
    match gw {
        Some(gw) => format!("{dst} via {gw}"),
        None => dst.to_string(),
    }
}

/// portmap tags every DNAT rule of an attachment with this comment
/// (plugins/meta/portmap `portmap_iptables.go`, utils.FormatComment), in
/// the nat table of each family the pod has an address of (it forwards
/// the first IP of each family, `forwardPorts`).
fn check_dnat_rules(network: &str, container_id: &str, ips: &[IpAddr]) -> Result<(), CniError> {
    let tag = format!("dnat name: \\\"{network}\\\" id: \\\"{container_id}\\\"");
    for (v6, tool) in [(false, "iptables-save"), (true, "ip6tables-save")] {
        if !ips.iter().any(|ip| ip.is_ipv6() == v6) {
            continue;
        }
        let out = Proc::new(tool)
            .args(["-t", "nat"])
            .output()
            .map_err(|e| CniError::internal(format!("run {tool}: {e}")))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains(&tag) && !text.contains(&tag.replace('\\', "")) {
            return Err(broken(format!(
                "port mapping rules of container {container_id:?} are missing from the {}nat table",
                if v6 { "IPv6 " } else { "" }
            )));
        }
    }
    Ok(())
}
