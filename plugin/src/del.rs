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

use crate::add::load_subnet_env;
use crate::conf::Mode;
use crate::delegate::Delegator;
use crate::ipam::TornScope;
use crate::record::{Call, Record};
use crate::{flannel, io_err, mode, Ctx};
use cni::args::Command;
use cni::error::{codes, CniError};
use serde_json::Value;

pub fn del(ctx: &Ctx) -> Result<(), CniError> {
    let (cid, ifname) = (&ctx.args.container_id, &ctx.args.ifname);
    stop_orphans(ctx, cid, ifname);
    let rec = match ctx.store.load(cid, ifname) {
        Ok(r) => r,
        Err(e) => {
            ctx.log.error(&format!("ignoring unreadable record: {e}"));
            None
        }
    };
    let rec = match rec {
        Some(mut rec) => {
            // The runtime's current mappings win if it passed any; otherwise
            // the recorded ones are used (containerd passes them, others may not).
            let mappings = runtime_mappings(ctx);
            if !mappings.is_empty() {
                match rec.native.as_mut() {
                    // Native mode programs the mappings itself: no portmap
                    // binary to call (and none may be on CNI_PATH).
                    Some(state) => state.port_mappings = mappings,
                    None => rec.portmap = Some(portmap_call(ctx, &rec, &mappings)),
                }
            }
            rec
        }
        None => match reconstruct(ctx)? {
            Some(rec) => rec,
            None => {
                ctx.log
                    .info("nothing recorded for this attachment; nothing to do");
                return Ok(());
            }
        },
    };
    undo(ctx, &ctx.delegates, &rec)
}

/// The mappings the runtime passed, unless portmap would refuse them: ADD
/// refused those before touching anything, and replaying them would make
/// portmap's DEL (hence this DEL) fail forever.
fn runtime_mappings(ctx: &Ctx) -> Vec<Value> {
    match ctx.conf.check_port_mappings() {
        Ok(()) => ctx.conf.port_mappings(),
        Err(e) => {
            ctx.log
                .info(&format!("ignoring the runtime's port mappings: {}", e.msg));
            Vec::new()
        }
    }
}

