//! Native mode's side of the host-local compatible IP store: the pool an
//! attachment allocates from, and the release of torn IP files (shared by
//! native and delegated DEL).

use super::conf::NativeConf;
use super::NativeState;
use crate::ctx::ipam_err;
use crate::ipam::{Pool, RangeSpec};
use cni::error::CniError;

pub fn pool(state: &NativeState, nconf: &NativeConf) -> Result<Pool, CniError> {
    let ranges = nconf
        .ranges
        .iter()
        .map(|r| RangeSpec {
            subnet: r.subnet,
            range_start: r.range_start,
            range_end: r.range_end,
            gateway: r.gateway,
        })
        .collect();
    Pool::new(state.ipam_dir.clone(), ranges).map_err(ipam_err)
}
