//! GC (CNI 1.1.0): release everything that belongs to attachments the
//! runtime no longer has (`cni.dev/valid-attachments`). SPEC.md "GC": the
//! netns may be assumed gone, errors do not stop the sweep, GC is forwarded
//! to delegates, and nothing is printed on success.
//!
//! Layers swept, newest knowledge first:
//! 1. netboot's attachment records: each stale one is undone exactly as
//!    DEL would, in the layout its record names (delegate DEL with the
//!    recorded config, portmap included; native hostPorts as map elements
//!    or, for older records, portmap's rules);
//! 2. flannel scratch files with no record (ADDs by the upstream plugin);
//! 3. native mode's hostPort map elements owned by an attachment of this
//!    network that is not valid, record or not (their owner comment names
//!    network, container and interface, so other networks' are never
//!    touched);
//! 4. the host-local store itself, so IPs leaked by anyone are reclaimed
//!    (plugins#252), and orphan host veths.

use crate::ctx::Ctx;
use crate::delegate::{set_version, Target};
use crate::flannel::bridge_types;
use crate::record::{Call, Record};
use crate::{attachment, ipam};
use cni::args::Command;
use cni::conf::valid_attachments;
use cni::error::{codes, CniError};
use serde_json::Value;
use std::collections::HashSet;

pub fn gc(ctx: &Ctx) -> Result<(), CniError> {
    let Some(valid) = valid_attachments(&ctx.conf.net)? else {
        // Without the list nothing can be proven stale; do no harm.
        ctx.log
            .info("GC without cni.dev/valid-attachments: nothing to reclaim");
        return Ok(());
    };
    let mut errors: Vec<String> = Vec::new();
    let valid_pairs: HashSet<(&str, &str)> = valid
        .iter()
        .map(|(c, i)| (c.as_str(), i.as_str()))
        .collect();
    let valid_ids: HashSet<&str> = valid.iter().map(|(c, _)| c.as_str()).collect();
    let mut seen_ids: HashSet<String> = HashSet::new();
    sweep_records(ctx, &valid_pairs, &mut seen_ids, &mut errors);
    sweep_scratch(ctx, &valid_ids, &seen_ids, &mut errors);
    sweep_hostports(ctx, &valid_pairs, &mut errors);
    sweep_ipam(ctx, &valid, &valid_pairs, &mut errors);
    sweep_veths(ctx, &valid, &mut errors);
    if let Err(e) = ctx.store.remove_dead_temps() {
        errors.push(format!("remove temp files of killed writers: {e}"));
    }
    if let Err(e) = ctx.store.remove_orphan_marks() {
        errors.push(format!(
            "remove sibling marks of containers without records: {e}"
        ));
    }
    forward(ctx, &mut errors);
    if errors.is_empty() {
        return Ok(());
    }
    Err(
        CniError::new(codes::INTERNAL, format!("GC incomplete: {}", errors[0]))
            .with_details(errors.join("; ")),
    )
}

fn sweep_records(
    ctx: &Ctx,
    valid: &HashSet<(&str, &str)>,
    seen_ids: &mut HashSet<String>,
    errors: &mut Vec<String>,
) {
    let list = match ctx.store.list() {
        Ok(l) => l,
        Err(e) => return errors.push(format!("list records: {e}")),
    };
    for (cid, ifname, rec) in list {
        seen_ids.insert(cid.clone());
        if valid.contains(&(cid.as_str(), ifname.as_str())) {
            continue;
        }
        attachment::stop_orphans(ctx, &cid, &ifname);
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                // A torn record cannot be replayed: undo what DEL would
                // without it (flannel's scratch file, or the deterministic
                // native names, or today's config), then drop it.
                ctx.log
                    .error(&format!("replacing unreadable record {cid}@{ifname}: {e}"));
                match attachment::reconstruct_for(ctx, &cid, &ifname) {
                    Ok(Some(r)) => r,
                    _ => {
                        let _ = ctx.store.remove(&cid, &ifname);
                        continue;
                    }
                }
            }
        };
        if let Err(e) = release(ctx, &rec) {
            errors.push(format!("{cid}@{ifname}: {}", e.msg));
        }
    }
}

fn release(ctx: &Ctx, rec: &Record) -> Result<(), CniError> {
    let target = Target {
        container_id: rec.container_id.clone(),
        netns: String::new(),
        ifname: rec.ifname.clone(),
    };
    ctx.log.info(&format!(
        "releasing stale attachment {}@{}",
        rec.container_id, rec.ifname
    ));
    attachment::undo(ctx, &ctx.delegates.for_target(&target), rec)
}

