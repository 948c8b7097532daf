//! nf_tables expressions, in the subset netboot's rules use: encoded the
//! way libnftnl encodes them, and summarised (also from a kernel dump) so
//! that "is this rule there?" is a comparison of short strings.

use std::net::IpAddr;

use super::attrs::{attr_str, parse_attrs, Attrs};

// enum nft_registers: the 16-byte registers (1..4) and the 4-byte ones
// (NFT_REG32_00 = 8 aliases the first word of NFT_REG_1).
pub(crate) const NFT_REG_VERDICT: u32 = 0;
pub(crate) const NFT_REG_1: u32 = 1;
pub(crate) const NFT_REG_2: u32 = 2;
/// The second word of register 1: where `nft` loads the second field of a
/// concatenation whose first field is 4 bytes long.
pub(crate) const NFT_REG32_01: u32 = 9;
// enum nft_list_attributes
pub(super) const NFTA_LIST_ELEM: u16 = 1;
// enum nft_expr_attributes
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
// enum nft_data_attributes / nft_verdict_attributes / nft_verdicts
pub(super) const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFT_JUMP: i32 = -3;
// enum nft_meta_attributes / nft_meta_keys
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
pub(crate) const NFT_META_NFPROTO: u32 = 15;
pub(crate) const NFT_META_L4PROTO: u32 = 16;
// enum nft_payload_attributes / nft_payload_bases
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
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
// enum nft_lookup_attributes
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_SET_ID: u16 = 4;
// enum nft_fib_attributes / nft_fib_result / nft_fib_flags
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
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
/// => reg 1 ]` is `Payload { base: NETWORK, offset: 16, len: 4, dreg: 1 }`).
/// Matches load into register 1, which is what `nft` picks for a single
/// match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `meta load KEY => reg 1` (`NFT_META_L4PROTO`, `NFT_META_NFPROTO`)
    Meta(u32),
    /// `payload load LENb @ BASE + OFFSET => reg DREG`
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ XOR` (same length as both)
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `cmp eq reg 1 DATA`
    CmpEq(Vec<u8>),
    /// `immediate reg REG DATA`
    Immediate { reg: u32, data: Vec<u8> },
    /// `immediate reg 0 jump -> CHAIN`
    Jump(String),
    /// `fib daddr type => reg 1`
    FibDaddrType,
    /// `lookup reg 1 set SET [dreg 1]`: SET_ID names a set created in the
    /// same transaction, as `nft` sends it.
    Lookup {
        set: String,
        set_id: Option<u32>,
        dreg: Option<u32>,
    },
    /// `nat dnat FAMILY addr_min reg 1 proto_min reg PROTO_REG`, with
    /// `flags 0x2` (proto specified) written out when `flags` is set, as
    /// `nft` does for `dnat to ADDR:PORT` but not for a map's data.
    Dnat {
        family: u8,
        proto_reg: u32,
        flags: bool,
    },
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

    /// `ip saddr => reg DREG` (`ip6` when `v6`): the source address, at
    /// its offset in the IPv4 / IPv6 header.
    pub(crate) fn saddr(v6: bool, dreg: u32) -> Expr {
        Expr::network(if v6 { 8 } else { 12 }, v6, dreg)
    }

    /// `ip daddr => reg DREG` (`ip6` when `v6`): the destination address.
    pub(crate) fn daddr(v6: bool, dreg: u32) -> Expr {
        Expr::network(if v6 { 24 } else { 16 }, v6, dreg)
    }

    fn network(offset: u32, v6: bool, dreg: u32) -> Expr {
        Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: if v6 { 16 } else { 4 },
            dreg,
        }
    }

    /// `th dport => reg DREG`: the destination port of tcp, udp or sctp,
    /// 2 bytes at transport header + 2.
    pub(crate) fn dport(dreg: u32) -> Expr {
        Expr::Payload {
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 2,
            len: 2,
            dreg,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Expr::Meta(_) => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::CmpEq(_) => "cmp",
            Expr::Immediate { .. } | Expr::Jump(_) => "immediate",
            Expr::FibDaddrType => "fib",
            Expr::Lookup { .. } => "lookup",
            Expr::Dnat { .. } => "nat",
            Expr::Masq => "masq",
        }
    }

    pub(super) fn encode(&self, a: &mut Attrs) {
        a.nest(NFTA_LIST_ELEM, |a| {
            a.put_str(NFTA_EXPR_NAME, self.name());
            // Attribute order is libnftnl's (nftnl_expr_*_build).
            a.nest(NFTA_EXPR_DATA, |a| self.encode_data(a));
        });
    }

    fn encode_data(&self, a: &mut Attrs) {
        match self {
            Expr::Meta(key) => {
                a.put_u32(NFTA_META_KEY, *key);
                a.put_u32(NFTA_META_DREG, NFT_REG_1);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                a.put_u32(NFTA_PAYLOAD_DREG, *dreg);
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
            Expr::Jump(chain) => {
                a.put_u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                a.nest(NFTA_IMMEDIATE_DATA, |a| {
                    a.nest(NFTA_DATA_VERDICT, |a| {
                        a.put_u32(NFTA_VERDICT_CODE, NFT_JUMP as u32);
                        a.put_str(NFTA_VERDICT_CHAIN, chain);
                    })
                });
            }
            Expr::FibDaddrType => {
                a.put_u32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
                a.put_u32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
                a.put_u32(NFTA_FIB_DREG, NFT_REG_1);
            }
            Expr::Lookup { set, set_id, dreg } => {
                a.put_u32(NFTA_LOOKUP_SREG, NFT_REG_1);
                if let Some(d) = dreg {
                    a.put_u32(NFTA_LOOKUP_DREG, *d);
                }
                a.put_str(NFTA_LOOKUP_SET, set);
                if let Some(id) = set_id {
                    a.put_u32(NFTA_LOOKUP_SET_ID, *id);
                }
            }
            Expr::Dnat {
                family,
                proto_reg,
                flags,
            } => {
                a.put_u32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                a.put_u32(NFTA_NAT_FAMILY, u32::from(*family));
                a.put_u32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1);
                a.put_u32(NFTA_NAT_REG_PROTO_MIN, *proto_reg);
                if *flags {
                    a.put_u32(NFTA_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
                }
            }
            // `nft` sends masq with an empty data nest.
            Expr::Masq => {}
        }
    }

    /// What identifies this expression in a rule, registers aside: the same
    /// string [`summarize`] makes of the kernel's dump of it.
    pub(crate) fn summary(&self) -> String {
        match self {
            Expr::Meta(key) => format!("meta({key})"),
            Expr::Payload {
                base, offset, len, ..
            } => format!("payload({base},{offset},{len})"),
            Expr::CmpEq(data) => format!("cmp({})", hex(data)),
            Expr::Immediate { data, .. } => format!("immediate({})", hex(data)),
            Expr::Jump(chain) => format!("jump({chain})"),
            Expr::FibDaddrType => format!("fib({NFT_FIB_RESULT_ADDRTYPE})"),
            Expr::Lookup { set, .. } => format!("lookup({set})"),
            Expr::Dnat { family, .. } => format!("dnat({family})"),
            Expr::Bitwise { .. } | Expr::Masq => self.name().to_string(),
        }
    }
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

/// The [`Expr::summary`] of every expression in a dumped rule's
/// `NFTA_RULE_EXPRESSIONS`; an expression this module does not know is
/// summarised by its name alone (and so never equals an expected one).
pub(super) fn summarize(exprs: &[u8]) -> Vec<String> {
    parse_attrs(exprs)
        .filter(|(ty, _)| *ty == NFTA_LIST_ELEM)
        .map(|(_, e)| {
            let mut name = String::new();
            let mut data: &[u8] = &[];
            for (ty, v) in parse_attrs(e) {
                match ty {
                    NFTA_EXPR_NAME => name = attr_str(v),
                    NFTA_EXPR_DATA => data = v,
                    _ => {}
                }
            }
            summarize_one(&name, data)
        })
        .collect()
}

fn summarize_one(name: &str, data: &[u8]) -> String {
    let u32_of = |want: u16| {
        parse_attrs(data)
            .find(|(t, _)| *t == want)
            .and_then(|(_, v)| v.try_into().ok().map(u32::from_be_bytes))
    };
    let nested_value = |want: u16| {
        parse_attrs(data)
            .find(|(t, _)| *t == want)
            .and_then(|(_, v)| parse_attrs(v).find(|(t, _)| *t == NFTA_DATA_VALUE))
            .map(|(_, v)| hex(v))
    };
    let opt = |v: Option<u32>| v.map_or("?".to_string(), |v| v.to_string());
    match name {
        "meta" => format!("meta({})", opt(u32_of(NFTA_META_KEY))),
        "payload" => format!(
            "payload({},{},{})",
            opt(u32_of(NFTA_PAYLOAD_BASE)),
            opt(u32_of(NFTA_PAYLOAD_OFFSET)),
            opt(u32_of(NFTA_PAYLOAD_LEN))
        ),
        "cmp" if u32_of(NFTA_CMP_OP) == Some(NFT_CMP_EQ) => {
            format!("cmp({})", nested_value(NFTA_CMP_DATA).unwrap_or_default())
        }
        "immediate" => {
            let verdict = parse_attrs(data)
                .find(|(t, _)| *t == NFTA_IMMEDIATE_DATA)
                .and_then(|(_, v)| parse_attrs(v).find(|(t, _)| *t == NFTA_DATA_VERDICT))
                .and_then(|(_, v)| parse_attrs(v).find(|(t, _)| *t == NFTA_VERDICT_CHAIN))
                .map(|(_, v)| attr_str(v));
            match verdict {
                Some(chain) => format!("jump({chain})"),
                None => format!(
                    "immediate({})",
                    nested_value(NFTA_IMMEDIATE_DATA).unwrap_or_default()
                ),
            }
        }
        "fib" => format!("fib({})", opt(u32_of(NFTA_FIB_RESULT))),
        "lookup" => {
            let set = parse_attrs(data)
                .find(|(t, _)| *t == NFTA_LOOKUP_SET)
                .map(|(_, v)| attr_str(v))
                .unwrap_or_default();
            format!("lookup({set})")
        }
        "nat" if u32_of(NFTA_NAT_TYPE) == Some(NFT_NAT_DNAT) => {
            format!("dnat({})", opt(u32_of(NFTA_NAT_FAMILY)))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
#[path = "expr_tests.rs"]
mod tests;
