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

use crate::attachment;
pub use crate::ctx::ATTACHMENT_BROKEN;
use crate::ctx::{broken, Ctx};
use cni::error::{codes, CniError};
use cni::result::CniResult;

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
    attachment::check(ctx, &rec, prev_value, &prev)?;
    ctx.log.info("attachment is intact");
    Ok(())
}
