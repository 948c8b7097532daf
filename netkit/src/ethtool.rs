//! ethtool's netlink interface (generic netlink family `ethtool`, Linux
//! 5.6+): reading a device's offload features and turning transmit
//! checksum offload on or off, as `ethtool -k DEV` and
//! `ethtool -K DEV tx on|off` do.
//!
//! Why: on some kernels and NICs, packets leaving a vxlan device with
//! checksum offload on go out with bad inner checksums and are dropped
//! until `ethtool -K flannel.1 tx-checksum-ip-generic off` is run by hand
//! (flannel issues #1279 and #2152); the agent does it with
//! [`set_tx_checksum`].
//!
//! Which features: `ethtool -K DEV tx off` is the legacy "tx" flag, which
//! ethtool expands to every feature named `tx-checksum-*` (the kernel's
//! `netdev_features_strings`: `tx-checksum-ipv4`, `tx-checksum-ip-generic`,
//! `tx-checksum-ipv6`, `tx-checksum-fcoe-crc`, `tx-checksum-sctp`), and it
//! reads as on while any of them is active (the kernel's old
//! `ETHTOOL_GTXCSUM`). A vxlan device has `tx-checksum-ip-generic`, a veth
//! that and `tx-checksum-sctp`; the kernel itself then drops what needs
//! them (TSO). Only the features in a device's `hw` set can change: one
//! active but not in it is "[fixed]" in `ethtool -k`, and while ethtool
//! silently leaves such a feature on, [`set_tx_checksum`] refuses before
//! changing anything.
//!
//! The messages are built here, by bit name (`ETHTOOL_MSG_FEATURES_GET`,
//! `ETHTOOL_MSG_FEATURES_SET` with verbose bitsets of
//! `linux/ethtool_netlink.h`), on `netlink-packet-generic` headers and
//! netkit's own synchronous socket ([`crate::genl`]): rust-netlink's
//! `ethtool` crate (0.3) decodes `FEATURES_GET` only, with no
//! `FEATURES_SET`, and like `genetlink` it runs on an async runtime, which
//! netkit does without.
//!
//! Everything runs in the calling thread's network namespace; for another
//! one, call from [`crate::Netns::run`].

use std::collections::BTreeSet;

use netlink_packet_core::Emitable;
use netlink_packet_generic::GenlFamily;

use crate::error::{Error, Result};
use crate::genl::{attr_str, attr_u32, attrs, Attr, GenlSocket};

const FAMILY: &str = "ethtool";
const FAMILY_VERSION: u8 = 1;
const MISSING_HINT: &str = "Linux 5.6 or newer with CONFIG_ETHTOOL_NETLINK is needed";

// linux/ethtool_netlink.h
const ETHTOOL_MSG_FEATURES_GET: u8 = 11;
const ETHTOOL_MSG_FEATURES_SET: u8 = 12;
const ETHTOOL_MSG_FEATURES_GET_REPLY: u8 = 11;
const ETHTOOL_A_HEADER_DEV_INDEX: u16 = 1;
const ETHTOOL_A_HEADER_DEV_NAME: u16 = 2;
const ETHTOOL_A_HEADER_FLAGS: u16 = 3;
const ETHTOOL_FLAG_OMIT_REPLY: u32 = 1 << 1;
const ETHTOOL_A_FEATURES_HEADER: u16 = 1;
const ETHTOOL_A_FEATURES_HW: u16 = 2;
const ETHTOOL_A_FEATURES_WANTED: u16 = 3;
const ETHTOOL_A_FEATURES_ACTIVE: u16 = 4;
const ETHTOOL_A_BITSET_NOMASK: u16 = 1;
const ETHTOOL_A_BITSET_BITS: u16 = 3;
const ETHTOOL_A_BITSET_BITS_BIT: u16 = 1;
const ETHTOOL_A_BITSET_BIT_NAME: u16 = 2;
const ETHTOOL_A_BITSET_BIT_VALUE: u16 = 3;

/// What `ethtool -K DEV tx ...` selects: every feature named so.
const TX_CHECKSUM_PREFIX: &str = "tx-checksum-";

/// `ethtool -k DEV`, "tx-checksumming": whether transmit checksum offload
/// is on for device `ifindex` (any `tx-checksum-*` feature active), or
/// None when the device has no such feature at all.
pub fn tx_checksum(ifindex: u32) -> Result<Option<bool>> {
    Ok(Session::open()?.features(ifindex)?.tx_state())
}

