//! Shaping a pod's traffic in-process, as the reference `bandwidth` plugin
//! does it (plugins/meta/bandwidth `ifb_creator.go`), so a node can switch
//! between native mode and the chained plugin and still clean up:
//! - ingress (to the pod) = a tbf at the root of the host-side veth, which
//!   sends everything the pod receives;
//! - egress (from the pod) = what the host veth *receives*, redirected by
//!   a u32 filter on its ingress qdisc to an ifb device named like the
//!   reference plugin's (`bwp` + hash of network and container ID), whose
//!   root tbf does the shaping.
//!
//! The veth's qdiscs go with the veth; the ifb is the one object DEL must
//! remove itself (by its recorded name, even with the netns gone).
//! The tbf arithmetic lives in `netkit::tc::tbf`.

use crate::bandwidth::{Bandwidth, Shape};
use crate::ctx::{broken, kernel, Ctx};
use crate::record::Call;
use crate::record::NativeState;
use cni::error::CniError;
use netkit::tc::{tbf, TbfParams};
use netkit::{Link, Netlink, Netns};
use std::path::Path;

/// Records what ADD will make (before it makes it): the shaping asked for
/// and, for egress, the ifb's name. Nothing at all without shaping.
pub fn plan(ctx: &Ctx, state: &mut NativeState, bw: Option<Bandwidth>) {
    state.ifb = bw
        .and_then(|b| b.egress)
        .map(|_| netkit::ifb_name(&ctx.conf.net.name, &ctx.args.container_id));
    state.bandwidth = bw;
}

fn params(s: &Shape, mtu: u32, tick: f64) -> TbfParams {
    TbfParams::from_bits(s.rate, s.burst, mtu, tick)
}

/// Shapes the attachment whose host-side veth is `host`.
pub fn apply(nl: &mut Netlink, host: &Link, state: &NativeState) -> Result<(), CniError> {
    let Some(bw) = state.bandwidth else {
        return Ok(());
    };
    let tick = tbf::tick_in_usec();
    if let Some(s) = &bw.ingress {
        nl.add_tbf(host.index, &params(s, host.mtu, tick))
            .map_err(|e| kernel(&format!("shape ingress on {}", host.name), e))?;
    }
    if let (Some(s), Some(name)) = (&bw.egress, &state.ifb) {
        let ifb = create_ifb(nl, name, host.mtu)?;
        let what = format!("redirect {}'s traffic to {name}", host.name);
        nl.add_ingress_qdisc(host.index)
            .and_then(|()| nl.add_redirect_filter(host.index, ifb.index))
            .map_err(|e| kernel(&what, e))?;
        nl.add_tbf(ifb.index, &params(s, host.mtu, tick))
            .map_err(|e| kernel(&format!("shape egress on {name}"), e))?;
    }
    Ok(())
}

/// The ifb, replacing one an earlier, killed ADD of this attachment left
/// (the name is derived from network + container ID, so it is ours).
fn create_ifb(nl: &mut Netlink, name: &str, mtu: u32) -> Result<Link, CniError> {
    let mut added = nl.add_ifb(name, Some(mtu));
    if matches!(&added, Err(e) if e.is_exists()) {
        nl.del_link_by_name(name)
            .map_err(|e| kernel(&format!("remove stale {name}"), e))?;
        added = nl.add_ifb(name, Some(mtu));
    }
    added.map_err(|e| kernel(&format!("create ifb {name}"), e))?;
    nl.link_by_name(name)
        .map_err(|e| kernel(&format!("look up {name}"), e))?
        .ok_or_else(|| CniError::internal(format!("{name} vanished after creation")))
}

/// Removes the attachment's ifb, if it has one (a missing one is fine).
pub fn remove(nl: &mut Netlink, state: &NativeState) -> Option<CniError> {
    let name = state.ifb.as_deref()?;
    nl.del_link_by_name(name)
        .err()
        .map(|e| kernel(&format!("delete {name}"), e))
}

/// CHECK: the shaping `bw` is in place on `host` (and on `ifb`).
pub fn check(
    nl: &mut Netlink,
    host: &Link,
    bw: &Bandwidth,
    ifb: Option<&str>,
) -> Result<(), CniError> {
    let tick = tbf::tick_in_usec();
    if let Some(s) = &bw.ingress {
        check_tbf(nl, host, &params(s, host.mtu, tick))?;
    }
    if let Some(s) = &bw.egress {
        let name = ifb.ok_or_else(|| broken("egress shaping has no ifb recorded".into()))?;
        let dev = nl
            .link_by_name(name)
            .map_err(|e| kernel("look up ifb", e))?
            .filter(|l| l.up)
            .ok_or_else(|| broken(format!("ifb {name} is missing or down")))?;
        let qdiscs = nl
            .qdiscs(host.index)
            .map_err(|e| kernel("list qdiscs", e))?;
        if !qdiscs.iter().any(|q| q.kind == "ingress") {
            return Err(broken(format!("{} has no ingress qdisc", host.name)));
        }
        check_tbf(nl, &dev, &params(s, host.mtu, tick))?;
    }
    Ok(())
}

/// Rate and limit are compared; the kernel reports the buffer clamped
/// (to 2^32 ns), so a containerd-sized burst would never compare equal.
fn check_tbf(nl: &mut Netlink, dev: &Link, want: &TbfParams) -> Result<(), CniError> {
    let qdiscs = nl.qdiscs(dev.index).map_err(|e| kernel("list qdiscs", e))?;
    let got = qdiscs.iter().find(|q| q.is_root()).and_then(|q| q.tbf);
    match got {
        Some(t) if t.rate == want.rate && t.limit == want.limit => Ok(()),
        other => Err(broken(format!(
            "{} should have a tbf of {} B/s (limit {}), has {other:?}",
            dev.name, want.rate, want.limit
        ))),
    }
}

/// CHECK of shaping done by the chained reference plugin (bridge and
/// flannel modes): the host veth is found as the pod interface's peer.
pub fn check_delegated(ctx: &Ctx, call: &Call) -> Result<(), CniError> {
    let entry = &call.conf["runtimeConfig"]["bandwidth"];
    let Some(bw) = Bandwidth::from_fields(|f| entry.get(f).cloned())? else {
        return Ok(());
    };
    let netns = &ctx.args.netns;
    let pod = Netns::open(Path::new(netns))
        .map_err(|e| CniError::internal(format!("open netns {netns}: {e}")))?;
    let peer = pod
        .netlink()
        .and_then(|mut nl| nl.link_by_name(&ctx.args.ifname))
        .map_err(|e| kernel("look up pod interface", e))?
        .and_then(|l| l.link)
        .ok_or_else(|| broken(format!("{} in {netns} has no veth peer", ctx.args.ifname)))?;
    let mut nl = Netlink::open().map_err(|e| kernel("open netlink", e))?;
    let host = nl
        .link_by_index(peer)
        .map_err(|e| kernel("look up host veth", e))?
        .ok_or_else(|| broken(format!("host veth #{peer} is missing")))?;
    let ifb = netkit::ifb_name(&ctx.conf.net.name, &ctx.args.container_id);
    check(&mut nl, &host, &bw, Some(&ifb))
}