fn portmap_call(ctx: &Ctx, rec: &Record, mappings: &[Value]) -> Call {
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
fn reconstruct(ctx: &Ctx) -> Result<Option<Record>, CniError> {
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
fn scratch_call(ctx: &Ctx, bytes: &[u8]) -> Option<Call> {
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
    let prev = rec.result.as_ref();
    if let Some(bw) = &rec.bandwidth {
        match run_del(d, bw, prev) {
            // The binary is gone (the node moved to native mode): its only
            // state off the veth is the ifb, removed here by the same name.
            Err(e) if e.code == codes::NOT_AVAILABLE => {
                ctx.log
                    .info("bandwidth is no longer on CNI_PATH; removing its ifb directly");
                let ifb = netkit::ifb_name(&rec.network, &rec.container_id);
                let gone = netkit::Netlink::open().and_then(|mut nl| nl.del_link_by_name(&ifb));
                if let Err(le) = gone {
                    errors.push(e.context(format!("bandwidth DEL ({le})")));
                }
            }
            Err(e) => errors.push(e.context("bandwidth DEL")),
            Ok(()) => {}
        }
    }
    if let Some(pm) = &rec.portmap {
        match run_del(d, pm, prev) {
            // The portmap binary is gone (the node moved to native mode):
            // remove its iptables chains ourselves, by the same names.
            Err(e) if e.code == codes::NOT_AVAILABLE => {
                ctx.log
                    .info("portmap is no longer on CNI_PATH; removing its iptables rules directly");
                if let Err(le) =
                    netkit::firewall::cleanup_legacy_portmap(&rec.network, &rec.container_id)
                {
                    errors.push(e.context(format!("portmap DEL ({le})")));
                }
            }
            Err(e) => errors.push(e.context("portmap DEL")),
            Ok(()) => {}
        }
    }
    if let Some(call) = &rec.delegate {
        let outcome = if call.type_ == "flannel" {
            // Read before flannel's DEL consumes it: flannel removes its
            // scratch file even when its delegate's DEL fails (flannel.go
            // doCmdDel: the deferred cleanup only sees the JSON error), so
            // a retried flannel DEL finds nothing and "succeeds".
            let scratch = ctx.store.load_flannel(&rec.container_id).ok().flatten();
            let outcome = flannel_del(ctx, d, call, prev, (&rec.container_id, scratch.is_some()));
            finish_flannel_del(ctx, d, &rec.container_id, scratch, outcome)
        } else {
            run_del_retried(ctx, d, call, prev)
        };
        match outcome {
            Err(e) => errors.push(e.context(format!("{} DEL", call.type_))),
            Ok(()) => errors.extend(after_delegate_del(ctx, rec, call)),
        }
    }
    if let Some(state) = &rec.native {
        errors.extend(crate::native::undo(
            ctx,
            &rec.container_id,
            &rec.ifname,
            state,
            rec.result.as_ref(),
        ));
    }
    if let Some(first) = errors.first() {
        let all: Vec<String> = errors.iter().map(|e| e.msg.clone()).collect();
        ctx.log
            .error(&format!("DEL incomplete: {}", all.join("; ")));
        return Err(CniError::new(first.code, first.msg.clone()).with_details(all.join("; ")));
    }
    // flannel's scratch file is per container, not per interface: it goes
    // with the container's last attachment. Bridge and native mode write
    // it; in flannel mode it is the flannel plugin's.
    let shared = ctx
        .store
        .ifnames_of(&rec.container_id)
        .map(|ifs| ifs.iter().any(|i| *i != rec.ifname))
        .unwrap_or(false);
    if rec.mode != Mode::Flannel && !shared {
        ctx.store
            .remove_flannel(&rec.container_id)
            .map_err(|e| io_err("remove delegate config", e))?;
    }
    ctx.store
        .remove(&rec.container_id, &rec.ifname)
        .map_err(|e| io_err("remove attachment record", e))?;
    ctx.log.info("detached");
    Ok(())
}

/// What the reference plugins leave after a successful DEL: bridge's
/// masquerade chain when its DEL no longer found the pod interface (see
/// `netkit::firewall::cleanup_bridge_masquerade`), and host-local's torn
/// IP files, which it matches by content and so never releases.
fn after_delegate_del(ctx: &Ctx, rec: &Record, call: &Call) -> Vec<CniError> {
    let mut errors = Vec::new();
    if masquerades_per_container(call) {
        if let Err(e) = netkit::firewall::cleanup_bridge_masquerade(&rec.network, &rec.container_id)
        {
            errors.push(CniError::internal(format!(
                "remove the bridge masquerade chain: {e}"
            )));
        }
    }
    let ipam = flannel::bridge_view(&call.conf)
        .get("ipam")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let host_local = ipam
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(|t| t == "host-local");
    if matches!(call.type_.as_str(), "bridge" | "flannel") && host_local {
        let dir = crate::ipam::store_dir(&ipam, &rec.network);
        let ips = rec.result_ips();
        let scope = match (rec.result.is_some(), ctx.store.saved_at(rec)) {
            (true, _) => Some(TornScope::At(&ips)),
            (false, Some(since)) => Some(TornScope::WrittenSince(since)),
            // Reconstructed without a record: nothing tells which is ours.
            (false, None) => None,
        };
        if let Some(scope) = scope {
            let (cid, ifname) = (&rec.container_id, &rec.ifname);
            if let Err(e) = crate::native::release_torn(ctx, &dir, cid, ifname, scope) {
                errors.push(e);
            }
        }
    }
    errors
}

/// Completes what the flannel plugin's DEL left undone, from its scratch
/// file `<dataDir>/<containerID>` as it was before that DEL (`scratch`):
/// - flannel's DEL failed: replay the scratch file's delegate ourselves,
///   with the version negotiation flannel lacks. flannel has removed the
///   file by then, so its own retry would be a no-op. The crash trials
///   found the case: an ADD at a version flannel's bridge refuses, killed
///   after flannel wrote its scratch file and before netboot retried at a
///   lower version;
/// - flannel's DEL succeeded but the scratch file was torn (power loss,
///   cni-plugin#43): flannel skipped its delegate and kept the file
///   (flannel#1662), so the bridge + host-local config it would have
///   rendered is rebuilt from subnet.env and DELed here.
fn finish_flannel_del(
    ctx: &Ctx,
    d: &Delegator,
    container_id: &str,
    scratch: Option<Vec<u8>>,
    outcome: Result<(), CniError>,
) -> Result<(), CniError> {
    let Some(bytes) = scratch else {
        return outcome;
    };
    let call = match (scratch_call(ctx, &bytes), &outcome) {
        (Some(call), Err(e)) if call.type_ != "flannel" => {
            ctx.log.info(&format!(
                "flannel DEL failed ({}); replaying its {} call from the scratch file",
                e.msg, call.type_
            ));
            call
        }
        (None, _) => {
            let Ok(env) = load_subnet_env(ctx) else {
                return outcome;
            };
            let conf = flannel::bridge_delegate(&ctx.conf, &env);
            let type_ = conf["type"].as_str().unwrap_or("bridge").to_string();
            ctx.log.info(&format!(
                "flannel's scratch file is damaged; DEL of the {type_} config it would have rendered"
            ));
            Call { type_, conf }
        }
        _ => return outcome,
    };
    run_del_retried(ctx, d, &call, None)?;
    ctx.store
        .remove_flannel(container_id)
        .map_err(|e| io_err("remove delegate config", e))
}

/// DEL through the upstream flannel plugin. Its refusal of the version is
/// negotiated (as [`run_del`] does) only while its scratch file is still
/// there: when its delegate refused the version instead, flannel has
/// already consumed the file, a second flannel DEL would be a no-op that
/// "succeeds", and [`finish_flannel_del`] must replay the file instead.
fn flannel_del(
    ctx: &Ctx,
    d: &Delegator,
    call: &Call,
    prev: Option<&Value>,
    (container_id, had_scratch): (&str, bool),
) -> Result<(), CniError> {
    let call = match prev {
        Some(p) => crate::add::with_prev_result(call, p).unwrap_or_else(|_| call.clone()),
        None => call.clone(),
    };
    match d.run_once(Command::Del, &call) {
        Err(e) if e.code == codes::INCOMPATIBLE_VERSION => {
            let consumed =
                had_scratch && !matches!(ctx.store.load_flannel(container_id), Ok(Some(_)));
            if consumed {
                Err(e)
            } else {
                d.run(Command::Del, &call)
            }
        }
        other => other,
    }
}

/// [`run_del`], once more when it fails. The reference bridge's DEL of an
/// ADD that was killed after addressing the pod and before its masquerade
/// chain existed fails on iptables-nft ("Chain ... does not exist":
/// go-iptables does not take that exit status 2 for "not found"), having
/// already removed the interface; its second DEL succeeds. A runtime would
/// retry much later, so retry once now (DEL is idempotent). Not for a
/// missing binary or a timeout.
fn run_del_retried(
    ctx: &Ctx,
    d: &Delegator,
    call: &Call,
    prev: Option<&Value>,
) -> Result<(), CniError> {
    match run_del(d, call, prev) {
        Err(e) if e.code != codes::NOT_AVAILABLE && e.code != codes::TRY_AGAIN => {
            ctx.log.info(&format!(
                "{} DEL failed ({}); retrying once",
                call.type_, e.msg
            ));
            run_del(d, call, prev)
        }
        other => other,
    }
}

/// Whether a delegate call may have left the reference bridge's
/// per-container masquerade chain: bridge with `ipMasq`, or the flannel
/// plugin, which renders bridge with `ipMasq = !FLANNEL_IPMASQ` into a
/// config netboot does not see.
fn masquerades_per_container(call: &Call) -> bool {
    match call.type_.as_str() {
        "bridge" => flannel::bridge_view(&call.conf)["ipMasq"] == Value::Bool(true),
        "flannel" => true,
        _ => false,
    }
}

/// DEL of one recorded call. prevResult is passed when known (SPEC.md: DEL
/// gets the final ADD result), converted to the call's version.
fn run_del(d: &Delegator, call: &Call, prev: Option<&Value>) -> Result<(), CniError> {
    let call = match prev {
        Some(p) => crate::add::with_prev_result(call, p).unwrap_or_else(|_| call.clone()),
        None => call.clone(),
    };
    // A delegate binary that vanished is reported (code 50), not skipped:
    // its state is still on the node and the operator must put it back.
    d.run(Command::Del, &call)
}