/// `ethtool -K DEV tx on|off` for device `ifindex`: requests every
/// changeable `tx-checksum-*` feature that is not yet as asked, in one
/// message, then reads the device back and checks the result. Returns
/// whether any such feature changed (false: already so, nothing sent).
///
/// Refused, naming the device and the feature, before anything changes:
/// off while a feature is fixed on; on for a device that has none or
/// whose features are all fixed off. A missing device is a not-found
/// error ([`Error::is_not_found`]).
pub fn set_tx_checksum(ifindex: u32, on: bool) -> Result<bool> {
    let mut s = Session::open()?;
    let before = s.features(ifindex)?;
    let what = format!(
        "turn tx checksum offload {} on {} (ifindex {ifindex})",
        on_off(on),
        before.dev
    );
    let request = before
        .tx_plan(on)
        .map_err(|msg| Error::invalid(&what, msg))?;
    if request.is_empty() {
        return Ok(false);
    }
    s.set_wanted(ifindex, &request, on, &what)?;
    let after = s.features(ifindex)?;
    after
        .check_tx(on)
        .map_err(|msg| Error::invalid(&what, msg))?;
    Ok(before.tx_snapshot() != after.tx_snapshot())
}

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// A device's features by name, as `ETHTOOL_MSG_FEATURES_GET` reports
/// them: `hw` may be changed, `wanted` is what was asked for, `active` is
/// in force.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Features {
    dev: String,
    hw: BTreeSet<String>,
    wanted: BTreeSet<String>,
    active: BTreeSet<String>,
}

impl Features {
    /// Every `tx-checksum-*` feature the device has: changeable or on.
    fn tx(&self) -> BTreeSet<&str> {
        self.hw
            .iter()
            .chain(&self.active)
            .filter(|n| n.starts_with(TX_CHECKSUM_PREFIX))
            .map(String::as_str)
            .collect()
    }

    fn tx_state(&self) -> Option<bool> {
        let tx = self.tx();
        (!tx.is_empty()).then(|| tx.iter().any(|n| self.active.contains(*n)))
    }

    /// (active, wanted) of the `tx-checksum-*` features, to tell a change.
    fn tx_snapshot(&self) -> Vec<(String, bool, bool)> {
        self.tx()
            .into_iter()
            .map(|n| {
                (
                    n.to_string(),
                    self.active.contains(n),
                    self.wanted.contains(n),
                )
            })
            .collect()
    }

    /// The features to request as `on`; empty when nothing needs asking.
    /// Err: why it cannot be done, naming the feature.
    fn tx_plan(&self, on: bool) -> std::result::Result<Vec<String>, String> {
        let tx = self.tx();
        let fixed_on: Vec<&str> = tx
            .iter()
            .copied()
            .filter(|n| self.active.contains(*n) && !self.hw.contains(*n))
            .collect();
        if !on && !fixed_on.is_empty() {
            let verb = if fixed_on.len() == 1 { "is" } else { "are" };
            return Err(format!(
                "{} {verb} fixed on by the driver (not changeable)",
                fixed_on.join(", ")
            ));
        }
        if on && tx.is_empty() {
            return Err("the device has no tx checksum offload feature".into());
        }
        let changeable: Vec<&str> = tx
            .iter()
            .copied()
            .filter(|n| self.hw.contains(*n))
            .collect();
        if on && changeable.is_empty() && fixed_on.is_empty() {
            return Err(format!(
                "{} can only be off (fixed by the driver)",
                join_tx(&tx)
            ));
        }
        Ok(changeable
            .into_iter()
            .filter(|n| self.active.contains(*n) != on || self.wanted.contains(*n) != on)
            .map(str::to_string)
            .collect())
    }

    /// After a change: is transmit checksum offload as asked?
    fn check_tx(&self, on: bool) -> std::result::Result<(), String> {
        let tx = self.tx();
        let active: Vec<&str> = tx
            .iter()
            .copied()
            .filter(|n| self.active.contains(*n))
            .collect();
        match (on, active.is_empty()) {
            (false, false) => Err(format!(
                "the kernel kept {} on after the request",
                active.join(", ")
            )),
            (true, true) => Err(format!(
                "the kernel kept {} off after the request",
                join_tx(&tx)
            )),
            _ => Ok(()),
        }
    }
}

fn join_tx(tx: &BTreeSet<&str>) -> String {
    let names: Vec<&str> = tx.iter().copied().collect();
    names.join(", ")
}

/// An ethtool request: a command and its attributes.
#[derive(Debug)]
struct EthtoolMsg {
    cmd: u8,
    attrs: Vec<Attr>,
}

impl GenlFamily for EthtoolMsg {
    fn family_name() -> &'static str {
        FAMILY
    }
    fn command(&self) -> u8 {
        self.cmd
    }
    fn version(&self) -> u8 {
        FAMILY_VERSION
    }
}

impl Emitable for EthtoolMsg {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }
    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

/// `ETHTOOL_A_*_HEADER`: the device by index, and request flags.
fn header(kind: u16, ifindex: u32, flags: u32) -> Attr {
    let mut h = vec![Attr::U32(ETHTOOL_A_HEADER_DEV_INDEX, ifindex)];
    if flags != 0 {
        h.push(Attr::U32(ETHTOOL_A_HEADER_FLAGS, flags));
    }
    Attr::Nest(kind, h)
}

