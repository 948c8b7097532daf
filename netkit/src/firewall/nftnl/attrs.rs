//! Netlink attributes as nf_tables wants them (built and parsed), and the
//! userdata TLV `nft` stores comments in.

use crate::error::{Error, Result};

// linux/netlink.h
pub(super) const NLA_F_NESTED: u16 = 1 << 15;
pub(super) const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

/// libnftnl `include/udata.h` `enum nftnl_udata_rule_types`: the TLV type
/// `nft` writes a rule's `comment` as (u8 type, u8 length, NUL-terminated).
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// `NFT_USERDATA_MAXLEN` (nf_tables.h): no comment longer than this fits.
const NFT_USERDATA_MAXLEN: usize = 256;

/// The userdata `nft` stores for `comment "C"`: one TLV.
pub(super) fn comment_udata(comment: &str) -> Result<Vec<u8>> {
    let n = comment.len() + 1;
    if n > u8::MAX as usize || n + 2 > NFT_USERDATA_MAXLEN || comment.contains('\0') {
        return Err(Error::invalid(
            "encode nft rule comment",
            format!("{comment:?} does not fit a userdata TLV"),
        ));
    }
    let mut v = vec![NFTNL_UDATA_RULE_COMMENT, n as u8];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    Ok(v)
}

/// The comment TLV of a rule's userdata, if any.
pub(super) fn udata_comment(mut u: &[u8]) -> Option<String> {
    while u.len() >= 2 {
        let (ty, len) = (u[0], u[1] as usize);
        let val = u.get(2..2 + len)?;
        if ty == NFTNL_UDATA_RULE_COMMENT {
            let end = val.iter().position(|b| *b == 0).unwrap_or(val.len());
            return Some(String::from_utf8_lossy(&val[..end]).into_owned());
        }
        u = &u[2 + len..];
    }
    None
}

/// Netlink attributes being built: 4-byte header (length, type), payload,
/// padding to 4 bytes; nests set `NLA_F_NESTED` as libmnl does.
#[derive(Default)]
pub(crate) struct Attrs {
    pub buf: Vec<u8>,
}

impl Attrs {
    pub(crate) fn put(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    /// NLA_U32 attributes of nf_tables are big-endian.
    pub(crate) fn put_u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    pub(crate) fn put_u64(&mut self, ty: u16, v: u64) {
        self.put(ty, &v.to_be_bytes());
    }

    /// NLA_STRING, NUL-terminated as libmnl's `mnl_attr_put_strz`.
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v);
    }

    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(self);
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
}

/// Iterate over the attributes in `buf`: (type without flags, payload).
pub(super) fn parse_attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            buf = &[];
            return None;
        }
        let val = &buf[4..len];
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some((ty, val))
    })
}

pub(super) fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Decode attributes back into an indented tree, the way
    /// `nft --debug=mnl` lays them out (type, nested flag, hex payload).
    pub(in super::super) fn tree(buf: &[u8]) -> String {
        let mut out = String::new();
        tree_into(buf, 0, &mut out);
        out
    }

    fn tree_into(buf: &[u8], depth: usize, out: &mut String) {
        let mut b = buf;
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let raw = u16::from_ne_bytes([b[2], b[3]]);
            let val = &b[4..len];
            let pad = " ".repeat(depth * 2);
            if raw & NLA_F_NESTED != 0 {
                out.push_str(&format!("{pad}{} N len={len}\n", raw & NLA_TYPE_MASK));
                tree_into(val, depth + 1, out);
            } else {
                let hex: Vec<String> = val.iter().map(|x| format!("{x:02x}")).collect();
                out.push_str(&format!("{pad}{raw} len={len} {}\n", hex.join("")));
            }
            b = &b[(len + 3) & !3..];
        }
    }

    #[test]
    fn comment_userdata_round_trips() {
        let u = comment_udata("abc-1").unwrap();
        assert_eq!(u, b"\x00\x06abc-1\x00");
        assert_eq!(udata_comment(&u).as_deref(), Some("abc-1"));
        // Another TLV first (ebtables policy), then the comment.
        let mut v = vec![1, 1, 0];
        v.extend_from_slice(&u);
        assert_eq!(udata_comment(&v).as_deref(), Some("abc-1"));
        assert_eq!(udata_comment(&[0, 9, b'x']), None, "truncated");
        assert!(comment_udata(&"x".repeat(255)).is_err());
    }
}
