//! The one netlink send/receive loop every netkit socket goes through:
//! rtnetlink ([`crate::Netlink`]), nf_tables, ctnetlink and generic
//! netlink alike.
//!
//! A [`Conn`] is a socket talking to the kernel plus its sequence counter.
//! Requests are framed with [`Conn::push`] (several may share a datagram),
//! sent whole with [`Conn::send`], and answered either by
//! [`Conn::exchange`] (one request, its replies until NLMSG_DONE or the
//! ACK) or by [`Conn::acks`] (the ACK of each of several requests).

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

use netlink_sys::{Socket, SocketAddr};

use crate::ack;
use crate::error::{Error, Result};

/// A netlink socket bound to the network namespace of the thread that
/// opened it, for its whole life.
pub(crate) struct Conn {
    sock: Socket,
    seq: u32,
    /// Where the socket lives, for error messages ("" = not said).
    label: String,
    sent: Sent,
}

/// What one socket has sent since it was opened: datagrams (one per
/// `sendmsg`) and the netlink requests in them (changes, gets and dumps
/// alike). Their ratio shows whether bursts are batched.
#[derive(Debug, Default)]
pub(crate) struct Sent {
    pub datagrams: AtomicU64,
    pub requests: AtomicU64,
}

/// A negative ACK: the errno and what the kernel said with it.
#[derive(Debug, Clone)]
pub(crate) struct Nack {
    pub errno: i32,
    flags: u16,
    header: Vec<u8>,
}

impl Nack {
    /// [`Error::Netlink`] for request `op`, with the request's own words
    /// `ctx`, the socket's namespace and the kernel's extended-ACK message.
    pub fn error(&self, op: &str, ctx: &str, label: &str) -> Error {
        Error::Netlink {
            op: op.to_string(),
            errno: self.errno,
            ctx: ack::context(ctx, label, self.flags, &self.header),
        }
    }
}

