//! nf_tables spoken directly over `NETLINK_NETFILTER`, for the hot
//! port-mapping operations (see [`super::portmap`]): add rules in one batch,
//! dump a table's rules, delete rules by handle in one batch.
//!
//! Only what those operations need is here, encoded attribute for attribute
//! the way `nft` 1.0.6 (libnftnl) encodes the same rules, as printed by
//! `nft --debug=netlink,mnl -f -`: the kernel stores the expressions it is
//! given, so identical messages give identical `nft list` output whichever
//! tool wrote them. Every constant is named after the kernel uapi header it
//! comes from (`linux/netfilter/nf_tables.h`, `nfnetlink.h`, `nf_nat.h`,
//! `linux/netfilter.h`); the only non-kernel one is libnftnl's userdata TLV
//! type for rule comments, which is how `nft` (and so knftables, and so
//! upstream portmap) stores `comment "..."`.
//!
//! # Batches and acknowledgements
//!
//! A change is `NFNL_MSG_BATCH_BEGIN`, the messages, `NFNL_MSG_BATCH_END`,
//! in one datagram; the kernel commits all of it or nothing. Every message
//! in between carries `NLM_F_ACK` and gets exactly one answer. Those answers
//! are delivered only after the whole batch was processed, and a 0 answer
//! does not mean "committed" when another message of the batch failed (the
//! kernel still acks the good ones before aborting), so the batch succeeded
//! only if *every* answer is 0. A failed commit, or a batch refused as a
//! whole (no `CAP_NET_ADMIN`), is answered on the BATCH_BEGIN's sequence
//! number, before any per-message answer. The delimiters themselves carry no
//! `NLM_F_ACK`: kernels before 6.1 never answer them.
//!
//! # Closing after a delete
//!
//! Deleted rules are freed after an RCU grace period by a kernel worker
//! (`nf_tables_trans_destroy_work`), and closing *any* nfnetlink socket
//! while that worker has not yet picked up its list waits for it to finish
//! (`nft_rcv_nl_event` flushes it on NETLINK_URELEASE): measured, the
//! `close()` right after a DELRULE batch takes ~16-18 ms, a whole grace
//! period, which is what most of a DEL cost. So a socket that committed a
//! delete is not closed there but kept ([`NfSocket::linger`]) until the
//! next operation or process exit; by then the worker has long started (the
//! plugin deletes the veth next, itself a grace period) and the close is
//! immediate. At most one socket lingers per process.
//!
//! No `unsafe`: the socket is `netlink-sys`'s, the framing
//! `netlink-packet-core`'s; only the nf_tables attributes are encoded here.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_REQUEST,
};
use netlink_sys::Socket;

use crate::ack;
use crate::error::{Error, Result};

