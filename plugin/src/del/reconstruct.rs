//! Rebuilding what DEL must undo when the runtime's current call or the
//! node's files, not the record, have to say it: the runtime's port
//! mappings, and a whole record for an attachment netboot has none of
//! (flannel's scratch file, native mode's deterministic names, or the
//! delegate config ADD would build today).

use crate::conf::Mode;
use crate::ctx::{load_subnet_env, Ctx};
use crate::record::{Call, Record};
use crate::{flannel, mode};
use cni::error::CniError;
use serde_json::Value;

/// The mappings the runtime passed, unless portmap would refuse them: ADD
/// refused those before touching anything, and replaying them would make
/// portmap's DEL (hence this DEL) fail forever.
pub(super) fn runtime_mappings(ctx: &Ctx) -> Vec<Value> {
    match ctx.conf.check_port_mappings() {
        Ok(()) => ctx.conf.port_mappings(),
        Err(e) => {
            ctx.log
                .info(&format!("ignoring the runtime's port mappings: {}", e.msg));
            Vec::new()
        }
    }
}

pub(super) fn portmap_call(ctx: &Ctx, rec: &Record, mappings: &[Value]) -> Call {
    let version = rec
        .delegate
        .as_ref()
        .map(|c| crate::delegate::conf_version(&c.conf).to_string())
        .unwrap_or_else(|| ctx.conf.net.cni_version.clone());
    Call {
        type_: "portmap".into(),
        conf: flannel::portmap_conf(&ctx.conf, &version, mappings),
    }
}

/// Builds a record for an attachment netboot has no record of.
pub(super) fn reconstruct(ctx: &Ctx) -> Result<Option<Record>, CniError> {
    reconstruct_for(ctx, &ctx.args.container_id, &ctx.args.ifname)
}

/// [`reconstruct`] for any attachment (GC of one whose record is torn).
pub fn reconstruct_for(ctx: &Ctx, cid: &str, ifname: &str) -> Result<Option<Record>, CniError> {
    let mut rec = Record {
        container_id: cid.to_string(),
        ifname: ifname.to_string(),
        network: ctx.conf.net.name.clone(),
        mode: Mode::Bridge,
        delegate: None,
        portmap: None,
        bandwidth: None,
        result: None,
        native: None,
        boot_id: None,
    };
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
            if let Ok((mut state, _)) = crate::native::plan_for(ctx, cid, ifname) {
                state.sweep_ports = true;
                // The ifb's name is deterministic: remove it if it is there.
                state.ifb = Some(netkit::ifb_name(&ctx.conf.net.name, cid));
                rec.mode = Mode::Native;
                rec.native = Some(state);
                rec.portmap = None;
                rec.bandwidth = None;
            }
        } else {
            rec.delegate = rebuilt_call(ctx, &mut rec.mode);
        }
    }
    let any = rec.delegate.is_some()
        || rec.portmap.is_some()
        || rec.bandwidth.is_some()
        || rec.native.is_some();
    Ok(any.then_some(rec))
}

/// flannel's scratch file: the exact config its delegate got. An empty or
/// torn file (flannel-io/cni-plugin#43) is skipped, not fatal.
pub(super) fn scratch_call(ctx: &Ctx, bytes: &[u8]) -> Option<Call> {
    match serde_json::from_slice::<Value>(bytes) {
        // flannel reads it back into `types.NetConf` (Go's key rule).
        Ok(conf) => field_of_obj(&conf, "type").map(|t| Call {
            type_: t.to_string(),
            conf: conf.clone(),
        }),
        Err(e) => {
            ctx.log.error(&format!(
                "delegate config is damaged ({} bytes): {e}",
                bytes.len()
            ));
            None
        }
    }
}

fn field_of_obj<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    cni::gojson::field_of(v.as_object()?, field)?.as_str()
}

/// The delegate config ADD would build today, when it can be built.
fn rebuilt_call(ctx: &Ctx, mode_out: &mut Mode) -> Option<Call> {
    let mode = mode::resolve(&ctx.conf, &ctx.delegates).ok()?;
    *mode_out = mode;
    if mode == Mode::Flannel {
        return Some(Call {
            type_: "flannel".into(),
            conf: flannel::flannel_conf(&ctx.conf),
        });
    }
    let env = load_subnet_env(ctx).ok()?;
    let conf = flannel::bridge_delegate(&ctx.conf, &env);
    let type_ = conf["type"].as_str()?.to_string();
    Some(Call { type_, conf })
}
