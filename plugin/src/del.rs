//! DEL: detach a container. Best effort and idempotent (SPEC.md "DEL"):
//! a missing netns, link, record or allocation is success, and host-side
//! state (IPAM, port mappings) is released even when the netns is gone.
//!
//! What to undo comes from the attachment record, not from the current
//! config or subnet.env, so DEL still works after either changed. Without
//! a record, flannel's scratch file is used (an ADD by the upstream plugin,
//! or by bridge mode; native mode's names netboot-cni itself and means
//! "undo natively by the deterministic names"); without that either, the
//! delegate config is rebuilt from subnet.env so host-local does not leak
//! the IP (the upstream plugin skips DEL there).

use crate::attachment;
use crate::ctx::Ctx;
use cni::error::CniError;

pub fn del(ctx: &Ctx) -> Result<(), CniError> {
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    attachment::stop_orphans(ctx, cid, ifname);
    let rec = match ctx.store.load(cid, ifname) {
        Ok(r) => r,
        Err(e) => {
            ctx.log.error(&format!("ignoring unreadable record: {e}"));
            None
        }
    };
    let rec = match rec {
        Some(rec) => attachment::with_runtime_mappings(ctx, rec),
        None => match attachment::reconstruct(ctx)? {
            Some(rec) => rec,
            None => {
                ctx.log
                    .info("nothing recorded for this attachment; nothing to do");
                return Ok(());
            }
        },
    };
    attachment::undo(ctx, &ctx.delegates, &rec)
}
