//! nf_tables expressions and rules: what a rule is made of, encoded the
//! way libnftnl does, and the little read back from a rule dump.

use std::net::IpAddr;

use super::attrs::{attr_str, comment_udata, parse_attrs, udata_comment, Attrs};
use crate::error::Result;

// enum nft_registers (the 16-byte registers nft uses for these rules)
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
// enum nft_rule_attributes
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
// enum nft_list_attributes
const NFTA_LIST_ELEM: u16 = 1;
// enum nft_expr_attributes
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
// enum nft_data_attributes
const NFTA_DATA_VALUE: u16 = 1;
// enum nft_meta_attributes / nft_meta_keys
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_L4PROTO: u32 = 16;
// enum nft_payload_attributes / nft_payload_bases
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
pub(crate) const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub(crate) const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
// enum nft_bitwise_attributes
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
// enum nft_cmp_attributes / nft_cmp_ops
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
// enum nft_immediate_attributes
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
// enum nft_nat_attributes / nft_nat_types
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFTA_NAT_FLAGS: u16 = 7;
const NFT_NAT_DNAT: u32 = 1;
// linux/netfilter/nf_nat.h
const NF_NAT_RANGE_PROTO_SPECIFIED: u32 = 1 << 1;

/// One nf_tables expression, in the subset our rules use. The field names
/// follow `nft --debug=netlink` (`[ payload load 4b @ network header + 16
/// => reg 1 ]` is `Payload { base: NETWORK, offset: 16, len: 4 }`). Loads go
/// to register 1, which is what `nft` picks for a single match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `meta load l4proto => reg 1`
    MetaL4proto,
    /// `payload load LENb @ BASE + OFFSET => reg 1`
    Payload { base: u32, offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ XOR` (same length as both)
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `cmp eq reg 1 DATA`
    CmpEq(Vec<u8>),
    /// `immediate reg REG DATA`
    Immediate { reg: u32, data: Vec<u8> },
    /// `nat dnat FAMILY addr_min reg 1 proto_min reg 2 flags 0x2`
    DnatToRegs { family: u8 },
    /// `masq`
    Masq,
}

impl Expr {
    /// An address as nf_tables compares and loads it (network order).
    pub(crate) fn addr_bytes(a: IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    pub(super) fn encode(&self, a: &mut Attrs) {
        a.nest(NFTA_LIST_ELEM, |a| {
            let name = match self {
                Expr::MetaL4proto => "meta",
                Expr::Payload { .. } => "payload",
                Expr::Bitwise { .. } => "bitwise",
                Expr::CmpEq(_) => "cmp",
                Expr::Immediate { .. } => "immediate",
                Expr::DnatToRegs { .. } => "nat",
                Expr::Masq => "masq",
            };
            a.put_str(NFTA_EXPR_NAME, name);
            // Attribute order is libnftnl's (nftnl_expr_*_build).
            a.nest(NFTA_EXPR_DATA, |a| match self {
                Expr::MetaL4proto => {
                    a.put_u32(NFTA_META_KEY, NFT_META_L4PROTO);
                    a.put_u32(NFTA_META_DREG, NFT_REG_1);
                }
                Expr::Payload { base, offset, len } => {
                    a.put_u32(NFTA_PAYLOAD_DREG, NFT_REG_1);
                    a.put_u32(NFTA_PAYLOAD_BASE, *base);
                    a.put_u32(NFTA_PAYLOAD_OFFSET, *offset);
                    a.put_u32(NFTA_PAYLOAD_LEN, *len);
                }
                Expr::Bitwise { mask, xor } => {
                    a.put_u32(NFTA_BITWISE_SREG, NFT_REG_1);
                    a.put_u32(NFTA_BITWISE_DREG, NFT_REG_1);
                    a.put_u32(NFTA_BITWISE_LEN, mask.len() as u32);
                    a.nest(NFTA_BITWISE_MASK, |a| a.put(NFTA_DATA_VALUE, mask));
                    a.nest(NFTA_BITWISE_XOR, |a| a.put(NFTA_DATA_VALUE, xor));
                }
                Expr::CmpEq(data) => {
                    a.put_u32(NFTA_CMP_SREG, NFT_REG_1);
                    a.put_u32(NFTA_CMP_OP, NFT_CMP_EQ);
                    a.nest(NFTA_CMP_DATA, |a| a.put(NFTA_DATA_VALUE, data));
                }
                Expr::Immediate { reg, data } => {
                    a.put_u32(NFTA_IMMEDIATE_DREG, *reg);
                    a.nest(NFTA_IMMEDIATE_DATA, |a| a.put(NFTA_DATA_VALUE, data));
                }
                Expr::DnatToRegs { family } => {
                    a.put_u32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                    a.put_u32(NFTA_NAT_FAMILY, u32::from(*family));
                    a.put_u32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                    a.put_u32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
                    a.put_u32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                }
                // `nft` sends masq with an empty data nest.
                Expr::Masq => {}
            });
        });
    }
}

/// The immediate register holding a DNAT's port (the address is in 1).
pub(crate) const DNAT_PORT_REG: u32 = NFT_REG_2;
/// The immediate register holding a DNAT's address.
pub(crate) const DNAT_ADDR_REG: u32 = NFT_REG_1;

/// A rule to append: `add rule FAMILY TABLE CHAIN <exprs> comment "C"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRule<'a> {
    pub family: u8,
    pub table: &'a str,
    pub chain: &'a str,
    pub exprs: Vec<Expr>,
    pub comment: &'a str,
}

