//! One attachment, whatever mode makes it: the one place that switches on
//! the mode (the upstream flannel binary or the bridge chain, see
//! [`chain`], or pure netlink, see [`native`]) for ADD, CHECK, undo and
//! the attachments DEL and GC find without a record.

mod check;
mod mode;
mod reconstruct;

use crate::bandwidth::Bandwidth;
use crate::chain;
use crate::conf::Mode;
use crate::ctx::{io_err, Ctx};
use crate::delegate::Delegator;
use crate::record::Record;
use crate::subnet_env::SubnetEnv;
use crate::{flannel, native};
pub use check::check;
use cni::error::CniError;
use cni::result::CniResult;
pub use mode::{required_binaries, resolve};
pub use reconstruct::{reconstruct, reconstruct_for, with_runtime_mappings};
use serde_json::Value;
use std::path::PathBuf;

/// The record of an ADD in `mode`, with what it will do planned (and, for
/// the chain, every binary found) before anything is touched.
pub fn plan(
    ctx: &Ctx,
    mode: Mode,
    boot: Option<&str>,
    mappings: &[Value],
    bandwidth: Option<&Bandwidth>,
) -> Result<Record, CniError> {
    let mut rec = Record::new(
        &ctx.args.container_id,
        &ctx.args.ifname,
        &ctx.conf.net.name,
        mode,
    );
    rec.boot_id = boot.map(str::to_string);
    if mode == Mode::Native {
        let mut state = native::plan(ctx)?.0;
        native::bandwidth::plan(ctx, &mut state, bandwidth.copied());
        rec.native = Some(state);
    } else {
        chain::plan(ctx, mode, &mut rec, mappings, bandwidth)?;
    }
    Ok(rec)
}

/// Makes the planned attachment; on failure the caller undoes `rec`.
pub fn make(
    ctx: &Ctx,
    rec: &mut Record,
    mappings: &[Value],
    bandwidth: Option<&Bandwidth>,
) -> Result<CniResult, CniError> {
    if rec.mode == Mode::Native {
        ctx.store
            .save(rec)
            .map_err(|e| io_err("save attachment record", e))
            .and_then(|_| save_native_scratch(ctx))
            .and_then(|_| native::add(ctx, rec))
    } else {
        chain::add(ctx, rec, mappings, bandwidth)
    }
}

/// flannel's scratch file for a native attachment ([`flannel::native_scratch`]),
/// written after the record, so DEL and GC always know to remove it.
fn save_native_scratch(ctx: &Ctx) -> Result<(), CniError> {
    let bytes = serde_json::to_vec(&flannel::native_scratch(&ctx.conf))
        .map_err(|e| CniError::internal(e.to_string()))?;
    ctx.store
        .save_flannel_lazy(&ctx.args.container_id, &bytes)
        .map_err(|e| io_err("save flannel scratch file", e))
}

/// What makes the attachment, for the log.
pub fn describe(rec: &Record) -> &str {
    rec.delegate
        .as_ref()
        .map(|c| c.type_.as_str())
        .unwrap_or("netlink (in-process)")
}

/// Stops a delegate that a killed earlier call for the attachment left
/// running ([`crate::inflight`]), so it cannot redo what is undone next.
pub fn stop_orphans(ctx: &Ctx, container_id: &str, ifname: &str) {
    match ctx.store.reap_inflight(container_id, ifname) {
        Ok(Some(pid)) => ctx.log.info(&format!(
            "killed the orphaned delegate (process group {pid}) of an interrupted call"
        )),
        Ok(None) => {}
        Err(e) => ctx
            .log
            .error(&format!("cannot stop an orphaned delegate: {e}")),
    }
}

