//! The `NETLINK_NETFILTER` socket: nf_tables transactions (batches) and
//! rule dumps (see the module docs for the batch and close rules).

use std::convert::Infallible;
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_ECHO, NLM_F_REQUEST,
};
use netlink_sys::Socket;

use super::attrs::Attrs;
use super::expr::{
    parse_rule, DelRule, DumpedRule, NewRule, NFTA_RULE_CHAIN, NFTA_RULE_HANDLE, NFTA_RULE_TABLE,
};
use super::{
    family_name, NEWRULE_TYPE, NFNETLINK_V0, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END,
    NFNL_SUBSYS_NFTABLES, NFT_MSG_DELRULE, NFT_MSG_GETRULE, NFT_MSG_NEWRULE,
};
use crate::ack;
use crate::error::{Error, Result};

/// A raw nfnetlink message: type and body (nfgenmsg + attributes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NfMsg {
    pub(super) ty: u16,
    pub(super) body: Vec<u8>,
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

    pub(super) fn nft(msg: u16, family: u8, attrs: &[u8]) -> NfMsg {
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
