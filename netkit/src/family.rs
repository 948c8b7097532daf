//! The rtnetlink address family of an IP address.

use std::net::IpAddr;

use netlink_packet_route::AddressFamily;

/// `AF_INET` or `AF_INET6`, as `ip` picks from an address's form.
pub(crate) fn family_of(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
