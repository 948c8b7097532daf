//! Ghost attachments: recorded attachments whose pod can no longer exist,
//! because the node rebooted since (the record names an earlier kernel
//! boot id) or because every network namespace the ADD result names is
//! gone. Runtimes are supposed to DEL or GC them, but after a reboot many
//! do not (plugins#252, containerd/cri#948, cri-o#4727), and host-local
//! keeps their IPs forever: the node ends in "no IP addresses available in
//! range set".
//!
//! So ADD, when the range is exhausted, frees the IPs of ghosts and tries
//! once more ([`reclaim_ips`]). Only IP files are touched, under the IP
//! store's lock; records, scratch files and veths are left for DEL or GC,
//! which undo them completely. Safety (a live attachment never loses its
//! IP; what makes a ghost is the `ghostrule` crate's rule, which `netboot
//! doctor` shares):
//! - an IP is freed only when its file names an attachment netboot has a
//!   record of, on this network, and that record proves the pod gone;
//! - the record is read under the store lock, and every ADD saves its record
//!   before it allocates (under the same lock): if an ADD of the same
//!   attachment has started again, the record read is the new one, which
//!   is not a ghost (k8s#34373 asked exactly this of kubenet's GC);
//! - an attachment with port mappings is only reclaimed by the boot id:
//!   its DNAT rules may still exist in this boot and would send traffic to
//!   the next pod given its IP, so it is left for DEL or GC, which remove
//!   the rules too.

use crate::ctx::{ipam_err, Ctx};
use crate::flannel::bridge_types;
use crate::ipam;
use crate::record::Record;
use cni::error::{codes, CniError};
use std::net::IpAddr;
use std::path::Path;

/// host-local's (and netboot's native IPAM's) exhaustion message.
const EXHAUSTED: &str = "no IP addresses available in range set";

pub use ghostrule::{is_netns, Ghost, BOOT_ID_ENV};

/// This boot's id ([`ghostrule::boot_id`]); a bad [`BOOT_ID_ENV`] file is
/// an invalid environment.
pub fn boot_id() -> Result<Option<String>, CniError> {
    ghostrule::boot_id().map_err(|e| CniError::new(codes::INVALID_ENV, e.to_string()))
}

/// Whether `rec`'s attachment is a ghost, and why ([`ghostrule::reason`]
/// over the record's boot id and ADD result). `exists` tells whether a
/// path holds a network namespace ([`is_netns`]; a seam for unit tests).
pub fn reason(rec: &Record, boot: Option<&str>, exists: &dyn Fn(&Path) -> bool) -> Option<Ghost> {
    ghostrule::reason(rec.boot_id.as_deref(), rec.result.as_ref(), boot, exists)
}

fn has_port_mappings(rec: &Record) -> bool {
    rec.portmap.is_some()
        || rec
            .native
            .as_ref()
            .is_some_and(|n| !n.port_mappings.is_empty() || n.sweep_ports)
}

/// [`reason`], minus the ghosts that may only be reclaimed by GC or DEL.
fn reclaimable(rec: &Record, boot: Option<&str>) -> Option<Ghost> {
    match reason(rec, boot, &is_netns)? {
        Ghost::NetnsGone if has_port_mappings(rec) => None,
        g => Some(g),
    }
}

/// Whether an ADD failed because the range is exhausted.
pub fn is_exhaustion(e: &CniError) -> bool {
    e.msg.contains(EXHAUSTED)
}

/// Frees the IPs held by ghosts of this network in its host-local store,
/// under the store lock (see the module docs). Returns what it freed.
pub fn reclaim_ips(ctx: &Ctx, boot: Option<&str>) -> Result<Vec<IpAddr>, CniError> {
    let (_, ipam_type) = bridge_types(&ctx.conf);
    let dir = ipam::store_dir(&ctx.conf.ipam, &ctx.conf.net.name);
    if ipam_type != "host-local" || !dir.exists() {
        return Ok(Vec::new());
    }
    let store = ipam::Locked::open(&dir).map_err(ipam_err)?;
    let mut freed = Vec::new();
    for a in store.allocations().map_err(ipam_err)? {
        let Some(ifname) = a.ifname.as_deref() else {
            continue;
        };
        // The file's text becomes a record path: only valid names.
        if cni::args::validate_container_id(&a.container_id).is_err()
            || cni::args::validate_ifname(ifname).is_err()
        {
            continue;
        }
        let Ok(Some(rec)) = ctx.store.load(&a.container_id, ifname) else {
            continue;
        };
        if rec.network != ctx.conf.net.name {
            continue;
        }
        if let Some(why) = reclaimable(&rec, boot) {
            if store.remove(a.ip).map_err(ipam_err)? {
                ctx.log.info(&format!(
                    "range exhausted: freed {} of {}@{ifname} ({})",
                    a.ip,
                    a.container_id,
                    why.as_str()
                ));
                freed.push(a.ip);
            }
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf::Mode;
    use crate::record::NativeState;
    use serde_json::json;

    fn rec(boot: Option<&str>, sandbox: Option<&str>) -> Record {
        let mut r = Record::new("c1", "eth0", "cbr0", Mode::Bridge);
        r.result = sandbox
            .map(|s| json!({"interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": s}]}));
        r.boot_id = boot.map(str::to_string);
        r
    }

    /// The rule's cases are `ghostrule`'s tests; this checks that
    /// [`reason`] feeds it the record's boot id and ADD result.
    #[test]
    fn reason_reads_the_records_boot_id_and_add_result() {
        let all_exist = |_: &Path| true;
        let none_exist = |_: &Path| false;
        let r = rec(Some("boot-a"), Some("/run/netns/p1"));
        assert_eq!(
            reason(&r, Some("boot-b"), &all_exist),
            Some(Ghost::EarlierBoot)
        );
        assert_eq!(reason(&r, Some("boot-a"), &all_exist), None);
        assert_eq!(
            reason(&r, Some("boot-a"), &none_exist),
            Some(Ghost::NetnsGone)
        );
        // No result: the ADD may be running now.
        assert_eq!(reason(&rec(Some("b"), None), Some("b"), &none_exist), None);
    }

    #[test]
    fn port_mappings_keep_a_same_boot_ghost_for_gc() {
        let mut r = rec(Some("b"), Some("/run/netns/gone-for-sure-xyz"));
        r.native = Some(NativeState {
            conf: json!({}),
            bridge: "cni0".into(),
            host_veth: "nbv0".into(),
            ipam_dir: "/tmp".into(),
            port_mappings: vec![json!({"hostPort": 80, "containerPort": 80})],
            snat: true,
            sweep_ports: false,
            port_layout: crate::record::PortLayout::Maps,
            port_rules: Vec::new(),
            bandwidth: None,
            ifb: None,
        });
        assert_eq!(reclaimable(&r, Some("b")), None);
        assert_eq!(reclaimable(&r, Some("other")), Some(Ghost::EarlierBoot));
        r.native = None;
        assert_eq!(reclaimable(&r, Some("b")), Some(Ghost::NetnsGone));
    }

    #[test]
    fn exhaustion_is_recognized_in_both_ipams_words() {
        let ours = CniError::new(
            codes::TRY_AGAIN,
            "failed to allocate for range 0: no IP addresses available in range set: 10.2.1.2-10.2.1.14",
        );
        assert!(is_exhaustion(&ours));
        assert!(!is_exhaustion(&CniError::new(codes::IO, "disk full")));
    }
}
