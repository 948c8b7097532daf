//! The node's bridge (default `cni0`): created once, carries the pod
//! gateway address, and is reconciled when the node's subnet changes.
//!
//! The reconciliation is the cure for flannel#1850 ("cni0 already has an IP
//! address different from ..."): after a node re-joins with a new lease, the
//! reference bridge plugin refuses every ADD until someone deletes cni0 by
//! hand. Here the stale address is replaced automatically, but only when no
//! attachment netboot knows of still uses the old subnet; otherwise ADD
//! fails with a message naming those attachments.

use super::conf::NativeConf;
use crate::ctx::kernel;
use crate::record::Store;
use cni::error::{codes, CniError};
use ipnet::IpNet;
use netkit::{Link, Netlink};

/// A locally administered unicast MAC derived from the bridge name. Pinning
/// it keeps the gateway's MAC stable: an unset bridge MAC follows the
/// lowest port MAC and changes under running pods (netavark `bridge.rs`).
pub fn stable_mac(name: &str) -> [u8; 6] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in b"netboot-bridge\0".iter().chain(name.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    [0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// Makes sure the bridge exists, is up and carries `gateways` (one per
/// address family, `gw/prefix`). Callers hold the node lock.
///
/// Returns the bridge and whether it was created or (re)addressed, which
/// tells the caller the node-wide setup must be redone.
pub fn ensure(
    nl: &mut Netlink,
    conf: &NativeConf,
    gateways: &[IpNet],
    store: &Store,
) -> Result<(Link, bool), CniError> {
    let mut created = false;
    let name = &conf.bridge;
    let link = match nl
        .link()
        .by_name(name)
        .map_err(|e| kernel("look up bridge", e))?
    {
        Some(l) => l,
        None => {
            match nl.link().add_bridge(name, conf.mtu, Some(stable_mac(name))) {
                Err(e) if !e.is_exists() => {
                    return Err(kernel(&format!("create bridge {name}"), e))
                }
                _ => created = true,
            }
            nl.link()
                .by_name(name)
                .map_err(|e| kernel("look up bridge", e))?
                .ok_or_else(|| {
                    CniError::internal(format!("bridge {name} vanished after creation"))
                })?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(CniError::new(
            codes::INVALID_CONFIG,
            format!(
                "{name:?} already exists and is not a bridge (kind {:?})",
                link.kind
            ),
        ));
    }
    let addrs: Vec<IpNet> = nl
        .addr()
        .list(Some(link.index))
        .map_err(|e| kernel(&format!("list addresses of {name}"), e))?
        .into_iter()
        .map(|a| a.addr)
        .collect();
    let missing: Vec<IpNet> = if conf.is_gateway {
        gateways
            .iter()
            .filter(|g| !addrs.contains(g))
            .copied()
            .collect()
    } else {
        Vec::new()
    };
    let changed = created || !missing.is_empty();
    if missing.iter().any(|g| g.addr().is_ipv6()) {
        super::ipv6::bridge_owns_routes(name);
    }
    for gw in missing {
        replace_address(nl, &link, &addrs, gw, conf.force_address, store)?;
    }
    if !link.up {
        nl.link()
            .set_up(link.index)
            .map_err(|e| kernel(&format!("set {name} up"), e))?;
    }
    Ok((link, changed))
}

/// Adds the missing `gw` to the bridge, replacing a stale address of the
/// same family: any other IPv4 address, an IPv6 one only when the subnets
/// overlap (the bridge plugin's `ensureAddr` keeps unrelated IPv6 ones).
fn replace_address(
    nl: &mut Netlink,
    link: &Link,
    addrs: &[IpNet],
    gw: IpNet,
    force: bool,
    store: &Store,
) -> Result<(), CniError> {
    let same_family: Vec<IpNet> = addrs.iter().copied().filter(|a| is_stale(a, &gw)).collect();
    for stale in &same_family {
        if !force {
            let users = users_of(store, stale);
            if !users.is_empty() {
                return Err(CniError::new(
                    codes::TRY_AGAIN,
                    format!(
                        "{:?} already has an IP address different from {gw} ({stale}) and attachments \
                         still use that subnet: {}; DEL them (or set delegate.forceAddress) and retry",
                        link.name,
                        users.join(", ")
                    ),
                ));
            }
        }
        nl.addr().del(link.index, *stale).map_err(|e| {
            kernel(
                &format!("remove stale address {stale} from {}", link.name),
                e,
            )
        })?;
    }
    // Without DAD: the gateway is this node's (see `super::ipv6`).
    match nl.addr().add_nodad(link.index, gw) {
        Err(e) if !e.is_exists() => Err(kernel(&format!("add {gw} to {}", link.name), e)),
        _ => Ok(()),
    }
}

/// Whether bridge address `a` is in the way of gateway `gw`.
fn is_stale(a: &IpNet, gw: &IpNet) -> bool {
    match (a, gw) {
        (IpNet::V4(_), IpNet::V4(_)) => true,
        (IpNet::V6(_), IpNet::V6(_)) => {
            !is_link_local(a) && (a.contains(&gw.addr()) || gw.contains(&a.addr()))
        }
        _ => false,
    }
}

fn is_link_local(a: &IpNet) -> bool {
    match a.addr() {
        std::net::IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
    }
}

/// Attachments (containerID@ifname) whose recorded result has an address
/// inside `subnet`.
fn users_of(store: &Store, subnet: &IpNet) -> Vec<String> {
    let net = subnet.trunc();
    let Ok(list) = store.list() else {
        return Vec::new();
    };
    list.into_iter()
        .filter_map(|(cid, ifname, rec)| {
            let rec = rec.ok()?;
            let result = rec.result?;
            let parsed = cni::result::CniResult::from_value(&result, "1.0.0").ok()?;
            parsed
                .ips
                .iter()
                .any(|ip| net.contains(&ip.address.addr()))
                .then(|| format!("{cid}@{ifname}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_addresses_are_the_bridge_plugins() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        let (v4, v6) = (n("10.2.1.1/24"), n("fd10:2:1::1/64"));
        assert!(is_stale(&n("10.9.0.1/24"), &v4), "any other IPv4 address");
        assert!(is_stale(&n("fd10:2:1::9/64"), &v6), "same IPv6 subnet");
        assert!(is_stale(&n("fd10:2::1/32"), &v6), "overlapping IPv6 subnet");
        assert!(!is_stale(&n("fd99::1/64"), &v6), "unrelated IPv6 subnet");
        assert!(!is_stale(&n("fe80::1/64"), &v6), "link-local");
        assert!(!is_stale(&v6, &v4) && !is_stale(&v4, &v6), "other family");
    }

    #[test]
    fn stable_mac_is_local_unicast_and_deterministic() {
        let m = stable_mac("cni0");
        assert_eq!(m, stable_mac("cni0"));
        assert_ne!(m, stable_mac("cni1"));
        assert_eq!(m[0] & 0x03, 0x02, "locally administered, unicast");
    }
}
