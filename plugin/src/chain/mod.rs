//! Delegated mode, the twin of `native`: the attachment made by CNI
//! plugins on CNI_PATH (the upstream flannel binary, or bridge + IPAM
//! driven by netboot), with portmap and bandwidth chained after it
//! (delegate → portmap → bandwidth, the order of a reference conflist).
//! Every call is recorded before it runs, so DEL can replay it ([`undo`])
//! and CHECK can ask the delegate ([`check_delegate`]).
//!
//! A failure part-way rolls back what already ran (SPEC.md "Delegated
//! plugins": the upper plugin must DEL on failure); the caller does that
//! with [`undo`].

mod check;
mod del;
mod scratch;

use crate::bandwidth::Bandwidth;
use crate::conf::Mode;
use crate::ctx::{io_err, load_subnet_env, result_dns, Ctx};
use crate::delegate::{conf_version, without_prev_result};
use crate::flannel;
use crate::record::{Call, Record};
use crate::subnet_env::SubnetEnv;
pub use check::{check_chained, check_delegate};
use cni::error::CniError;
use cni::result::CniResult;
pub use del::undo;
pub use scratch::scratch_call;
use serde_json::Value;

/// Records in `rec` the calls ADD will make (delegate, portmap when
/// `mappings` exist, bandwidth when shaping was asked for), failing before
/// anything is touched if a binary of the chain is missing.
pub fn plan(
    ctx: &Ctx,
    mode: Mode,
    rec: &mut Record,
    mappings: &[Value],
    bandwidth: Option<&Bandwidth>,
) -> Result<(), CniError> {
    rec.delegate = Some(delegate_call(ctx, mode)?);
    if !mappings.is_empty() {
        // Fail before touching anything if the chain cannot complete.
        ctx.delegates.find("portmap")?;
        // Recorded up front with the delegate (one durable write, not
        // two): DEL of a portmap that never ran is a no-op.
        rec.portmap = Some(Call {
            type_: "portmap".into(),
            conf: flannel::portmap_conf(&ctx.conf, &ctx.conf.net.cni_version, mappings),
        });
    }
    if let Some(bw) = bandwidth {
        // Same: fail before touching anything, record with the rest.
        ctx.delegates.find("bandwidth")?;
        rec.bandwidth = Some(Call {
            type_: "bandwidth".into(),
            conf: flannel::bandwidth_conf(&ctx.conf, &ctx.conf.net.cni_version, bw),
        });
    }
    Ok(())
}

/// The main delegate call for `mode`.
fn delegate_call(ctx: &Ctx, mode: Mode) -> Result<Call, CniError> {
    match mode {
        Mode::Flannel => Ok(Call {
            type_: "flannel".into(),
            conf: flannel::flannel_conf(&ctx.conf),
        }),
        _ => {
            let env = load_subnet_env(ctx)?;
            let conf = flannel::bridge_delegate(&ctx.conf, &env);
            let type_ = conf["type"].as_str().unwrap_or("bridge").to_string();
            ctx.delegates.find(&type_)?;
            Ok(Call { type_, conf })
        }
    }
}

/// Runs the recorded chain of `rec` (see [`plan`]), keeping the record up
/// to date before every call; the result carries the DNS of every mode.
pub fn add(
    ctx: &Ctx,
    rec: &mut Record,
    mappings: &[Value],
    bandwidth: Option<&Bandwidth>,
) -> Result<CniResult, CniError> {
    let store = &ctx.store;
    let scratch = rec.mode == Mode::Bridge;
    let mut call = rec
        .delegate
        .clone()
        .ok_or_else(|| CniError::internal("no delegate"))?;
    let result = ctx.delegates.add(&mut call, &mut |c: &Call| {
        rec.delegate = Some(c.clone());
        store
            .save(rec)
            .map_err(|e| io_err("save attachment record", e))?;
        if scratch {
            // flannel's scratch file, so the upstream plugin can DEL it too.
            let bytes =
                serde_json::to_vec(&c.conf).map_err(|e| CniError::internal(e.to_string()))?;
            store
                .save_flannel(&rec.container_id, &bytes)
                .map_err(|e| io_err("save delegate config", e))?;
        }
        Ok(())
    })?;
    let version = conf_version(&call.conf).to_string();
    let result = if mappings.is_empty() {
        result
    } else {
        let pm = flannel::portmap_conf(&ctx.conf, &version, mappings);
        let result = run_one(ctx, rec, pm, &result, |r| &mut r.portmap)?;
        // portmap flushes too (since 2021), but only after its own rules,
        // only when its conntrack call works, and not in every release or
        // fork on a node: the second pass is cheap (one dump) and finds
        // nothing then.
        let maps: Vec<_> = mappings
            .iter()
            .filter_map(crate::conf::parse_mapping)
            .collect();
        let ips: Vec<_> = result.ips.iter().map(|ip| ip.address.addr()).collect();
        crate::conntrack::flush_udp(&ctx.log, &maps, &ips);
        result
    };
    let mut result = match bandwidth {
        None => result,
        Some(bw) => {
            let conf = flannel::bandwidth_conf(&ctx.conf, &version, bw);
            run_one(ctx, rec, conf, &result, |r| &mut r.bandwidth)?
        }
    };
    // The bridge plugin put `delegate.dns` there already.
    result.dns = result_dns(&result.dns, &ctx.conf);
    Ok(result)
}

/// Runs one chained plugin (portmap, bandwidth) on the result so far,
/// keeping its call in the record field `slot` up to date first.
fn run_one(
    ctx: &Ctx,
    rec: &mut Record,
    mut conf: Value,
    prev: &CniResult,
    slot: fn(&mut Record) -> &mut Option<Call>,
) -> Result<CniResult, CniError> {
    let version = conf_version(&conf).to_string();
    conf["prevResult"] = prev.to_value(&version)?;
    let mut call = Call {
        type_: conf["type"].as_str().unwrap_or_default().to_string(),
        conf,
    };
    let store = &ctx.store;
    ctx.delegates.add(&mut call, &mut |c: &Call| {
        let recorded = Some(without_prev_result(c));
        if *slot(rec) == recorded {
            return Ok(());
        }
        *slot(rec) = recorded;
        store
            .save(rec)
            .map_err(|e| io_err("save attachment record", e))
    })
}

/// The portmap call for `mappings`, in the version of the recorded
/// delegate call (DEL with the runtime's mappings, or without a record).
pub fn portmap_call(ctx: &Ctx, rec: &Record, mappings: &[Value]) -> Call {
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

/// The delegate config ADD would build today, when it can be built.
pub fn rebuilt_call(ctx: &Ctx, mode: Mode) -> Option<Call> {
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

/// The delegate call STATUS is forwarded to in `mode` (flannel or bridge).
pub fn status_call(ctx: &Ctx, mode: Mode, env: &SubnetEnv) -> Call {
    match mode {
        Mode::Flannel => Call {
            type_: "flannel".into(),
            conf: flannel::flannel_conf(&ctx.conf),
        },
        _ => {
            let conf = flannel::bridge_delegate(&ctx.conf, env);
            let type_ = flannel::bridge_types(&ctx.conf).0;
            Call { type_, conf }
        }
    }
}