impl Conn {
    /// A socket of `protocol` talking to the kernel, in the calling
    /// thread's network namespace, with capped and extended ACKs asked for.
    /// `label` names that namespace in errors ("" to say nothing).
    pub fn open(protocol: isize, ctx: &str, label: String) -> Result<Conn> {
        let mut sock = Socket::new(protocol).map_err(|e| Error::io(ctx, e))?;
        sock.bind_auto().map_err(|e| Error::io(ctx, e))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io(ctx, e))?;
        // Only the original header is echoed back in error messages, not the
        // whole request (which may be several KiB for a veth with a peer).
        let _ = sock.set_cap_ack(true);
        // Ask for the kernel's error string too ("Unknown device type", ...).
        let _ = sock.set_ext_ack(true);
        Ok(Conn {
            sock,
            seq: 0,
            label,
            sent: Sent::default(),
        })
    }

    pub fn socket(&self) -> &Socket {
        &self.sock
    }

    pub fn socket_mut(&mut self) -> &mut Socket {
        &mut self.sock
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn sent(&self) -> &Sent {
        &self.sent
    }

    /// Frames `msg` with `NLM_F_REQUEST | flags` and the next sequence
    /// number at the end of `out`; returns that sequence number.
    pub fn push<S: NetlinkSerializable>(&mut self, msg: S, flags: u16, out: &mut Vec<u8>) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.sent.requests.fetch_add(1, Relaxed);
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

    /// Sends `buf` as one datagram (a short send is an error: the kernel
    /// takes a datagram whole or not at all).
    pub fn send(&self, buf: &[u8], what: &str) -> Result<()> {
        // Counted before the send, so a failed one counts too.
        self.sent.datagrams.fetch_add(1, Relaxed);
        let n = self
            .sock
            .send(buf, 0)
            .map_err(|e| Error::io(format!("{what}: netlink send"), e))?;
        if n != buf.len() {
            return Err(Error::invalid(what, "short netlink send"));
        }
        Ok(())
    }

    /// Reads one datagram and decodes every netlink message in it.
    pub fn recv<R: NetlinkDeserializable>(&self, what: &str) -> Result<Vec<NetlinkMessage<R>>> {
        let (buf, _) = self
            .sock
            .recv_from_full()
            .map_err(|e| Error::io(format!("{what}: netlink recv"), e))?;
        decode_datagram(&buf, what)
    }

    /// Sends one request (`flags`: `NLM_F_DUMP`, `NLM_F_ACK`, or neither
    /// for a GET of one object) and collects its replies: until NLMSG_DONE
    /// or the ACK, or the first reply when neither DUMP nor ACK was asked.
    /// Also says whether any part was flagged NLM_F_DUMP_INTR (a dump that
    /// raced with a change). A negative ACK is [`Error::Netlink`] for
    /// `what`.
    pub fn exchange<S, R>(&mut self, msg: S, flags: u16, what: &str) -> Result<(Vec<R>, bool)>
    where
        S: NetlinkSerializable,
        R: NetlinkDeserializable,
    {
        let mut buf = Vec::new();
        let seq = self.push(msg, flags, &mut buf);
        self.send(&buf, what)?;
        let single = flags & (NLM_F_DUMP | NLM_F_ACK) == 0;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            for m in self.recv::<R>(what)? {
                if m.header.sequence_number != seq {
                    continue; // stale answer to an earlier request
                }
                interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok((out, interrupted)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok((out, interrupted)),
                            Some(code) => Err(Nack {
                                errno: -code.get(),
                                flags: m.header.flags,
                                header: e.header,
                            }
                            .error(what, "", &self.label)),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if single {
                            return Ok((out, interrupted));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Reads answers until each of `seqs` has its ACK, recorded in
    /// `answers` at the same index (`Ok` for a positive ACK). Replies that
    /// are not ACKs (echoes) go to `reply`, answers to other sequence
    /// numbers are skipped. Any ACK on `abort` (a batch refused as a whole)
    /// ends the wait with that error, for `what`. On a socket error the
    /// answers read so far stay in `answers`.
    pub fn acks<R: NetlinkDeserializable>(
        &self,
        seqs: &[u32],
        answers: &mut [Option<std::result::Result<(), Nack>>],
        abort: Option<u32>,
        what: &str,
        mut reply: impl FnMut(R),
    ) -> Result<()> {
        while answers.iter().any(Option::is_none) {
            for m in self.recv::<R>(what)? {
                let e = match m.payload {
                    NetlinkPayload::Error(e) => e,
                    NetlinkPayload::InnerMessage(r) => {
                        reply(r);
                        continue;
                    }
                    _ => continue,
                };
                let seq = m.header.sequence_number;
                let nack = Nack {
                    errno: e.code.map(|c| -c.get()).unwrap_or(0),
                    flags: m.header.flags,
                    header: e.header,
                };
                if Some(seq) == abort {
                    return Err(nack.error(what, "", &self.label));
                }
                let Some(i) = seqs.iter().position(|s| *s == seq) else {
                    continue; // stale reply from an earlier, abandoned request
                };
                answers[i] = Some(if nack.errno == 0 { Ok(()) } else { Err(nack) });
            }
        }
        Ok(())
    }
}

/// Every netlink message in one datagram (replies or notifications), each
/// 4-byte aligned as the kernel packs them.
pub(crate) fn decode_datagram<T: NetlinkDeserializable>(
    buf: &[u8],
    what: &str,
) -> Result<Vec<NetlinkMessage<T>>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= buf.len() {
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap_or_default()) as usize;
        if len < 16 || off + len > buf.len() {
            return Err(Error::invalid(what, "truncated netlink message"));
        }
        let msg = NetlinkMessage::<T>::deserialize(&buf[off..off + len])
            .map_err(|e| Error::invalid(what, format!("decode netlink message: {e}")))?;
        out.push(msg);
        off += (len + 3) & !3;
    }
    Ok(out)
}
