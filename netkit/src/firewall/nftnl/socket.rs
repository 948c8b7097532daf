//! The `NETLINK_NETFILTER` socket: nf_tables transactions (batches) and
//! requests and dumps (see the module docs for the batch and close rules).

use std::convert::Infallible;
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, NLM_F_ACK, NLM_F_DUMP,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use super::uapi::{NFNETLINK_V0, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES};
use crate::conn::Conn;
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
    conn: Conn,
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
        let ctx = "open nf_tables netlink socket";
        let conn = Conn::open(NETLINK_NETFILTER, ctx, String::new())?;
        Ok(NfSocket { conn })
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

    fn send(&self, buf: &[u8], what: &str) -> Result<()> {
        // A batch must go in one datagram (the kernel commits per datagram),
        // and a big one (hundreds of rules) exceeds the default send buffer:
        // grow it to fit, as nft does (SO_SNDBUFFORCE needs CAP_NET_ADMIN,
        // which writing nf_tables needs anyway).
        if buf.len() > SMALL_SEND {
            use nix::sys::socket::{setsockopt, sockopt};
            let want = buf.len() + 4096;
            let sock = self.conn.socket();
            if setsockopt(sock, sockopt::SndBufForce, &want).is_err() {
                let _ = setsockopt(sock, sockopt::SndBuf, &want);
            }
        }
        self.conn.send(buf, what)
    }

    /// Send `msgs` (message, extra flags, words for errors) as one nf_tables
    /// transaction and wait for every answer. `Ok` only when the kernel
    /// accepted every message (and so committed the batch); otherwise the
    /// first error, named after the failing message. Returns what the
    /// kernel echoed back (messages sent with `NLM_F_ECHO`).
    pub(super) fn batch(&mut self, msgs: Vec<BatchMsg>, what: &str) -> Result<Vec<NfMsg>> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let mut buf = Vec::new();
        let res_id = NFNL_SUBSYS_NFTABLES;
        let begin_msg = NfMsg::new(NFNL_MSG_BATCH_BEGIN, 0, res_id, &[]);
        let begin = self.conn.push(begin_msg, 0, &mut buf);
        let mut seqs = Vec::with_capacity(msgs.len());
        let mut ops = Vec::with_capacity(msgs.len());
        for BatchMsg { msg, flags, op } in msgs {
            seqs.push(self.conn.push(msg, flags | NLM_F_ACK, &mut buf));
            ops.push(op);
        }
        let end_msg = NfMsg::new(NFNL_MSG_BATCH_END, 0, res_id, &[]);
        self.conn.push(end_msg, 0, &mut buf);
        // Every answer is queued before send() returns (the kernel runs the
        // batch in our sendmsg), each a small skb of ~1 KiB truesize: a
        // batch of hundreds of messages would overflow the default receive
        // buffer (ENOBUFS, answers lost), so make room first, as nft does.
        if seqs.len() > SMALL_BATCH {
            use nix::sys::socket::{setsockopt, sockopt};
            let want = seqs.len() * ANSWER_TRUESIZE;
            if setsockopt(self.conn.socket(), sockopt::RcvBufForce, &want).is_err() {
                let _ = self.conn.socket_mut().set_rx_buf_sz(want);
            }
        }
        self.send(&buf, what)?;
        // A refusal of the batch as a whole (or a failed commit) comes on
        // BATCH_BEGIN's sequence number; nothing else will be answered then
        // (or it does not matter).
        let mut answers = vec![None; seqs.len()];
        let mut echoed = Vec::new();
        self.conn
            .acks(&seqs, &mut answers, Some(begin), what, |r| echoed.push(r))?;
        let first_err = answers.into_iter().zip(&ops).find_map(|(a, op)| match a {
            Some(Err(nack)) => Some(nack.error(op, "", "")),
            _ => None,
        });
        first_err.map_or(Ok(echoed), Err)
    }

    /// Commit `msgs` as one transaction (see [`NfSocket::batch`]).
    pub(crate) fn commit(&mut self, msgs: Vec<BatchMsg>, what: &str) -> Result<()> {
        self.batch(msgs, what).map(|_| ())
    }

    /// One request (`flags`: `NLM_F_DUMP`, or `NLM_F_ACK` for a single
    /// object) and its answers, until NLMSG_DONE or the ACK; also whether
    /// any part was flagged NLM_F_DUMP_INTR. `None` when the kernel answers
    /// ENOENT (no such table, chain, set, rule or element).
    pub(super) fn exchange(
        &mut self,
        msg: NfMsg,
        flags: u16,
        what: &str,
    ) -> Result<Option<(Vec<NfMsg>, bool)>> {
        match self.conn.exchange(msg, flags, what) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
            other => other.map(Some),
        }
    }

    /// [`NfSocket::exchange`] as a dump, asked again while a concurrent
    /// change interrupts it. `None` as there.
    pub(super) fn dump(&mut self, msg: NfMsg, what: &str) -> Result<Option<Vec<NfMsg>>> {
        for _ in 0..DUMP_RETRIES {
            match self.exchange(msg.clone(), NLM_F_DUMP, what)? {
                None => return Ok(None),
                Some((out, false)) => return Ok(Some(out)),
                Some((_, true)) => {}
            }
        }
        Err(Error::invalid(
            what,
            "dump kept being interrupted by concurrent changes",
        ))
    }
}

/// One message of a transaction: the message, its flags besides
/// `NLM_F_REQUEST | NLM_F_ACK`, and the words that name it in an error.
pub(crate) struct BatchMsg {
    pub(super) msg: NfMsg,
    pub(super) flags: u16,
    pub(super) op: String,
}
