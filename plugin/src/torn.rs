//! Torn host-local IP files (power loss, a killed host-local) of one
//! attachment: released by native and delegated DEL alike.

use crate::ctx::{ipam_err, Ctx};
use crate::ipam;
use cni::error::CniError;
use std::net::IpAddr;
use std::path::Path;

/// Frees the torn IP files (power loss, a killed host-local) in `scope`
/// (the IPs the attachment's record names, or, for an ADD that never
/// finished, the files written since its record), unless another record
/// claims them (see `ipam::store`). Shared by native and delegated DEL.
pub fn release_torn(
    ctx: &Ctx,
    store_dir: &Path,
    container_id: &str,
    ifname: &str,
    scope: ipam::TornScope<'_>,
) -> Result<(), CniError> {
    if matches!(scope, ipam::TornScope::At([])) || !store_dir.exists() {
        return Ok(());
    }
    // Listed on the first damaged file only; unknown means "someone
    // else's": keep it.
    let mut others: Option<Option<std::collections::HashSet<IpAddr>>> = None;
    let mut claimed = |ip: IpAddr| {
        others
            .get_or_insert_with(|| ctx.store.claimed_except(container_id, ifname).ok())
            .as_ref()
            .is_none_or(|set| set.contains(&ip))
    };
    let freed = ipam::Locked::open(store_dir)
        .and_then(|s| s.release_torn(container_id, ifname, scope, &mut claimed))
        .map_err(|e| ipam_err(e).context("release torn IP files"))?;
    if !freed.is_empty() {
        ctx.log
            .info(&format!("released damaged IP files {freed:?}"));
    }
    Ok(())
}