/// A verbose bitset setting each of `names` to `on` and leaving every
/// other bit alone (no `NOMASK`: the listed bits are the mask).
fn bitset_by_name(kind: u16, names: &[String], on: bool) -> Attr {
    let bits = names
        .iter()
        .map(|n| {
            let mut bit = vec![Attr::Str(ETHTOOL_A_BITSET_BIT_NAME, n.clone())];
            if on {
                bit.push(Attr::Flag(ETHTOOL_A_BITSET_BIT_VALUE));
            }
            Attr::Nest(ETHTOOL_A_BITSET_BITS_BIT, bit)
        })
        .collect();
    Attr::Nest(kind, vec![Attr::Nest(ETHTOOL_A_BITSET_BITS, bits)])
}

/// The names of the bits set in a verbose bitset: with `NOMASK` every
/// listed bit is set, otherwise those listed with `BIT_VALUE`.
fn parse_bitset(buf: &[u8], what: &str) -> Result<BTreeSet<String>> {
    let top = attrs(buf, what)?;
    let nomask = top.iter().any(|(k, _)| *k == ETHTOOL_A_BITSET_NOMASK);
    let Some((_, bits)) = top.iter().find(|(k, _)| *k == ETHTOOL_A_BITSET_BITS) else {
        return Err(Error::invalid(what, "bitset without bit names (compact)"));
    };
    let mut out = BTreeSet::new();
    for (kind, bit) in attrs(bits, what)? {
        if kind != ETHTOOL_A_BITSET_BITS_BIT {
            continue;
        }
        let (mut name, mut value) = (None, nomask);
        for (k, v) in attrs(bit, what)? {
            match k {
                ETHTOOL_A_BITSET_BIT_NAME => name = Some(attr_str(v)),
                ETHTOOL_A_BITSET_BIT_VALUE => value = true,
                _ => {}
            }
        }
        match name {
            Some(n) if value => {
                out.insert(n);
            }
            Some(_) => {}
            None => return Err(Error::invalid(what, "bitset bit without a name")),
        }
    }
    Ok(out)
}

/// The attributes of an `ETHTOOL_MSG_FEATURES_GET_REPLY`.
fn parse_features(buf: &[u8], what: &str) -> Result<Features> {
    let mut f = Features::default();
    for (kind, v) in attrs(buf, what)? {
        match kind {
            ETHTOOL_A_FEATURES_HEADER => {
                for (k, hv) in attrs(v, what)? {
                    match k {
                        ETHTOOL_A_HEADER_DEV_NAME => f.dev = attr_str(hv),
                        ETHTOOL_A_HEADER_DEV_INDEX if f.dev.is_empty() => {
                            f.dev = format!("#{}", attr_u32(hv).unwrap_or_default());
                        }
                        _ => {}
                    }
                }
            }
            ETHTOOL_A_FEATURES_HW => f.hw = parse_bitset(v, what)?,
            ETHTOOL_A_FEATURES_WANTED => f.wanted = parse_bitset(v, what)?,
            ETHTOOL_A_FEATURES_ACTIVE => f.active = parse_bitset(v, what)?,
            _ => {}
        }
    }
    Ok(f)
}

/// A generic netlink socket and the ethtool family's id.
struct Session {
    sock: GenlSocket,
    family: u16,
}

impl Session {
    fn open() -> Result<Session> {
        let mut sock = GenlSocket::open("open generic netlink socket (ethtool)")?;
        let family = sock.family_id(FAMILY, MISSING_HINT)?;
        Ok(Session { sock, family })
    }

    /// `ETHTOOL_MSG_FEATURES_GET` for one device, verbose bitsets.
    fn features(&mut self, ifindex: u32) -> Result<Features> {
        let what = format!("read ethtool features of ifindex {ifindex}");
        let msg = EthtoolMsg {
            cmd: ETHTOOL_MSG_FEATURES_GET,
            attrs: vec![header(ETHTOOL_A_FEATURES_HEADER, ifindex, 0)],
        };
        let replies = self.sock.request(msg, self.family, &what)?;
        let reply = replies
            .iter()
            .find(|r| r.cmd == ETHTOOL_MSG_FEATURES_GET_REPLY)
            .ok_or_else(|| Error::invalid(&what, "no features in the kernel's answer"))?;
        let mut f = parse_features(&reply.attrs, &what)?;
        if f.dev.is_empty() {
            f.dev = format!("#{ifindex}");
        }
        Ok(f)
    }

    /// `ETHTOOL_MSG_FEATURES_SET`: `names` wanted `on`, no reply but the ACK.
    fn set_wanted(&mut self, ifindex: u32, names: &[String], on: bool, what: &str) -> Result<()> {
        let msg = EthtoolMsg {
            cmd: ETHTOOL_MSG_FEATURES_SET,
            attrs: vec![
                header(ETHTOOL_A_FEATURES_HEADER, ifindex, ETHTOOL_FLAG_OMIT_REPLY),
                bitset_by_name(ETHTOOL_A_FEATURES_WANTED, names, on),
            ],
        };
        let what = format!("{what}: set {}", names.join(", "));
        self.sock.request(msg, self.family, &what).map(drop)
    }
}

#[cfg(test)]
#[path = "ethtool_tests.rs"]
mod tests;
