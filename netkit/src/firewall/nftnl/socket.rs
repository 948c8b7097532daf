//! The `NETLINK_NETFILTER` socket: nf_tables transactions (batches) and
//! requests and dumps (see the module docs for the batch and close rules).

use std::convert::Infallible;
use std::sync::Mutex;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_sys::Socket;

use super::uapi::{NFNETLINK_V0, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES};
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
    /// first error, named after the failing message. Returns what the
    /// kernel echoed back (messages sent with `NLM_F_ECHO`).
    pub(super) fn batch(&mut self, msgs: Vec<BatchMsg>, what: &str) -> Result<Vec<NfMsg>> {
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
        for BatchMsg { msg, flags, op } in msgs {
            let seq = self.push(msg, flags | NLM_F_ACK, &mut buf);
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
                    NetlinkPayload::InnerMessage(r) => {
                        echoed.push(r.clone());
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
        let mut buf = Vec::new();
        let seq = self.push(msg, flags, &mut buf);
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
                    NetlinkPayload::Done(_) => return Ok(Some((out, interrupted))),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok(Some((out, interrupted))),
                        Some(code) => {
                            let errno = -code.get();
                            if errno == libc::ENOENT {
                                return Ok(None);
                            }
                            return Err(Error::Netlink {
                                op: what.to_string(),
                                errno,
                                ctx: ack::context("", "", m.header.flags, &e.header),
                            });
                        }
                    },
                    NetlinkPayload::InnerMessage(r) => out.push(r),
                    _ => {}
                }
            }
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
