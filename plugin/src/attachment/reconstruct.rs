//! Rebuilding what DEL must undo when the runtime's current call or the
//! node's files, not the record, have to say it: the runtime's port
//! mappings, and a whole record for an attachment netboot has none of
//! (flannel's scratch file, native mode's deterministic names, or the
//! delegate config ADD would build today).

use super::mode;
use crate::chain::{portmap_call, rebuilt_call, scratch_call};
use crate::conf::Mode;
use crate::ctx::Ctx;
use crate::record::{Call, Record};
use crate::{flannel, native};
use cni::error::CniError;
use serde_json::Value;

/// The mappings the runtime passed, unless portmap would refuse them: ADD
/// refused those before touching anything, and replaying them would make
/// portmap's DEL (hence this DEL) fail forever.
pub fn runtime_mappings(ctx: &Ctx) -> Vec<Value> {
    match ctx.conf.check_port_mappings() {
        Ok(()) => ctx.conf.port_mappings(),
        Err(e) => {
            ctx.log
                .info(&format!("ignoring the runtime's port mappings: {}", e.msg));
            Vec::new()
        }
    }
}

/// A recorded attachment with the runtime's current port mappings, if it
/// passed any (containerd does, others may not): they win over the
/// recorded ones.
pub fn with_runtime_mappings(ctx: &Ctx, mut rec: Record) -> Record {
    let mappings = runtime_mappings(ctx);
    if !mappings.is_empty() {
        match rec.native.as_mut() {
            // Native mode programs the mappings itself: no portmap
            // binary to call (and none may be on CNI_PATH). Its DEL
            // looks keys up, so it takes the recorded ones too: a
            // runtime passing fewer must not strand an element.
            Some(state) => {
                for m in mappings {
                    if !state.port_mappings.contains(&m) {
                        state.port_mappings.push(m);
                    }
                }
            }
            None => rec.portmap = Some(portmap_call(ctx, &rec, &mappings)),
        }
    }
    rec
}

/// Builds a record for an attachment netboot has no record of.
pub fn reconstruct(ctx: &Ctx) -> Result<Option<Record>, CniError> {
    reconstruct_for(ctx, &ctx.args.container_id, &ctx.args.ifname)
}

/// [`reconstruct`] for any attachment (GC of one whose record is torn).
pub fn reconstruct_for(ctx: &Ctx, cid: &str, ifname: &str) -> Result<Option<Record>, CniError> {
    let mut rec = Record::new(cid, ifname, &ctx.conf.net.name, Mode::Bridge);
    let mappings = runtime_mappings(ctx);
    if !mappings.is_empty() {
        rec.portmap = Some(portmap_call(ctx, &rec, &mappings));
    }
    if let Ok(Some(bw)) = ctx.conf.bandwidth() {
        rec.bandwidth = Some(Call {
            type_: "bandwidth".into(),
            conf: flannel::bandwidth_conf(&ctx.conf, &ctx.conf.net.cni_version, &bw),
        });
    }
    let scratch = match ctx.store.load_flannel(cid) {
        Ok(Some(bytes)) => scratch_call(ctx, &bytes),
        Ok(None) => None,
        Err(e) => {
            ctx.log
                .error(&format!("ignoring unreadable delegate config: {e}"));
            None
        }
    };
    // Native mode's scratch file names netboot-cni itself: undo natively.
    let own = scratch
        .as_ref()
        .is_some_and(|c| flannel::is_own_type(&ctx.conf, &c.type_));
    rec.delegate = scratch.filter(|_| !own);
    if rec.delegate.is_none() {
        if own || matches!(mode::resolve(&ctx.conf, &ctx.delegates), Ok(Mode::Native)) {
            // Native mode without a record: undo by the deterministic names
            // (veth, IPAM owner) and sweep port mappings, which nothing else
            // can tell us about.
            if let Ok((mut state, _)) = native::plan_for(ctx, cid, ifname) {
                state.sweep_ports = true;
                // The ifb's name is deterministic: remove it if it is there.
                state.ifb = Some(netkit::ifb_name(&ctx.conf.net.name, cid));
                rec.mode = Mode::Native;
                rec.native = Some(state);
                rec.portmap = None;
                rec.bandwidth = None;
            }
        } else {
            if let Ok(mode) = mode::resolve(&ctx.conf, &ctx.delegates) {
                rec.mode = mode;
                rec.delegate = rebuilt_call(ctx, mode);
            }
        }
    }
    let any = rec.delegate.is_some()
        || rec.portmap.is_some()
        || rec.bandwidth.is_some()
        || rec.native.is_some();
    Ok(any.then_some(rec))
}
