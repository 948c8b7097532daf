//! The owner comment of a hostPort element, and the sets elements live in.

use super::super::mapping::PortmapSpec;
use super::super::nft::check_ident;
use super::super::nftnl::{SetRef, NFPROTO_INET};
use crate::error::Result;

/// The comment that marks `network`'s attachment `container_id`/`ifname`
/// as the owner of an element.
pub fn hostport_owner(network: &str, container_id: &str, ifname: &str) -> String {
    format!("{network}/{container_id}/{ifname}")
}

/// `(network, containerID, ifname)` of an owner comment, if it is one.
pub fn parse_hostport_owner(owner: &str) -> Option<(&str, &str, &str)> {
    let mut it = owner.split('/');
    let (n, c, i) = (it.next()?, it.next()?, it.next()?);
    let ok = |s: &str| check_ident("", "", s).is_ok();
    (it.next().is_none() && ok(n) && ok(c) && ok(i)).then_some((n, c, i))
}

/// The validated owner comment of `spec`'s attachment.
pub(super) fn owner_of(spec: &PortmapSpec, ctx: &str) -> Result<String> {
    check_ident(ctx, "network name", spec.network)?;
    check_ident(ctx, "container ID", spec.container_id)?;
    check_ident(ctx, "interface name", spec.ifname)?;
    Ok(hostport_owner(spec.network, spec.container_id, spec.ifname))
}

/// `inet netboot <set>`.
pub(super) fn set_ref(set: &str) -> SetRef<'_> {
    SetRef {
        family: NFPROTO_INET,
        table: super::layout::TABLE,
        set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_rejects_other_comments() {
        let o = hostport_owner("cbr0", "abc-1", "eth0");
        assert_eq!(o, "cbr0/abc-1/eth0");
        assert_eq!(parse_hostport_owner(&o), Some(("cbr0", "abc-1", "eth0")));
        for bad in ["abc", "a/b", "a/b/c/d", "a//c", "a/b c/d"] {
            assert_eq!(parse_hostport_owner(bad), None, "{bad}");
        }
    }
}