/// Undoes a (possibly partial) attachment in reverse order: bandwidth,
/// portmap, then the delegate, then the files. Every step is attempted; the files are
/// removed only when all steps succeeded, so a failed DEL can be retried.
pub fn undo(ctx: &Ctx, d: &Delegator, rec: &Record) -> Result<(), CniError> {
    let mut errors: Vec<CniError> = Vec::new();
    chain::undo(ctx, d, rec, &mut errors);
    if let Some(state) = &rec.native {
        errors.extend(native::undo(
            ctx,
            &rec.container_id,
            &rec.ifname,
            state,
            rec.result.as_ref(),
        ));
    }
    // After the port rules went: no new datagram is DNATed to the pod.
    crate::conntrack::forget_pod_udp(&ctx.log, &recorded_mappings(rec), &rec.result_ips());
    if let Some(first) = errors.first() {
        let all: Vec<String> = errors.iter().map(|e| e.msg.clone()).collect();
        ctx.log
            .error(&format!("DEL incomplete: {}", all.join("; ")));
        return Err(CniError::new(first.code, first.msg.clone()).with_details(all.join("; ")));
    }
    // flannel's scratch file is per container, not per interface: it goes
    // with the container's last attachment. Bridge and native mode write
    // it; in flannel mode it is the flannel plugin's.
    let shared = shares_scratch(ctx, rec);
    // An ADD that finished left no temp file of a killed writer behind:
    // nothing to look for in directories holding one file per pod.
    let finished = rec.result.is_some();
    if rec.mode != Mode::Flannel && !shared {
        let cid = &rec.container_id;
        match finished {
            true => ctx.store.remove_flannel_finished(cid),
            false => ctx.store.remove_flannel(cid),
        }
        .map_err(|e| io_err("remove delegate config", e))?;
    }
    match finished {
        true => ctx.store.remove_finished(&rec.container_id, &rec.ifname),
        false => ctx.store.remove(&rec.container_id, &rec.ifname),
    }
    .map_err(|e| io_err("remove attachment record", e))?;
    ctx.log.info("detached");
    Ok(())
}

/// Leaves the sibling mark when the container already has another
/// attachment (its scratch file is there), before `rec` is first saved:
/// see `record::siblings`.
pub fn mark_siblings(ctx: &Ctx, rec: &mut Record) -> Result<(), CniError> {
    if ctx.store.flannel_exists(&rec.container_id) {
        ctx.store
            .mark_siblings(&rec.container_id)
            .map_err(|e| io_err("mark the container's other attachments", e))?;
    }
    rec.sibling_mark = true;
    Ok(())
}

/// Whether another attachment of `rec`'s container still uses flannel's
/// scratch file: one stat when `rec`'s ADD kept the sibling mark and there
/// is none, else a listing of the records, which drops the mark once at
/// most one attachment is left.
fn shares_scratch(ctx: &Ctx, rec: &Record) -> bool {
    let cid = &rec.container_id;
    if rec.sibling_mark && !ctx.store.siblings_marked(cid) {
        return false;
    }
    let Ok(ifnames) = ctx.store.ifnames_of(cid) else {
        return true;
    };
    let others = ifnames.iter().filter(|i| **i != rec.ifname).count();
    if others <= 1 {
        if let Err(e) = ctx.store.unmark_siblings(cid) {
            ctx.log
                .error(&format!("cannot remove the sibling mark: {e}"));
        }
    }
    others > 0
}

/// The port mappings an attachment published, as its record holds them
/// (native mode's own, or the chained portmap's call).
fn recorded_mappings(rec: &Record) -> Vec<netkit::firewall::PortMapping> {
    let raw = match (&rec.native, &rec.portmap) {
        (Some(n), _) => n.port_mappings.clone(),
        (None, Some(pm)) => pm.conf["runtimeConfig"]["portMappings"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    raw.iter().filter_map(crate::conf::parse_mapping).collect()
}

/// What STATUS must look at for `mode` to be ready.
pub enum Probe {
    /// Native mode: the IP store directory must be writable.
    IpamDir(PathBuf),
    /// The delegate whose STATUS is asked, when it speaks CNI 1.1.0.
    Delegate(crate::record::Call),
}

pub fn status_probe(ctx: &Ctx, mode: Mode, env: &SubnetEnv) -> Result<Probe, CniError> {
    Ok(match mode {
        Mode::Native => Probe::IpamDir(native::plan(ctx)?.0.ipam_dir),
        _ => Probe::Delegate(chain::status_call(ctx, mode, env)),
    })
}
