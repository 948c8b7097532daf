//! Choosing the public interface and the addresses other nodes reach this
//! one at, as flanneld does (`main.go`, `pkg/ipmatch` LookupExtIface,
//! `pkg/ip/iface.go`).
//!
//! Order: each `--iface` in turn (an IP address finds the interface holding
//! it, anything else is a name, an empty value means the default route),
//! then each `--iface-regex` (usable addresses first, then names), then
//! `--iface-can-reach` (`ip route get`). The first that yields an interface
//! with an address for every enabled family wins; the others are logged.
//! With none of those options: the interface holding `--public-ip` (else
//! `--public-ipv6`), else the default route's (IPv4 and/or IPv6; with both
//! on, the two default routes must share the interface).
//!
//! An interface's own address is its first usable one in flanneld's order
//! (not deprecated; global before link-local; configured before SLAAC/DHCP;
//! non-temporary first). `--public-ip` / `--public-ipv6` replace the
//! advertised addresses.
//!
//! Deliberate differences from flanneld, all where flanneld crashes, picks
//! an address of the wrong family or ignores what it was given:
//! - `flannel.*`, `flannel-v6.*` and `cni0` are chosen only by an explicit
//!   `--iface NAME`, never by address, regex, route or default route.
//! - An invalid `--iface-regex` is an error up front (flanneld logs it and
//!   tries the next option).
//! - `--iface IPV6` with both families on finds the interface holding that
//!   address (flanneld crashes without `--public-ipv6` and otherwise uses
//!   `--public-ipv6`'s interface instead).
//! - `--iface-can-reach` takes the route's source address for the family
//!   of the destination (flanneld stores an IPv6 source as the IPv4 address).
//! - A regex name match takes that interface's own addresses (flanneld, with
//!   both families on, can keep an IPv4 address matched on another one).
//! - `ip` is None when IPv4 is off, even with `--public-ip`.

mod select;
mod types;
mod view;

#[cfg(test)]
mod kernel_tests;
#[cfg(test)]
mod tests;

use anyhow::Result;
use ipnet::{IpNet, Ipv4Net};
use netkit::Netlink;

use super::IfaceArgs;
use crate::lease::Attrs;
use select::select;
use types::Snapshot;
pub use types::{External, Families};

/// IPv4 addresses of an interface, link-local ones left out.
pub fn v4_addrs(nl: &mut Netlink, index: u32) -> Result<Vec<Ipv4Net>> {
    Ok(nl
        .addr()
        .list(Some(index))?
        .into_iter()
        .filter_map(|a| match a.addr {
            IpNet::V4(n) if !n.addr().is_link_local() => Some(n),
            _ => None,
        })
        .collect())
}

/// Find the public interface and addresses for the enabled families, as
/// flanneld does (see the module doc); options tried in vain are logged.
pub fn find_external(nl: &mut Netlink, a: &IfaceArgs, fams: Families) -> Result<External> {
    let snap = Snapshot::read(nl, a, fams)?;
    let sel = select(&snap, a, fams)?;
    for s in &sel.skipped {
        super::log(&format!("skipped {s}"));
    }
    Ok(sel.external)
}

/// Does a lease name this node? By the public IPv4 address, or the IPv6
/// one when the node runs without IPv4.
pub fn names_us(a: &Attrs, ext: &External) -> bool {
    match (ext.ip, ext.ip6) {
        (Some(ip), _) => a.public_ip == ip,
        (None, Some(ip6)) => a.public_ipv6 == Some(ip6),
        (None, None) => false,
    }
}
