//! The `hostports` check: hostPort DNAT left behind by pods that are gone,
//! in both layouts a node can hold:
//! - native mode's map elements in `inet netboot`, each owned by
//!   `<network>/<containerID>/<ifname>` (netkit `firewall::hostports`):
//!   stale when the owner is an attachment of this network with no record,
//!   or with a record of a pod that cannot exist any more ([`ghosts`]);
//! - upstream portmap's rules in `ip`/`ip6 cni_hostport`, commented with
//!   the bare container ID (portmap itself, or netboot before the maps):
//!   stale when every record of that container is a ghost's, or, when
//!   netboot-cni runs the network, when there is no record of it at all.
//!
//! Stale DNAT sends a host port's traffic to an address the next pod may
//! get (plugins#683). GC removes both kinds; so does DEL of the container.

use std::collections::BTreeMap;

use serde_json::Value;

use super::conflist::{main_plugin, records_dir, Loaded};
use super::ctx::Ctx;
use super::finding::Finding;
use super::ghosts;

const CHECK: &str = "hostports";
const FIX: &str = "run CNI GC with the live attachments (`podrun gc`, or the runtime's own GC): it removes stale host ports of either layout; for a single container, CNI DEL of its ID";

/// Why the attachment `key` (`cid@ifname`) is not live, if it is not.
fn gone(records: &BTreeMap<String, Value>, key: &str, boot: Option<&str>) -> Option<&'static str> {
    match records.get(key) {
        None => Some("no record of this attachment"),
        Some(rec) => ghosts::reason(rec, boot),
    }
}

pub fn check(_ctx: &Ctx, loaded: &Loaded) -> Finding {
    let Loaded::Ok(_, list) = loaded else {
        return Finding::skipped(CHECK, "no usable conflist: the record directory is unknown");
    };
    let Some(main) = main_plugin(list) else {
        return Finding::skipped(CHECK, "the conflist is not flannel's network");
    };
    let ours = main["type"] == "netboot-cni";
    let records: BTreeMap<String, Value> =
        ghosts::records(&records_dir(main)).into_iter().collect();
    let boot = ghosts::boot_id().ok().flatten();
    let elements = match netkit::firewall::list_hostport_elements() {
        Ok(e) => e,
        Err(e) if e.errno() == Some(libc::EPERM) => {
            return Finding::skipped(CHECK, "reading nftables needs CAP_NET_ADMIN (run as root)")
        }
        Err(e) => {
            return Finding::problem(
                CHECK,
                format!("cannot list hostPort maps: {e}"),
                "run as root on the node",
            )
        }
    };
    let mut stale: Vec<String> = Vec::new();
    let mut ours_count = 0;
    for e in &elements {
        let Some((net, cid, ifname)) = e
            .owner
            .as_deref()
            .and_then(netkit::firewall::parse_hostport_owner)
        else {
            continue;
        };
        if net != list.name {
            continue;
        }
        ours_count += 1;
        if let Some(why) = gone(&records, &format!("{cid}@{ifname}"), boot.as_deref()) {
            stale.push(format!("`{}` of {cid}@{ifname} ({why})", e.what));
        }
    }
    let owners = match netkit::firewall::list_port_mapping_owners() {
        Ok(o) => o,
        Err(e) => {
            return Finding::problem(
                CHECK,
                format!("cannot list table cni_hostport: {e}"),
                "run as root on the node",
            )
        }
    };
    for cid in &owners {
        let prefix = format!("{cid}@");
        let mine: Vec<&Value> = records
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, v)| v)
            .collect();
        let why = match mine.as_slice() {
            [] if ours => Some("no record of this container"),
            [] => None,
            recs => recs
                .iter()
                .map(|r| ghosts::reason(r, boot.as_deref()))
                .collect::<Option<Vec<_>>>()
                .and_then(|w| w.first().copied()),
        };
        if let Some(why) = why {
            stale.push(format!(
                "rules of {cid} in table ip/ip6 cni_hostport ({why})"
            ));
        }
    }
    if stale.is_empty() {
        return Finding::ok(
            CHECK,
            format!(
                "{ours_count} hostPort map element(s) of {} in table inet netboot and {} container(s) with rules in cni_hostport, none of a pod that is gone",
                list.name,
                owners.len()
            ),
        );
    }
    let n = stale.len();
    let more = match n {
        n if n > 8 => format!(" and {} more", n - 8),
        _ => String::new(),
    };
    stale.truncate(8);
    Finding::problem(
        CHECK,
        format!(
            "{n} hostPort mapping(s) of pods that are gone still DNAT traffic: {}{more}",
            stale.join(", ")
        ),
        FIX,
    )
}
