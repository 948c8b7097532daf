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
//! The tbf arithmetic lives in `netkit::tc` (`TbfParams`, `tick_in_usec`).

use crate::bandwidth::Bandwidth;
use crate::ctx::{kernel, Ctx};
use crate::record::NativeState;
use crate::shaping::params;
use cni::error::CniError;
use netkit::tc;
use netkit::{Link, Netlink};

/// Records what ADD will make (before it makes it): the shaping asked for
/// and, for egress, the ifb's name. Nothing at all without shaping.
pub fn plan(ctx: &Ctx, state: &mut NativeState, bw: Option<Bandwidth>) {
    state.ifb = bw
        .and_then(|b| b.egress)
        .map(|_| netkit::ifb_name(&ctx.conf.net.name, &ctx.args.container_id));
    state.bandwidth = bw;
}

/// Shapes the attachment whose host-side veth is `host`.
pub fn apply(nl: &mut Netlink, host: &Link, state: &NativeState) -> Result<(), CniError> {
    let Some(bw) = state.bandwidth else {
        return Ok(());
    };
    let tick = tc::tick_in_usec();
    if let Some(s) = &bw.ingress {
        nl.tc()
            .add_tbf(host.index, &params(s, host.mtu, tick))
            .map_err(|e| kernel(&format!("shape ingress on {}", host.name), e))?;
    }
    if let (Some(s), Some(name)) = (&bw.egress, &state.ifb) {
        let ifb = create_ifb(nl, name, host.mtu)?;
        let what = format!("redirect {}'s traffic to {name}", host.name);
        nl.tc()
            .add_ingress(host.index)
            .and_then(|()| nl.tc().add_redirect(host.index, ifb.index))
            .map_err(|e| kernel(&what, e))?;
        nl.tc()
            .add_tbf(ifb.index, &params(s, host.mtu, tick))
            .map_err(|e| kernel(&format!("shape egress on {name}"), e))?;
    }
    Ok(())
}

/// The ifb, replacing one an earlier, killed ADD of this attachment left
/// (the name is derived from network + container ID, so it is ours).
fn create_ifb(nl: &mut Netlink, name: &str, mtu: u32) -> Result<Link, CniError> {
    let mut added = nl.link().add_ifb(name, Some(mtu));
    if matches!(&added, Err(e) if e.is_exists()) {
        nl.link()
            .del_by_name(name)
            .map_err(|e| kernel(&format!("remove stale {name}"), e))?;
        added = nl.link().add_ifb(name, Some(mtu));
    }
    added.map_err(|e| kernel(&format!("create ifb {name}"), e))?;
    nl.link()
        .by_name(name)
        .map_err(|e| kernel(&format!("look up {name}"), e))?
        .ok_or_else(|| CniError::internal(format!("{name} vanished after creation")))
}

/// Removes the attachment's ifb, if it has one (a missing one is fine).
pub fn remove(nl: &mut Netlink, state: &NativeState) -> Option<CniError> {
    let name = state.ifb.as_deref()?;
    nl.link()
        .del_by_name(name)
        .err()
        .map(|e| kernel(&format!("delete {name}"), e))
}