// linux/netfilter/nfnetlink.h
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NLMSG_MIN_TYPE`.
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNETLINK_V0: u8 = 0;

// linux/netfilter.h
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_IPV6: u8 = 10;

// linux/netlink.h
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | (1 << 14));

// linux/netfilter/nf_tables.h: enum nf_tables_msg_types
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
/// The nlmsg type of a rule in a GETRULE dump.
const NEWRULE_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;
// enum nft_registers (the 16-byte registers nft uses for these rules)
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
// enum nft_rule_attributes
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_HANDLE: u16 = 3;
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
/// libnftnl `include/udata.h` `enum nftnl_udata_rule_types`: the TLV type
/// `nft` writes a rule's `comment` as (u8 type, u8 length, NUL-terminated).
const NFTNL_UDATA_RULE_COMMENT: u8 = 0;
/// `NFT_USERDATA_MAXLEN` (nf_tables.h): no comment longer than this fits.
const NFT_USERDATA_MAXLEN: usize = 256;

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

    fn encode(&self, a: &mut Attrs) {
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

/// The userdata `nft` stores for `comment "C"`: one TLV.
fn comment_udata(comment: &str) -> Result<Vec<u8>> {
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
fn udata_comment(mut u: &[u8]) -> Option<String> {
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
fn parse_attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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

fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|b| *b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// Parse one NFT_MSG_NEWRULE (a dump answer) body: nfgenmsg + attributes.
fn parse_rule(body: &[u8]) -> Option<DumpedRule> {
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

/// A raw nfnetlink message: type and body (nfgenmsg + attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct NfMsg {
    ty: u16,
    body: Vec<u8>,
}

impl NfMsg {
    /// `family` + `NFNETLINK_V0` + `res_id` (big-endian) + attributes.
    fn new(ty: u16, family: u8, res_id: u16, attrs: &[u8]) -> NfMsg {
        let mut body = Vec::with_capacity(4 + attrs.len());
        body.push(family);
        body.push(NFNETLINK_V0);
        body.extend_from_slice(&res_id.to_be_bytes());
        body.extend_from_slice(attrs);
        NfMsg { ty, body }
    }

    fn nft(msg: u16, family: u8, attrs: &[u8]) -> NfMsg {
        NfMsg::new((NFNL_SUBSYS_NFTABLES << 8) | msg, family, 0, attrs)
    }
}

impl NetlinkSerializable for NfMsg {
    fn message_type(&self) -> u16 {
        self.ty
    }
    fn buffer_len(&self) -> usize {
        self.body.len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer.copy_from_slice(&self.body);
    }
}

impl NetlinkDeserializable for NfMsg {
    type Error = Infallible;
    fn deserialize(
        header: &NetlinkHeader,
        payload: &[u8],
    ) -> std::result::Result<Self, Infallible> {
        Ok(NfMsg {
            ty: header.message_type,
            body: payload.to_vec(),
        })
    }
}

/// A `NETLINK_NETFILTER` socket in the network namespace of the thread
/// that opened it.
pub(crate) struct NfSocket {
    sock: Socket,
    seq: u32,
}

/// The socket kept open after a delete (see "Closing after a delete").
static LINGER: Mutex<Option<NfSocket>> = Mutex::new(None);

/// Up to this many answers fit the default receive buffer (212992 bytes).
const SMALL_BATCH: usize = 64;
/// Generous receive-buffer room per answer (an ACK skb's truesize is
/// ~768 bytes).
const ANSWER_TRUESIZE: usize = 2048;

/// Below this a datagram always fits the default send buffer.
const SMALL_SEND: usize = 64 * 1024;

/// A dump that raced with a change is flagged NLM_F_DUMP_INTR: ask again.
const DUMP_RETRIES: usize = 5;

impl NfSocket {
    pub(crate) fn open() -> Result<NfSocket> {
        let sock = crate::socket::open_netfilter("open nf_tables netlink socket")?;
        Ok(NfSocket { sock, seq: 0 })
    }

    /// Keep this socket open until [`NfSocket::close_lingering`] or process
    /// exit, closing the one kept before (see "Closing after a delete").
    pub(crate) fn linger(self) {
        let old = match LINGER.lock() {
            Ok(mut g) => g.replace(self),
            Err(_) => Some(self),
        };
        drop(old);
    }

    /// Close the socket [`NfSocket::linger`] kept, if any. Called before a
    /// new delete, while no destroy work of ours is pending.
    pub(crate) fn close_lingering() {
        let old = LINGER.lock().ok().and_then(|mut g| g.take());
        drop(old);
    }

    fn push(&mut self, msg: NfMsg, flags: u16, out: &mut Vec<u8>) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = out.len();
        out.resize(start + nl.buffer_len(), 0);
        nl.serialize(&mut out[start..]);
        self.seq
    }

    fn send(&self, buf: &[u8], what: &str) -> Result<()> {
        // A batch must go in one datagram (the kernel commits per datagram),
        // and a big one (hundreds of rules) exceeds the default send buffer:
        // grow it to fit, as nft does (SO_SNDBUFFORCE needs CAP_NET_ADMIN,
        // which writing nf_tables needs anyway).
        if buf.len() > SMALL_SEND {
            use nix::sys::socket::{setsockopt, sockopt};
            let want = buf.len() + 4096;
            if setsockopt(&self.sock, sockopt::SndBufForce, &want).is_err() {
                let _ = setsockopt(&self.sock, sockopt::SndBuf, &want);
            }
        }
        crate::socket::send_datagram(&self.sock, buf, what)
    }

    fn recv(&self, what: &str) -> Result<Vec<NetlinkMessage<NfMsg>>> {
        crate::socket::recv_datagram(&self.sock, what)
    }

    /// Send `msgs` (message, extra flags, words for errors) as one nf_tables
    /// transaction and wait for every answer. `Ok` only when the kernel
    /// accepted every message (and so committed the batch); otherwise the
    /// first error, named after the failing message. Returns the rules the
    /// kernel echoed back (messages sent with `NLM_F_ECHO`).
    fn batch(&mut self, msgs: Vec<(NfMsg, u16, String)>, what: &str) -> Result<Vec<DumpedRule>> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = Vec::new();
        let res_id = NFNL_SUBSYS_NFTABLES;
        let begin = self.push(
            NfMsg::new(NFNL_MSG_BATCH_BEGIN, 0, res_id, &[]),
            0,
            &mut buf,
        );
        let mut pending: Vec<(u32, String, Option<i32>)> = Vec::with_capacity(msgs.len());
        for (m, flags, op) in msgs {
            let seq = self.push(m, flags | NLM_F_ACK, &mut buf);
            pending.push((seq, op, None));
        }
        self.push(NfMsg::new(NFNL_MSG_BATCH_END, 0, res_id, &[]), 0, &mut buf);
        // Every answer is queued before send() returns (the kernel runs the
        // batch in our sendmsg), each a small skb of ~1 KiB truesize: a
        // batch of hundreds of messages would overflow the default receive
        // buffer (ENOBUFS, answers lost), so make room first, as nft does.
        if pending.len() > SMALL_BATCH {
            use nix::sys::socket::{setsockopt, sockopt};
            let want = pending.len() * ANSWER_TRUESIZE;
            if setsockopt(&self.sock, sockopt::RcvBufForce, &want).is_err() {
                let _ = self.sock.set_rx_buf_sz(want);
            }
        }
        self.send(&buf, what)?;
        let mut first_err: Option<Error> = None;
        let mut echoed = Vec::new();
        while pending.iter().any(|p| p.2.is_none()) {
            for msg in self.recv(what)? {
                let e = match &msg.payload {
                    NetlinkPayload::Error(e) => e,
                    NetlinkPayload::InnerMessage(r) if r.ty == NEWRULE_TYPE => {
                        echoed.extend(parse_rule(&r.body));
                        continue;
                    }
                    _ => continue,
                };
                let seq = msg.header.sequence_number;
                let errno = e.code.map(|c| -c.get()).unwrap_or(0);
                let err = |op: &str| Error::Netlink {
                    op: op.to_string(),
                    errno,
                    ctx: ack::context("", "", msg.header.flags, &e.header),
                };
                if seq == begin {
                    // The batch as a whole was refused or failed to commit;
                    // nothing else will be answered (or it does not matter).
                    return Err(err(what));
                }
                if let Some(p) = pending.iter_mut().find(|p| p.0 == seq) {
                    p.2 = Some(errno);
                    if errno != 0 && first_err.is_none() {
                        first_err = Some(err(&p.1));
                    }
                }
            }
        }
        first_err.map_or(Ok(echoed), Err)
    }

    /// Append `rules` in one transaction (`nft --echo add rule` each, in
    /// order). Returns the rules as the kernel committed them, handles
    /// included (`NLM_F_ECHO`: the commit's notifications come back to this
    /// socket), so that they can later be deleted without listing the table.
    pub(crate) fn add_rules(&mut self, rules: &[NewRule], what: &str) -> Result<Vec<DumpedRule>> {
        let mut msgs = Vec::with_capacity(rules.len());
        for r in rules {
            msgs.push((
                NfMsg::nft(NFT_MSG_NEWRULE, r.family, &r.attrs()?),
                NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO,
                format!("add rule {} {} {}", family_name(r.family), r.table, r.chain),
            ));
        }
        self.batch(msgs, what)
    }

    /// Delete `rules` by handle in one transaction.
    pub(crate) fn del_rules(&mut self, rules: &[DelRule], what: &str) -> Result<()> {
        let msgs = rules
            .iter()
            .map(|r| {
                let mut a = Attrs::default();
                a.put_str(NFTA_RULE_TABLE, r.table);
                a.put_str(NFTA_RULE_CHAIN, r.chain);
                a.put_u64(NFTA_RULE_HANDLE, r.handle);
                (
                    NfMsg::nft(NFT_MSG_DELRULE, r.family, &a.buf),
                    0,
                    format!(
                        "delete rule {} {} {} handle {}",
                        family_name(r.family),
                        r.table,
                        r.chain,
                        r.handle
                    ),
                )
            })
            .collect();
        self.batch(msgs, what).map(|_| ())
    }

    /// `nft -a list ... handle H` for one rule: `None` when no rule of
    /// `family table chain` has that handle (or the table is gone). One
    /// lookup, whatever the size of the chain.
    pub(crate) fn get_rule(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
        handle: u64,
        what: &str,
    ) -> Result<Option<DumpedRule>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, table);
        a.put_str(NFTA_RULE_CHAIN, chain);
        a.put_u64(NFTA_RULE_HANDLE, handle);
        let (rules, _) = self.get_rules(family, &a.buf, NLM_F_ACK, what)?;
        Ok(rules.into_iter().next())
    }

    /// Every rule of table `family table` (none when the table does not
    /// exist: the kernel's dump filter simply matches nothing).
    pub(crate) fn dump_rules(
        &mut self,
        family: u8,
        table: &str,
        what: &str,
    ) -> Result<Vec<DumpedRule>> {
        for _ in 0..DUMP_RETRIES {
            let mut a = Attrs::default();
            a.put_str(NFTA_RULE_TABLE, table);
            let (out, interrupted) = self.get_rules(family, &a.buf, NLM_F_DUMP, what)?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::invalid(
            what,
            "rule dump kept being interrupted by concurrent changes",
        ))
    }

    /// One GETRULE (`flags`: a dump, or one rule with an ACK after it) and
    /// its answers, until NLMSG_DONE or the ACK; also whether any part was
    /// flagged NLM_F_DUMP_INTR. ENOENT (no such table, chain or rule) is an
    /// empty answer.
    fn get_rules(
        &mut self,
        family: u8,
        attrs: &[u8],
        flags: u16,
        what: &str,
    ) -> Result<(Vec<DumpedRule>, bool)> {
        let mut buf = Vec::new();
        let seq = self.push(NfMsg::nft(NFT_MSG_GETRULE, family, attrs), flags, &mut buf);
        self.send(&buf, what)?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            for m in self.recv(what)? {
                if m.header.sequence_number != seq {
                    continue;
                }
                interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok((out, interrupted)),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok((out, interrupted)),
                        Some(code) => {
                            let errno = -code.get();
                            if errno == libc::ENOENT {
                                return Ok((Vec::new(), false));
                            }
                            return Err(Error::Netlink {
                                op: what.to_string(),
                                errno,
                                ctx: ack::context("", "", m.header.flags, &e.header),
                            });
                        }
                    },
                    NetlinkPayload::InnerMessage(r) if r.ty == NEWRULE_TYPE => {
                        out.extend(parse_rule(&r.body));
                    }
                    _ => {}
                }
            }
        }
    }
}

pub(crate) fn family_name(f: u8) -> &'static str {
    match f {
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decode attributes back into an indented tree, the way
    /// `nft --debug=mnl` lays them out (type, nested flag, hex payload).
    fn tree(buf: &[u8], depth: usize, out: &mut String) {
        let mut b = buf;
        while b.len() >= 4 {
            let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
            let raw = u16::from_ne_bytes([b[2], b[3]]);
            let val = &b[4..len];
            let pad = " ".repeat(depth * 2);
            if raw & NLA_F_NESTED != 0 {
                out.push_str(&format!("{pad}{} N len={len}\n", raw & NLA_TYPE_MASK));
                tree(val, depth + 1, out);
            } else {
                let hex: Vec<String> = val.iter().map(|x| format!("{x:02x}")).collect();
                out.push_str(&format!("{pad}{raw} len={len} {}\n", hex.join("")));
            }
            b = &b[(len + 3) & !3..];
        }
    }

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

    #[test]
    fn parses_a_dumped_rule() {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, "cni_hostport");
        a.put_str(NFTA_RULE_CHAIN, "masquerading");
        a.put_u64(NFTA_RULE_HANDLE, 0x1234);
        a.nest(NFTA_RULE_EXPRESSIONS, |a| Expr::Masq.encode(a));
        a.put(NFTA_RULE_USERDATA, &comment_udata("cid").unwrap());
        let m = NfMsg::nft(NFT_MSG_NEWRULE, NFPROTO_IPV6, &a.buf);
        assert_eq!(
            parse_rule(&m.body),
            Some(DumpedRule {
                family: NFPROTO_IPV6,
                table: "cni_hostport".into(),
                chain: "masquerading".into(),
                handle: 0x1234,
                comment: Some("cid".into()),
            })
        );
        assert_eq!(parse_rule(&m.body[..4]), None, "no handle");
    }
}
