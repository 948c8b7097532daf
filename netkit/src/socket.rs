//! A synchronous rtnetlink socket: send one request (or a batch), read the
//! kernel's ACK / dump back. No tokio: the CNI plugin is a short-lived
//! process and wants a fast start and a small RSS.
//!
//! The socket is bound to the network namespace of the thread that opened
//! it, for its whole life, whatever thread later uses it (see
//! [`crate::Netns::netlink`]); that is the trick netavark's
//! `core_utils::open_netlink_sockets` relies on.

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE,
    NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::ack;
use crate::error::{Error, Result};

/// `NLM_F_CREATE | NLM_F_EXCL`: create, and fail if the object exists.
pub(crate) const CREATE_EXCL: u16 = NLM_F_CREATE | NLM_F_EXCL;

/// One request to the kernel, with the words used to describe it in errors.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub msg: RouteNetlinkMessage,
    /// `NLM_F_CREATE | NLM_F_EXCL` etc.; REQUEST and ACK are always added.
    pub flags: u16,
    /// "create veth vethab12"
    pub op: String,
    /// "peer eth0 in /run/netns/x"; may be empty.
    pub ctx: String,
    /// A "no such object" answer counts as success (idempotent deletes).
    pub ignore_missing: bool,
}

impl Request {
    pub fn new(msg: RouteNetlinkMessage, flags: u16, op: impl Into<String>) -> Self {
        Request {
            msg,
            flags,
            op: op.into(),
            ctx: String::new(),
            ignore_missing: false,
        }
    }

    pub fn idempotent(mut self) -> Self {
        self.ignore_missing = true;
        self
    }

    pub fn ctx(mut self, ctx: impl Into<String>) -> Self {
        self.ctx = ctx.into();
        self
    }
}

/// A route-netlink socket living in one network namespace.
///
/// One struct per socket; the verbs live in the `link`, `addr`, `route` and
/// `neigh` modules, one function per verb, each documented with the `ip`
/// command it equals.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    /// Where the socket lives, for error messages ("" = caller's netns).
    label: String,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.label)
            .finish()
    }
}

impl Netlink {
    /// Open a route-netlink socket in the calling thread's network namespace.
    /// To get one inside another namespace use [`crate::Netns::netlink`].
    pub fn open() -> Result<Netlink> {
        Self::open_labelled(String::new())
    }

    pub(crate) fn open_labelled(label: String) -> Result<Netlink> {
        let ctx = format!("open netlink socket{}", in_ns(&label));
        let sock = open_kernel(NETLINK_ROUTE, &ctx)?;
        Ok(Netlink {
            sock,
            seq: 0,
            label,
        })
    }

    /// Turns NETLINK_GET_STRICT_CHK on or off (kernel-side dump filtering).
    pub(crate) fn set_strict(&mut self, on: bool) -> bool {
        self.sock.set_netlink_get_strict_chk(on).is_ok()
    }

    /// The namespace label used in error messages ("" for the caller's own).
    pub fn netns_label(&self) -> &str {
        &self.label
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn encode(&mut self, msg: RouteNetlinkMessage, flags: u16, out: &mut Vec<u8>) -> u32 {
        let seq = self.next_seq();
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        nl.finalize();
        let start = out.len();
        out.resize(start + nl.buffer_len(), 0);
        nl.serialize(&mut out[start..]);
        seq
    }

    fn send(&self, buf: &[u8], what: &str) -> Result<()> {
        send_datagram(&self.sock, buf, what)
    }

    fn recv(&self, what: &str) -> Result<Vec<NetlinkMessage<RouteNetlinkMessage>>> {
        recv_datagram(&self.sock, what)
    }

    /// Send one request with NLM_F_ACK and wait for its ACK.
    pub(crate) fn exec(&mut self, req: Request) -> Result<()> {
        self.exec_all(vec![req]).pop().unwrap_or(Ok(()))
    }

    /// Send several requests in ONE datagram (one round trip) and collect one
    /// result per request, in order. The kernel processes them one after the
    /// other and keeps going after a failed one (`netlink_rcv_skb`), so a
    /// failure of one does not prevent the others.
    pub(crate) fn exec_all(&mut self, reqs: Vec<Request>) -> Vec<Result<()>> {
        let mut buf = Vec::new();
        let mut pending = Vec::with_capacity(reqs.len());
        for r in reqs {
            let seq = self.encode(r.msg, r.flags | NLM_F_ACK, &mut buf);
            pending.push(Pending {
                seq,
                op: r.op,
                ctx: r.ctx,
                ignore_missing: r.ignore_missing,
                result: None,
            });
        }
        let what = pending.first().map(|p| p.op.clone()).unwrap_or_default();
        let outcome = self
            .send(&buf, &what)
            .and_then(|()| self.collect_acks(&mut pending, &what));
        if let Err(e) = outcome {
            // Socket-level failure: every unanswered request shares it.
            let msg = e.to_string();
            for p in pending.iter_mut().filter(|p| p.result.is_none()) {
                p.result = Some(Err(Error::invalid(p.op.clone(), msg.clone())));
            }
        }
        pending
            .into_iter()
            .map(|p| p.result.unwrap_or(Ok(())))
            .collect()
    }

    fn collect_acks(&mut self, pending: &mut [Pending], what: &str) -> Result<()> {
        while pending.iter().any(|p| p.result.is_none()) {
            for msg in self.recv(what)? {
                let seq = msg.header.sequence_number;
                let Some(p) = pending.iter_mut().find(|p| p.seq == seq) else {
                    continue; // stale reply from an earlier, abandoned request
                };
                if let NetlinkPayload::Error(e) = &msg.payload {
                    let Some(code) = e.code else {
                        p.result = Some(Ok(()));
                        continue;
                    };
                    let err = Error::Netlink {
                        op: p.op.clone(),
                        errno: -code.get(),
                        ctx: ack::context(&p.ctx, &self.label, msg.header.flags, &e.header),
                    };
                    let missing_ok = p.ignore_missing && err.is_not_found();
                    p.result = Some(if missing_ok { Ok(()) } else { Err(err) });
                }
            }
        }
        Ok(())
    }

    /// Send a GET with NLM_F_DUMP (plus `extra` flags) and return every
    /// message of the multipart answer.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        // A dump that raced with a change is flagged NLM_F_DUMP_INTR and may
        // be inconsistent: ask again (iproute2 just warns; we retry).
        for _ in 0..DUMP_RETRIES {
            let (out, interrupted) = self.get_flagged(msg.clone(), NLM_F_DUMP, what)?;
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::invalid(
            what,
            "dump kept being interrupted by concurrent changes",
        ))
    }

