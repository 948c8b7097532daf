//! ADD: attach a container to the pod network.
//!
//! Order of work, each step recorded before it runs so that DEL (or GC)
//! can always undo a half-finished ADD, even after a SIGKILL:
//! 1. validate config and subnet.env (nothing touched yet);
//! 2. record the delegate call, then run it (bridge or flannel);
//! 3. record the portmap call, then chain it when port mappings exist,
//!    and delete stale UDP conntrack entries toward the new hostPorts;
//! 4. record the bandwidth call, then chain it when shaping was asked for
//!    (delegate → portmap → bandwidth, the order of a reference conflist);
//! 5. record the final result.
//!
//! A failure in steps 2-3 rolls back what already ran before returning the
//! error (SPEC.md "Delegated plugins": the upper plugin must DEL on failure).

use crate::ctx::{io_err, Ctx};
use crate::{attachment, ghost};
use cni::error::{codes, CniError};

pub fn add(ctx: &Ctx) -> Result<String, CniError> {
    let boot = ghost::boot_id()?;
    match add_once(ctx, boot.as_deref()) {
        // Not every runtime DELs or GCs the pods a reboot killed
        // (plugins#252): free the IPs of provable ghosts and try once more.
        // The failed attempt was rolled back, so the retry starts clean.
        Err(e) if ghost::is_exhaustion(&e) => {
            let freed = match ghost::reclaim_ips(ctx, boot.as_deref()) {
                Ok(freed) => freed,
                Err(re) => {
                    ctx.log.error(&format!("reclaiming ghost IPs failed: {re}"));
                    return Err(e);
                }
            };
            if freed.is_empty() {
                return Err(e);
            }
            ctx.log.info(&format!(
                "range was exhausted; freed {} IP(s) of ghost attachments, retrying",
                freed.len()
            ));
            add_once(ctx, boot.as_deref())
        }
        other => other,
    }
}

fn add_once(ctx: &Ctx, boot: Option<&str>) -> Result<String, CniError> {
    let mode = attachment::resolve(&ctx.conf, &ctx.delegates)?;
    let mappings = ctx.conf.port_mappings();
    let bandwidth = ctx.conf.bandwidth()?;
    let mut rec = attachment::plan(ctx, mode, boot, &mappings, bandwidth.as_ref())?;
    clear_stale(ctx, boot)?;
    attachment::mark_siblings(ctx, &mut rec)?;
    ctx.log.info(&format!(
        "mode {}: delegating to {}",
        mode.as_str(),
        attachment::describe(&rec)
    ));
    match attachment::make(ctx, &mut rec, &mappings, bandwidth.as_ref()) {
        Ok(result) => {
            let out = result.to_json(&ctx.conf.net.cni_version)?;
            rec.result = Some(result.to_value(&ctx.conf.net.cni_version)?);
            ctx.store
                .save_final(&rec)
                .map_err(|e| io_err("save attachment record", e))?;
            Ok(out)
        }
        Err(e) => {
            ctx.log.error(&format!("ADD failed, rolling back: {e}"));
            if let Err(rb) = attachment::undo(ctx, &ctx.delegates, &rec) {
                ctx.log.error(&format!("rollback incomplete: {rb}"));
                return Err(e.with_details(format!("rollback incomplete: {}", rb.msg)));
            }
            Err(e)
        }
    }
}

/// A record without a result is a previous ADD that never finished (killed
/// or failed without rollback). Nobody was told it succeeded, so undo it
/// before starting over. A finished attachment is never overwritten, unless
/// it is a ghost (made in an earlier boot, or its netns is gone): a runtime
/// re-creating a sandbox under the same ID after a reboot gets a clean ADD
/// instead of "already attached" (the old one is undone as DEL would).
fn clear_stale(ctx: &Ctx, boot: Option<&str>) -> Result<(), CniError> {
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    attachment::stop_orphans(ctx, cid, ifname);
    match ctx.store.load(cid, ifname) {
        Ok(None) => Ok(()),
        Ok(Some(rec)) if rec.result.is_some() => {
            let Some(why) = ghost::reason(&rec, boot, &ghost::is_netns) else {
                return Err(already_attached(cid, ifname, &rec.network));
            };
            ctx.log.info(&format!(
                "undoing the earlier attachment ({})",
                why.as_str()
            ));
            attachment::undo(ctx, &ctx.delegates, &rec)
        }
        Ok(Some(rec)) => {
            ctx.log.info("undoing an unfinished earlier ADD");
            attachment::undo(ctx, &ctx.delegates, &rec)
        }
        Err(e) => {
            ctx.log.error(&format!("discarding unreadable record: {e}"));
            ctx.store
                .remove(cid, ifname)
                .map_err(|e| io_err("remove damaged record", e))
        }
    }
}

fn already_attached(cid: &str, ifname: &str, network: &str) -> CniError {
    CniError::new(
        codes::INVALID_ENV,
        format!(
            "container {cid:?} interface {ifname:?} is already attached to network {network:?}; DEL it first"
        ),
    )
}
