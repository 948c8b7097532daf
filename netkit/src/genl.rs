//! Generic netlink (`NETLINK_GENERIC`): resolving a family's id by name and
//! one ACKed request at a time, synchronously.
//!
//! Headers and the controller (`nlctrl`) request come from
//! `netlink-packet-generic`; the socket is opened, written and read through
//! [`crate::conn`] like every other netkit socket. Replies are decoded as
//! raw attributes ([`Reply`]) that the family's module walks itself: the
//! crate's typed controller reply rejects attributes it does not know, and
//! a newer kernel must not break the family look-up.

use netlink_packet_core::{
    DecodeError, Emitable, Nla, NlaBuffer, NlasIterator, ParseableParametrized, NLA_F_NESTED,
    NLA_HEADER_SIZE, NLM_F_ACK,
};
use netlink_packet_generic::constants::CTRL_ATTR_FAMILY_ID;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};
use netlink_sys::protocols::NETLINK_GENERIC;

use crate::conn::Conn;
use crate::error::{Error, Result};

/// One netlink attribute of a request, as the kernel's policies want it:
/// strings NUL-terminated, flags empty, nests flagged `NLA_F_NESTED`
/// (families with strict validation, ethtool among them, refuse a nest
/// without it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attr {
    U32(u16, u32),
    Str(u16, String),
    Flag(u16),
    Nest(u16, Vec<Attr>),
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::U32(..) => 4,
            Attr::Str(_, s) => s.len() + 1,
            Attr::Flag(_) => 0,
            Attr::Nest(_, inner) => inner.as_slice().buffer_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::U32(k, _) | Attr::Str(k, _) | Attr::Flag(k) => *k,
            Attr::Nest(k, _) => *k | NLA_F_NESTED,
        }
    }

    fn emit_value(&self, buf: &mut [u8]) {
        match self {
            Attr::U32(_, v) => buf.copy_from_slice(&v.to_ne_bytes()),
            Attr::Str(_, s) => {
                buf[..s.len()].copy_from_slice(s.as_bytes());
                buf[s.len()] = 0;
            }
            Attr::Flag(_) => {}
            Attr::Nest(_, inner) => inner.as_slice().emit(buf),
        }
    }
}

/// A generic netlink message's command and its attributes, undecoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub cmd: u8,
    pub attrs: Vec<u8>,
}

impl ParseableParametrized<[u8], GenlHeader> for Reply {
    fn parse_with_param(buf: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Reply {
            cmd: header.cmd,
            attrs: buf.to_vec(),
        })
    }
}

/// Each attribute in `buf` as (type without flags, value); a malformed
/// attribute is an error naming `what`.
pub(crate) fn attrs<'a>(buf: &'a [u8], what: &str) -> Result<Vec<(u16, &'a [u8])>> {
    NlasIterator::new(buf)
        .map(|nla| {
            nla.map(|n: NlaBuffer<&'a [u8]>| {
                let (kind, len) = (n.kind(), n.value_length());
                (
                    kind,
                    &n.into_inner()[NLA_HEADER_SIZE..NLA_HEADER_SIZE + len],
                )
            })
            .map_err(|e| Error::invalid(what, format!("malformed attribute: {e}")))
        })
        .collect()
}

/// The string value of an attribute (up to its NUL).
pub(crate) fn attr_str(value: &[u8]) -> String {
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// A u32 attribute's value, or None when it is not 4 bytes long.
pub(crate) fn attr_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(value.try_into().ok()?))
}

/// A generic netlink socket in the calling thread's network namespace.
pub(crate) struct GenlSocket {
    conn: Conn,
}

impl GenlSocket {
    pub fn open(ctx: &str) -> Result<GenlSocket> {
        Ok(GenlSocket {
            conn: Conn::open(NETLINK_GENERIC, ctx, String::new())?,
        })
    }

    /// The id the kernel gave family `name` (`CTRL_CMD_GETFAMILY`). A family
    /// the kernel does not have is [`Error::Invalid`] saying so, with
    /// `missing_hint` (which kernel option or version brings it).
    pub fn family_id(&mut self, name: &str, missing_hint: &str) -> Result<u16> {
        let what = format!("resolve generic netlink family {name}");
        let ctrl = GenlCtrl {
            cmd: GenlCtrlCmd::GetFamily,
            nlas: vec![GenlCtrlAttrs::FamilyName(name.to_string())],
        };
        let replies = match self.request(ctrl, 0, &what) {
            Err(e) if e.errno() == Some(libc::ENOENT) => {
                return Err(Error::invalid(
                    what,
                    format!("the kernel has no such family ({missing_hint})"),
                ))
            }
            other => other?,
        };
        for r in &replies {
            for (kind, v) in attrs(&r.attrs, &what)? {
                if let (CTRL_ATTR_FAMILY_ID, Ok(id)) = (kind, <[u8; 2]>::try_from(v)) {
                    return Ok(u16::from_ne_bytes(id));
                }
            }
        }
        Err(Error::invalid(
            what,
            "the kernel's answer carried no family id",
        ))
    }

    /// Sends `payload` to family `family_id` with `NLM_F_ACK` and returns
    /// every reply that came before the ACK. A negative ACK is
    /// [`Error::Netlink`] with the kernel's extended-ACK message, if it sent
    /// one.
    pub fn request<F>(&mut self, payload: F, family_id: u16, what: &str) -> Result<Vec<Reply>>
    where
        F: GenlFamily + Emitable + std::fmt::Debug,
    {
        let mut genl = GenlMessage::from_payload(payload);
        genl.set_resolved_family_id(family_id);
        let (replies, _) = self
            .conn
            .exchange::<_, GenlMessage<Reply>>(genl, NLM_F_ACK, what)?;
        Ok(replies.into_iter().map(|g| g.payload).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_encode_as_the_kernel_expects() {
        let a = vec![Attr::Nest(
            3,
            vec![Attr::U32(1, 7), Attr::Str(2, "ab".into()), Attr::Flag(4)],
        )];
        let mut buf = vec![0; a.as_slice().buffer_len()];
        a.as_slice().emit(&mut buf);
        // nest header, u32 (8), "ab\0" padded (8), flag (4)
        assert_eq!(buf.len(), 4 + 8 + 8 + 4);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 24);
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), 3 | NLA_F_NESTED);
        let outer = attrs(&buf, "test").unwrap();
        assert_eq!(outer.len(), 1);
        assert_eq!(outer[0].0, 3, "flags are masked off the type");
        let inner = attrs(outer[0].1, "test").unwrap();
        assert_eq!(inner.len(), 3);
        assert_eq!((inner[0].0, attr_u32(inner[0].1)), (1, Some(7)));
        assert_eq!((inner[1].0, attr_str(inner[1].1)), (2, "ab".to_string()));
        assert_eq!((inner[2].0, inner[2].1.len()), (4, 0));
    }

    #[test]
    fn a_truncated_attribute_is_an_error() {
        let buf = [8u8, 0, 1, 0, 1, 2];
        let err = attrs(&buf, "parse x").unwrap_err().to_string();
        assert!(err.starts_with("parse x: malformed attribute"), "{err}");
    }
}