impl NewRule<'_> {
    /// The NFT_MSG_NEWRULE attributes (after the nfgenmsg).
    pub(crate) fn attrs(&self) -> Result<Vec<u8>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, self.table);
        a.put_str(NFTA_RULE_CHAIN, self.chain);
        a.nest(NFTA_RULE_EXPRESSIONS, |a| {
            for e in &self.exprs {
                e.encode(a);
            }
        });
        a.put(NFTA_RULE_USERDATA, &comment_udata(self.comment)?);
        Ok(a.buf)
    }
}

/// A rule as dumped by the kernel: where it is, its handle, its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
}

/// A rule to delete, by handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DelRule<'a> {
    pub family: u8,
    pub table: &'a str,
    pub chain: &'a str,
    pub handle: u64,
}

/// Parse one NFT_MSG_NEWRULE (a dump answer) body: nfgenmsg + attributes.
pub(super) fn parse_rule(body: &[u8]) -> Option<DumpedRule> {
    let family = *body.first()?;
    let mut r = DumpedRule {
        family,
        table: String::new(),
        chain: String::new(),
        handle: 0,
        comment: None,
    };
    let mut has_handle = false;
    for (ty, v) in parse_attrs(body.get(4..)?) {
        match ty {
            NFTA_RULE_TABLE => r.table = attr_str(v),
            NFTA_RULE_CHAIN => r.chain = attr_str(v),
            NFTA_RULE_HANDLE => {
                r.handle = u64::from_be_bytes(v.try_into().ok()?);
                has_handle = true;
            }
            NFTA_RULE_USERDATA => r.comment = udata_comment(v),
            _ => {}
        }
    }
    has_handle.then_some(r)
}

#[cfg(test)]
mod tests {
    use super::super::attrs::tests::tree;
    use super::super::{NFPROTO_IPV4, NFPROTO_IPV6};
    use super::*;