fn sweep_scratch(
    ctx: &Ctx,
    valid_ids: &HashSet<&str>,
    seen: &HashSet<String>,
    errors: &mut Vec<String>,
) {
    let ids = match ctx.store.list_flannel() {
        Ok(ids) => ids,
        Err(e) => return errors.push(format!("list delegate configs: {e}")),
    };
    for cid in ids
        .into_iter()
        .filter(|c| !valid_ids.contains(c.as_str()) && !seen.contains(c))
    {
        let conf = ctx
            .store
            .load_flannel(&cid)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        let Some(type_) = conf
            .as_ref()
            .and_then(Value::as_object)
            .and_then(|c| cni::gojson::field_of(c, "type"))
            .and_then(Value::as_str)
        else {
            let _ = ctx.store.remove_flannel(&cid);
            continue;
        };
        if crate::flannel::is_own_type(&ctx.conf, type_) {
            // Native mode's scratch file whose record is gone: undo by the
            // deterministic names, as DEL without a record does.
            match attachment::reconstruct_for(ctx, &cid, "eth0") {
                Ok(Some(rec)) => {
                    if let Err(e) = release(ctx, &rec) {
                        errors.push(format!("{cid}: {}", e.msg));
                    }
                }
                _ => {
                    let _ = ctx.store.remove_flannel(&cid);
                }
            }
            continue;
        }
        // flannel's scratch file does not know the ifname; runtimes use eth0.
        let mut rec = Record::new(&cid, "eth0", &ctx.conf.net.name, crate::conf::Mode::Bridge);
        rec.delegate = Some(Call {
            type_: type_.to_string(),
            conf: conf.clone().unwrap_or_default(),
        });
        if let Err(e) = release(ctx, &rec) {
            errors.push(format!("{cid}: {}", e.msg));
        }
    }
}

/// Map elements of native hostPorts whose owner is an attachment of this
/// network that is not valid (one listing of the maps).
fn sweep_hostports(ctx: &Ctx, valid: &HashSet<(&str, &str)>, errors: &mut Vec<String>) {
    let net = ctx.conf.net.name.as_str();
    let stale = |owner: &str| {
        netkit::firewall::parse_hostport_owner(owner)
            .is_some_and(|(n, c, i)| n == net && !valid.contains(&(c, i)))
    };
    // Without nf_tables in the kernel nothing of ours can be there.
    let no_nftables = [nix::libc::EINVAL, nix::libc::EPROTONOSUPPORT].map(Some);
    match netkit::firewall::sweep_hostports(stale) {
        Ok(gone) if !gone.is_empty() => {
            let what: Vec<String> = gone
                .iter()
                .map(|e| format!("{} ({})", e.what, e.owner.as_deref().unwrap_or("")))
                .collect();
            ctx.log.info(&format!(
                "removed hostPort map elements of gone attachments: {}",
                what.join(", ")
            ));
        }
        Ok(_) => {}
        Err(e) if no_nftables.contains(&e.errno()) => {}
        Err(e) => errors.push(format!("sweep hostPort map elements: {e}")),
    }
}

fn sweep_ipam(
    ctx: &Ctx,
    valid: &[(String, String)],
    valid_pairs: &HashSet<(&str, &str)>,
    errors: &mut Vec<String>,
) {
    let (_, ipam_type) = bridge_types(&ctx.conf);
    if ipam_type != "host-local" {
        return;
    }
    let dir = ipam::store_dir(&ctx.conf.ipam, &ctx.conf.net.name);
    if !dir.exists() {
        return;
    }
    // What the valid attachments' records say they hold: never released,
    // and repaired when torn (see ipam::store).
    let claims = match ctx.store.claims_of(valid_pairs) {
        Ok(c) => c,
        Err(e) => return errors.push(format!("read records for the IPAM sweep: {e}")),
    };
    match ipam::Locked::open(&dir).and_then(|s| s.release_invalid(valid, &claims)) {
        Ok(ips) if !ips.is_empty() => ctx.log.info(&format!("released leaked IPs {ips:?}")),
        Ok(_) => {}
        Err(e) => errors.push(format!("IPAM store {}: {e}", dir.display())),
    }
}

/// netboot's own host veths on the bridge with no valid attachment. Only
/// `nbv…` devices are considered: the reference bridge plugin's veths are
/// not ours to remove.
fn sweep_veths(ctx: &Ctx, valid: &[(String, String)], errors: &mut Vec<String>) {
    // The user's delegate map, as the bridge plugin (or native mode) reads it.
    let delegate = crate::flannel::bridge_view(&Value::Object(ctx.conf.delegate.clone()));
    let bridge = delegate["bridge"]
        .as_str()
        .unwrap_or(crate::native::conf::DEFAULT_BRIDGE);
    match crate::native::orphan_veths(bridge, valid) {
        Ok(names) if !names.is_empty() => {
            ctx.log
                .info(&format!("removing orphan host veths {names:?}"));
            errors.extend(
                crate::native::delete_links(&names)
                    .into_iter()
                    .map(|e| e.msg),
            );
        }
        Ok(_) => {}
        Err(e) => errors.push(e.msg),
    }
}

/// Forwards GC to delegates that know the command (CNI 1.1.0).
fn forward(ctx: &Ctx, errors: &mut Vec<String>) {
    let (delegate, ipam) = bridge_types(&ctx.conf);
    for plugin in ["flannel", delegate.as_str(), ipam.as_str(), "portmap"] {
        if !ctx.delegates.available(plugin) || !ctx.delegates.speaks_1_1(plugin) {
            continue;
        }
        let mut conf = ctx.conf.net.to_value();
        if let Value::Object(m) = &mut conf {
            m.insert("type".into(), Value::String(plugin.to_string()));
        }
        if let Err(e) = set_version(&mut conf, "1.1.0") {
            errors.push(e.msg);
            continue;
        }
        let call = Call {
            type_: plugin.to_string(),
            conf,
        };
        if let Err(e) = ctx.delegates.run(Command::Gc, &call) {
            errors.push(format!("{plugin} GC: {}", e.msg));
        }
    }
}
