//! CHECK of an attachment in whatever mode made it, and the in-pod
//! checks every mode shares: inside the pod netns, over netlink, the
//! interface exists and is up and carries every address and route of the
//! prevResult.

use crate::chain;
use crate::ctx::{broken, Ctx};
use crate::record::Record;
use cni::error::{codes, CniError};
use cni::result::CniResult;
use netkit::{Family, Netns};
use serde_json::Value;
use std::path::Path;

/// Checks `rec` against the ADD result (`prev_value`, parsed as `prev`).
pub fn check(
    ctx: &Ctx,
    rec: &Record,
    prev_value: &Value,
    prev: &CniResult,
) -> Result<(), CniError> {
    if let Some(state) = &rec.native {
        crate::native::check(ctx, state)?;
    }
    chain::check_delegate(ctx, rec, prev_value)?;
    check_netns(&ctx.args.netns, &ctx.args.ifname, prev)?;
    chain::check_chained(ctx, rec, prev)
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
        .link()
        .by_name(ifname)
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
        .addr()
        .list(Some(link.index))
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
        .route()
        .list(Family::V4)
        .map_err(|e| CniError::internal(e.to_string()))?;
    routes.extend(
        nl.route()
            .list(Family::V6)
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