    /// `add rule ip cni_hostport hostports tcp dport 8080 dnat to
    /// 10.0.0.2:80 comment "c1"`, transcribed from `nft --debug=mnl` 1.0.6
    /// (types, nesting, lengths, bytes).
    #[test]
    fn encodes_dnat_rule_exactly_like_nft() {
        let r = NewRule {
            family: NFPROTO_IPV4,
            table: "cni_hostport",
            chain: "hostports",
            exprs: vec![
                Expr::MetaL4proto,
                Expr::CmpEq(vec![6]),
                Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: 2,
                    len: 2,
                },
                Expr::CmpEq(8080u16.to_be_bytes().to_vec()),
                Expr::Immediate {
                    reg: DNAT_ADDR_REG,
                    data: vec![10, 0, 0, 2],
                },
                Expr::Immediate {
                    reg: DNAT_PORT_REG,
                    data: 80u16.to_be_bytes().to_vec(),
                },
                Expr::DnatToRegs {
                    family: NFPROTO_IPV4,
                },
            ],
            comment: "c1",
        };
        let attrs = r.attrs().unwrap();
        // nft's message length was 392 = 16 (nlmsghdr) + 4 (nfgenmsg) + attrs.
        assert_eq!(attrs.len(), 392 - 20);
        let mut t = String::new();
        tree(&attrs, 0, &mut t);
        let want = "\
1 len=17 636e695f686f7374706f727400
2 len=14 686f7374706f72747300
4 N len=324
  1 N len=36
    1 len=9 6d65746100
    2 N len=20
      2 len=8 00000010
      1 len=8 00000001
  1 N len=44
    1 len=8 636d7000
    2 N len=32
      1 len=8 00000001
      2 len=8 00000000
      3 N len=12
        1 len=5 06
  1 N len=52
    1 len=12 7061796c6f616400
    2 N len=36
      1 len=8 00000001
      2 len=8 00000002
      3 len=8 00000002
      4 len=8 00000002
  1 N len=44
    1 len=8 636d7000
    2 N len=32
      1 len=8 00000001
      2 len=8 00000000
      3 N len=12
        1 len=6 1f90
  1 N len=44
    1 len=14 696d6d65646961746500
    2 N len=24
      1 len=8 00000001
      2 N len=12
        1 len=8 0a000002
  1 N len=44
    1 len=14 696d6d65646961746500
    2 N len=24
      1 len=8 00000002
      2 N len=12
        1 len=6 0050
  1 N len=56
    1 len=8 6e617400
    2 N len=44
      1 len=8 00000001
      2 len=8 00000002
      3 len=8 00000001
      5 len=8 00000002
      7 len=8 00000002
7 len=9 0003633100
";
        assert_eq!(t, want);
    }

    #[test]
    fn masq_has_empty_data_nest_and_bitwise_zero_prefix() {
        let mut a = Attrs::default();
        Expr::Masq.encode(&mut a);
        let mut t = String::new();
        tree(&a.buf, 0, &mut t);
        assert_eq!(t, "1 N len=20\n  1 len=9 6d61737100\n  2 N len=4\n");
        let mut a = Attrs::default();
        Expr::Bitwise {
            mask: vec![0; 4],
            xor: vec![0; 4],
        }
        .encode(&mut a);
        let mut t = String::new();
        tree(&a.buf, 0, &mut t);
        assert_eq!(
            t,
            "1 N len=68\n  1 len=12 6269747769736500\n  2 N len=52\n    \
             1 len=8 00000001\n    2 len=8 00000001\n    3 len=8 00000004\n    \
             4 N len=12\n      1 len=8 00000000\n    5 N len=12\n      1 len=8 00000000\n"
        );
    }

    #[test]
    fn parses_a_dumped_rule() {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, "cni_hostport");
        a.put_str(NFTA_RULE_CHAIN, "masquerading");
        a.put_u64(NFTA_RULE_HANDLE, 0x1234);
        a.nest(NFTA_RULE_EXPRESSIONS, |a| Expr::Masq.encode(a));
        a.put(NFTA_RULE_USERDATA, &comment_udata("cid").unwrap());
        // nfgenmsg (family, version, res_id) before the attributes.
        let mut body = vec![NFPROTO_IPV6, 0, 0, 0];
        body.extend_from_slice(&a.buf);
        assert_eq!(
            parse_rule(&body),
            Some(DumpedRule {
                family: NFPROTO_IPV6,
                table: "cni_hostport".into(),
                chain: "masquerading".into(),
                handle: 0x1234,
                comment: Some("cid".into()),
            })
        );
        assert_eq!(parse_rule(&body[..4]), None, "no handle");
    }
}
