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

use crate::conf::Mode;
use crate::ctx::{io_err, load_subnet_env, result_dns, Ctx};
use crate::delegate::{conf_version, without_prev_result};
use crate::record::{Call, Record};
use crate::{del, flannel, ghost, mode, native};
use cni::error::{codes, CniError};
use cni::result::CniResult;
use serde_json::Value;

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
    let mode = mode::resolve(&ctx.conf, &ctx.delegates)?;
    let mappings = ctx.conf.port_mappings();
    let bandwidth = ctx.conf.bandwidth()?;
    let mut rec = Record {
        container_id: ctx.args.container_id.clone(),
        ifname: ctx.args.ifname.clone(),
        network: ctx.conf.net.name.clone(),
        mode,
        delegate: None,
        portmap: None,
        bandwidth: None,
        result: None,
        native: None,
        boot_id: boot.map(str::to_string),
    };
    if mode == Mode::Native {
        let mut state = native::plan(ctx)?.0;
        native::bandwidth::plan(ctx, &mut state, bandwidth);
        rec.native = Some(state);
    } else {
        rec.delegate = Some(delegate_call(ctx, mode)?);
        if !mappings.is_empty() {
            // Fail before touching anything if the chain cannot complete.
            ctx.delegates.find("portmap")?;
            // Recorded up front with the delegate (one durable write, not
            // two): DEL of a portmap that never ran is a no-op.
            rec.portmap = Some(Call {
                type_: "portmap".into(),
                conf: flannel::portmap_conf(&ctx.conf, &ctx.conf.net.cni_version, &mappings),
            });
        }
        if let Some(bw) = &bandwidth {
            // Same: fail before touching anything, record with the rest.
            ctx.delegates.find("bandwidth")?;
            rec.bandwidth = Some(Call {
                type_: "bandwidth".into(),
                conf: flannel::bandwidth_conf(&ctx.conf, &ctx.conf.net.cni_version, bw),
            });
        }
    }
    clear_stale(ctx, boot)?;
    ctx.log.info(&format!(
        "mode {}: delegating to {}",
        mode.as_str(),
        type_of(&rec)
    ));
    let outcome = if mode == Mode::Native {
        ctx.store
            .save(&rec)
            .map_err(|e| io_err("save attachment record", e))
            .and_then(|_| save_native_scratch(ctx))
            .and_then(|_| native::add(ctx, &mut rec))
    } else {
        run_chain(ctx, &mut rec, &mappings, bandwidth.as_ref()).map(|mut r| {
            // The bridge plugin put `delegate.dns` there already.
            r.dns = result_dns(&r.dns, &ctx.conf);
            r
        })
    };
    match outcome {
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
            if let Err(rb) = del::undo(ctx, &ctx.delegates, &rec) {
                ctx.log.error(&format!("rollback incomplete: {rb}"));
                return Err(e.with_details(format!("rollback incomplete: {}", rb.msg)));
            }
            Err(e)
        }
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

fn type_of(rec: &Record) -> &str {
    rec.delegate
        .as_ref()
        .map(|c| c.type_.as_str())
        .unwrap_or("netlink (in-process)")
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

/// A record without a result is a previous ADD that never finished (killed
/// or failed without rollback). Nobody was told it succeeded, so undo it
/// before starting over. A finished attachment is never overwritten, unless
/// it is a ghost (made in an earlier boot, or its netns is gone): a runtime
/// re-creating a sandbox under the same ID after a reboot gets a clean ADD
/// instead of "already attached" (the old one is undone as DEL would).
fn clear_stale(ctx: &Ctx, boot: Option<&str>) -> Result<(), CniError> {
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    del::stop_orphans(ctx, cid, ifname);
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
            del::undo(ctx, &ctx.delegates, &rec)
        }
        Ok(Some(rec)) => {
            ctx.log.info("undoing an unfinished earlier ADD");
            del::undo(ctx, &ctx.delegates, &rec)
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

fn run_chain(
    ctx: &Ctx,
    rec: &mut Record,
    mappings: &[Value],
    bandwidth: Option<&crate::bandwidth::Bandwidth>,
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
        let result = chain(ctx, rec, pm, &result, |r| &mut r.portmap)?;
        // portmap flushes too (since 2021), but only after its own rules,
        // only when its conntrack call works, and not in every release or
        // fork on a node: the second pass is cheap (one dump) and finds
        // nothing then.
        let maps: Vec<_> = mappings
            .iter()
            .filter_map(crate::native::parse_mapping)
            .collect();
        let ips: Vec<_> = result.ips.iter().map(|ip| ip.address.addr()).collect();
        crate::conntrack::flush_udp(&ctx.log, &maps, &ips);
        result
    };
    match bandwidth {
        None => Ok(result),
        Some(bw) => {
            let conf = flannel::bandwidth_conf(&ctx.conf, &version, bw);
            chain(ctx, rec, conf, &result, |r| &mut r.bandwidth)
        }
    }
}

/// Runs one chained plugin (portmap, bandwidth) on the result so far,
/// keeping its call in the record field `slot` up to date first.
fn chain(
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
