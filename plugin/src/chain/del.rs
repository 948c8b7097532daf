//! DEL of a delegated attachment: its chained plugins and delegate, in
//! reverse order, and what the reference plugins leave behind.

use crate::ctx::{io_err, load_subnet_env, Ctx};
use crate::delegate::Delegator;
use crate::flannel;
use crate::ipam::TornScope;
use crate::record::{Call, Record};
use cni::args::Command;
use cni::error::{codes, CniError};
use serde_json::Value;

/// Undoes the delegated part of a (possibly partial) attachment: bandwidth,
/// portmap, then the delegate. Every step is attempted; failures are added
/// to `errors`.
pub fn undo(ctx: &Ctx, d: &Delegator, rec: &Record, errors: &mut Vec<CniError>) {
    let prev = rec.result.as_ref();
    if let Some(bw) = &rec.bandwidth {
        match run_del(d, bw, prev) {
            // The binary is gone (the node moved to native mode): its only
            // state off the veth is the ifb, removed here by the same name.
            Err(e) if e.code == codes::NOT_AVAILABLE => {
                ctx.log
                    .info("bandwidth is no longer on CNI_PATH; removing its ifb directly");
                let ifb = netkit::ifb_name(&rec.network, &rec.container_id);
                let gone = netkit::Netlink::open().and_then(|mut nl| nl.link().del_by_name(&ifb));
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
            // remove what either of its backends made ourselves, by the
            // same names: its iptables chains, its nftables rules.
            Err(e) if e.code == codes::NOT_AVAILABLE => {
                ctx.log.info(
                    "portmap is no longer on CNI_PATH; removing its iptables and nftables rules directly",
                );
                let (net, cid) = (&rec.network, &rec.container_id);
                let removed = netkit::firewall::cleanup_legacy_portmap(net, cid)
                    .and_then(|()| netkit::firewall::del_port_mappings(net, cid));
                if let Err(le) = removed {
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
            if let Err(e) = crate::torn::release_torn(ctx, &dir, cid, ifname, scope) {
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
    let call = match (super::scratch::scratch_call(ctx, &bytes), &outcome) {
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
        Some(p) => crate::delegate::with_prev_result(call, p).unwrap_or_else(|_| call.clone()),
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
        Some(p) => crate::delegate::with_prev_result(call, p).unwrap_or_else(|_| call.clone()),
        None => call.clone(),
    };
    // A delegate binary that vanished is reported (code 50), not skipped:
    // its state is still on the node and the operator must put it back.
    d.run(Command::Del, &call)
}
