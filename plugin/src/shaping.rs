//! CHECK of bandwidth shaping in the kernel, whoever applied it: native
//! mode or the chained reference `bandwidth` plugin (whose own CHECK
//! compares a buffer the kernel reports clamped for containerd's bursts).

use crate::bandwidth::{Bandwidth, Shape};
use crate::ctx::{broken, kernel, Ctx};
use crate::record::Call;
use cni::error::CniError;
use netkit::tc::{tick_in_usec, TbfParams};
use netkit::{Link, Netlink, Netns};
use std::path::Path;

pub fn params(s: &Shape, mtu: u32, tick: f64) -> TbfParams {
    TbfParams::from_bits(s.rate, s.burst, mtu, tick)
}

/// CHECK: the shaping `bw` is in place on `host` (and on `ifb`).
pub fn check(
    nl: &mut Netlink,
    host: &Link,
    bw: &Bandwidth,
    ifb: Option<&str>,
) -> Result<(), CniError> {
    let tick = tick_in_usec();
    if let Some(s) = &bw.ingress {
        check_tbf(nl, host, &params(s, host.mtu, tick))?;
    }
    if let Some(s) = &bw.egress {
        let name = ifb.ok_or_else(|| broken("egress shaping has no ifb recorded".into()))?;
        let dev = nl
            .link()
            .by_name(name)
            .map_err(|e| kernel("look up ifb", e))?
            .filter(|l| l.up)
            .ok_or_else(|| broken(format!("ifb {name} is missing or down")))?;
        let qdiscs = nl
            .tc()
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
    let qdiscs = nl
        .tc()
        .qdiscs(dev.index)
        .map_err(|e| kernel("list qdiscs", e))?;
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
        .and_then(|mut nl| nl.link().by_name(&ctx.args.ifname))
        .map_err(|e| kernel("look up pod interface", e))?
        .and_then(|l| l.link)
        .ok_or_else(|| broken(format!("{} in {netns} has no veth peer", ctx.args.ifname)))?;
    let mut nl = Netlink::open().map_err(|e| kernel("open netlink", e))?;
    let host = nl
        .link()
        .by_index(peer)
        .map_err(|e| kernel("look up host veth", e))?
        .ok_or_else(|| broken(format!("host veth #{peer} is missing")))?;
    let ifb = netkit::ifb_name(&ctx.conf.net.name, &ctx.args.container_id);
    check(&mut nl, &host, &bw, Some(&ifb))
}