    /// Send a GET (dump or single object) and collect the answers until
    /// NLMSG_DONE, or the single reply for a non-dump request.
    pub(crate) fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        Ok(self.get_flagged(msg, flags, what)?.0)
    }

    /// [`Netlink::get`], also telling whether any part carried NLM_F_DUMP_INTR.
    fn get_flagged(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        what: &str,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool)> {
        let mut interrupted = false;
        let mut buf = Vec::new();
        let seq = self.encode(msg, flags, &mut buf);
        self.send(&buf, what)?;
        let mut out = Vec::new();
        loop {
            for m in self.recv(what)? {
                if m.header.sequence_number != seq {
                    continue;
                }
                interrupted |= m.header.flags & NLM_F_DUMP_INTR != 0;
                match m.payload {
                    NetlinkPayload::Done(_) => return Ok((out, interrupted)),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok((out, interrupted)),
                            Some(code) => Err(Error::Netlink {
                                op: what.to_string(),
                                errno: -code.get(),
                                ctx: ack::context("", &self.label, m.header.flags, &e.header),
                            }),
                        }
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if flags & NLM_F_DUMP == 0 {
                            return Ok((out, interrupted));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

fn in_ns(label: &str) -> String {
    if label.is_empty() {
        String::new()
    } else {
        format!(" in {label}")
    }
}

const DUMP_RETRIES: usize = 5;

/// One request of a batch waiting for its ACK.
struct Pending {
    seq: u32,
    op: String,
    ctx: String,
    ignore_missing: bool,
    result: Option<Result<()>>,
}

/// A netfilter netlink socket (nf_tables or ctnetlink) in the calling
/// thread's network namespace, with capped ACKs and extended ACKs asked for.
pub(crate) fn open_netfilter(ctx: &str) -> Result<Socket> {
    open_kernel(netlink_sys::protocols::NETLINK_NETFILTER, ctx)
}

/// A generic netlink socket (ethtool and other genl families) in the
/// calling thread's network namespace, set up like the others.
pub(crate) fn open_generic(ctx: &str) -> Result<Socket> {
    open_kernel(netlink_sys::protocols::NETLINK_GENERIC, ctx)
}

/// A netlink socket of `protocol` talking to the kernel, bound to the
/// calling thread's network namespace for its whole life.
fn open_kernel(protocol: isize, ctx: &str) -> Result<Socket> {
    let mut sock = Socket::new(protocol).map_err(|e| Error::io(ctx, e))?;
    sock.bind_auto().map_err(|e| Error::io(ctx, e))?;
    sock.connect(&SocketAddr::new(0, 0))
        .map_err(|e| Error::io(ctx, e))?;
    // Only the original header is echoed back in error messages, not the
    // whole request (which may be several KiB for a veth with a peer).
    let _ = sock.set_cap_ack(true);
    // Ask for the kernel's error string too ("Unknown device type", ...).
    let _ = sock.set_ext_ack(true);
    Ok(sock)
}

/// Sends `buf` as one datagram (a short send is an error: the kernel
/// takes a datagram whole or not at all). rtnetlink, nf_tables and
/// ctnetlink sockets all send through this.
pub(crate) fn send_datagram(sock: &Socket, buf: &[u8], what: &str) -> Result<()> {
    let n = sock
        .send(buf, 0)
        .map_err(|e| Error::io(format!("{what}: netlink send"), e))?;
    if n != buf.len() {
        return Err(Error::invalid(what, "short netlink send"));
    }
    Ok(())
}

/// Reads one datagram and decodes every netlink message in it.
pub(crate) fn recv_datagram<T: NetlinkDeserializable>(
    sock: &Socket,
    what: &str,
) -> Result<Vec<NetlinkMessage<T>>> {
    let (buf, _) = sock
        .recv_from_full()
        .map_err(|e| Error::io(format!("{what}: netlink recv"), e))?;
    decode_datagram(&buf, what)
}

/// Every netlink message in one datagram (replies or notifications), each
/// 4-byte aligned as the kernel packs them: rtnetlink, nf_tables and
/// ctnetlink sockets all read through this.
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
