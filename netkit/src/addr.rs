//! Interface addresses (`ip addr`), through [`Netlink::addr`].

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::family::family_of;
use crate::socket::{Netlink, Request, CREATE_EXCL};

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Addr {
    pub index: u32,
    /// Address with its prefix length, e.g. 10.244.3.1/24.
    pub addr: IpNet,
    /// `IFA_F_*` bits (the 32-bit `IFA_FLAGS` attribute, else the header's
    /// 8 bits), as `ip addr` shows them: see [`Addr::is_deprecated`] etc.
    pub flags: u32,
}

impl Addr {
    /// `deprecated`: its preferred lifetime ran out (`preferred_lft 0`).
    pub fn is_deprecated(&self) -> bool {
        self.flags & AddressFlags::Deprecated.bits() != 0
    }

    /// `permanent`: configured by hand, not by SLAAC or DHCP.
    pub fn is_permanent(&self) -> bool {
        self.flags & AddressFlags::Permanent.bits() != 0
    }

    /// IFA_F_TEMPORARY, which is the same bit as IFA_F_SECONDARY: an IPv6
    /// privacy address, or an IPv4 address that is not its subnet's first.
    pub fn is_temporary(&self) -> bool {
        self.flags & AddressFlags::Secondary.bits() != 0
    }
}

fn addr_msg(index: u32, addr: IpNet) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = family_of(&addr.addr());
    msg.header.prefix_len = addr.prefix_len();
    msg.header.index = index;
    msg.attributes.push(AddressAttribute::Local(addr.addr()));
    msg.attributes.push(AddressAttribute::Address(addr.addr()));
    msg
}

/// The address verbs (`ip addr`) of one [`Netlink`] socket, from
/// [`Netlink::addr`].
#[derive(Debug)]
pub struct AddrHandle<'a>(&'a mut Netlink);

impl Netlink {
    /// Addresses: `ip addr`.
    pub fn addr(&mut self) -> AddrHandle<'_> {
        AddrHandle(self)
    }
}

impl AddrHandle<'_> {
    /// `ip addr show [dev IDX]`: addresses of one link, or of all links.
    pub fn list(&mut self, index: Option<u32>) -> Result<Vec<Addr>> {
        let what = match index {
            Some(i) => format!("list addresses of link #{i}"),
            None => "list addresses".to_string(),
        };
        // With NETLINK_GET_STRICT_CHK the kernel filters an address dump by
        // ifa_index itself (inet_dump_ifaddr since 4.20); without it every
        // address of every link comes back, and a node with 500 pod veths
        // (each with an IPv6 link-local) answers a bridge lookup with 1000+
        // messages. Strict checking is switched on only around this dump.
        let mut req = AddressMessage::default();
        let strict = match index {
            Some(i) => {
                req.header.index = i;
                self.0.set_strict(true)
            }
            None => false,
        };
        if !strict {
            req.header.index = 0;
        }
        let replies = self.0.dump(RouteNetlinkMessage::GetAddress(req), &what);
        if strict {
            self.0.set_strict(false);
        }
        let replies = replies?;
        let mut out = Vec::new();
        for r in replies {
            let RouteNetlinkMessage::NewAddress(m) = r else {
                continue;
            };
            if index.is_some_and(|i| i != m.header.index) {
                continue;
            }
            // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
            // peer's on point-to-point links, so prefer LOCAL.
            let ip = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                })
                .or_else(|| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                });
            let flags = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    AddressAttribute::Flags(f) => Some(f.bits()),
                    _ => None,
                })
                .unwrap_or(u32::from(m.header.flags.bits()));
            if let Some(ip) = ip {
                let addr = IpNet::new(ip, m.header.prefix_len)
                    .map_err(|e| Error::invalid(&what, e.to_string()))?;
                out.push(Addr {
                    index: m.header.index,
                    addr,
                    flags,
                });
            }
        }
        Ok(out)
    }

    /// `ip addr add ADDR/LEN [brd +] dev IDX`.
    ///
    /// IPv4 prefixes shorter than /31 also get the broadcast address, as Go's
    /// `netlink.AddrAdd` (used by the reference bridge plugin) sets it.
    /// An address already present gives an error with `is_exists()`.
    pub fn add(&mut self, index: u32, addr: IpNet) -> Result<()> {
        self.add_flagged(index, addr, AddressFlags::empty())
    }

    /// `ip addr add ADDR/LEN dev IDX nodad`: an IPv6 address usable at
    /// once, without duplicate address detection (for an address the
    /// caller knows to be unique on the link). Same as [`AddrHandle::add`]
    /// for IPv4.
    pub fn add_nodad(&mut self, index: u32, addr: IpNet) -> Result<()> {
        let flags = match addr {
            IpNet::V6(_) => AddressFlags::Nodad,
            IpNet::V4(_) => AddressFlags::empty(),
        };
        self.add_flagged(index, addr, flags)
    }

    fn add_flagged(&mut self, index: u32, addr: IpNet, flags: AddressFlags) -> Result<()> {
        let mut msg = addr_msg(index, addr);
        if !flags.is_empty() {
            // IFA_FLAGS overrides the header's 8 bits (inet6_rtm_newaddr).
            msg.attributes.push(AddressAttribute::Flags(flags));
        }
        if let IpNet::V4(v4) = addr {
            if v4.prefix_len() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        let op = format!("add address {addr} to link #{index}");
        self.0.exec(Request::new(
            RouteNetlinkMessage::NewAddress(msg),
            CREATE_EXCL,
            op,
        ))
    }

    /// `ip addr del ADDR/LEN dev IDX`. Idempotent: a missing address is success.
    pub fn del(&mut self, index: u32, addr: IpNet) -> Result<()> {
        let msg = addr_msg(index, addr);
        let op = format!("delete address {addr} from link #{index}");
        match self
            .0
            .exec(Request::new(RouteNetlinkMessage::DelAddress(msg), 0, op))
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }
}

/// Duplicate address detection state (IPv6).
impl Addr {
    /// `tentative`: duplicate address detection still runs; the kernel
    /// neither sends from nor answers for the address yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & AddressFlags::Tentative.bits() != 0
    }

    /// `dadfailed`: duplicate address detection found the address in use;
    /// it stays unusable.
    pub fn is_dad_failed(&self) -> bool {
        self.flags & AddressFlags::Dadfailed.bits() != 0
    }
}
