//! A synchronous rtnetlink socket: send one request (or a batch), read the
//! kernel's ACK / dump back. No tokio: the CNI plugin is a short-lived
//! process and wants a fast start and a small RSS.
//!
//! The socket is bound to the network namespace of the thread that opened
//! it, for its whole life, whatever thread later uses it (see
//! [`crate::Netns::netlink`]); that is the trick netavark's
//! `core_utils::open_netlink_sockets` relies on.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::NETLINK_ROUTE;

use std::sync::atomic::Ordering::Relaxed;

use crate::conn::Conn;
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
/// One struct per socket; its verbs are reached through one handle per
/// kernel object ([`Netlink::link`], [`Netlink::addr`], [`Netlink::route`],
/// [`Netlink::neigh`], [`Netlink::tc`]), defined in the module of that
/// object, one method per verb, each documented with the `ip` command it
/// equals.
pub struct Netlink {
    conn: Conn,
}

impl std::fmt::Debug for Netlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netlink")
            .field("netns", &self.conn.label())
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
        let conn = Conn::open(NETLINK_ROUTE, &ctx, label)?;
        Ok(Netlink { conn })
    }

    /// Turns NETLINK_GET_STRICT_CHK on or off (kernel-side dump filtering).
    pub(crate) fn set_strict(&mut self, on: bool) -> bool {
        self.conn
            .socket_mut()
            .set_netlink_get_strict_chk(on)
            .is_ok()
    }

    /// Datagrams this socket has sent (or tried to) since it was opened.
    pub fn datagrams_sent(&self) -> u64 {
        self.conn.sent().datagrams.load(Relaxed)
    }

    /// Netlink requests this socket has sent since it was opened, in
    /// [`Netlink::datagrams_sent`] datagrams.
    pub fn requests_sent(&self) -> u64 {
        self.conn.sent().requests.load(Relaxed)
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
        let mut seqs = Vec::with_capacity(reqs.len());
        let mut words = Vec::with_capacity(reqs.len());
        for r in reqs {
            seqs.push(self.conn.push(r.msg, r.flags | NLM_F_ACK, &mut buf));
            words.push((r.op, r.ctx, r.ignore_missing));
        }
        let what = words.first().map(|w| w.0.clone()).unwrap_or_default();
        let mut answers = vec![None; seqs.len()];
        let outcome = self.conn.send(&buf, &what).and_then(|()| {
            self.conn
                .acks::<RouteNetlinkMessage>(&seqs, &mut answers, None, &what, drop)
        });
        // Socket-level failure: every unanswered request shares it.
        let failed = outcome.err().map(|e| e.to_string());
        let label = self.conn.label();
        answers
            .into_iter()
            .zip(words)
            .map(|(answer, (op, ctx, ignore_missing))| match answer {
                Some(Ok(())) => Ok(()),
                Some(Err(nack)) => {
                    let err = nack.error(&op, &ctx, label);
                    if ignore_missing && err.is_not_found() {
                        Ok(())
                    } else {
                        Err(err)
                    }
                }
                None => match &failed {
                    Some(msg) => Err(Error::invalid(op, msg.clone())),
                    None => Ok(()),
                },
            })
            .collect()
    }

    /// Send a GET with NLM_F_DUMP and return every message of the
    /// multipart answer.
    pub(crate) fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        what: &str,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        // A dump that raced with a change is flagged NLM_F_DUMP_INTR and may
        // be inconsistent: ask again (iproute2 just warns; we retry).
        for _ in 0..DUMP_RETRIES {
            let (out, interrupted) = self.conn.exchange(msg.clone(), NLM_F_DUMP, what)?;
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
        Ok(self.conn.exchange(msg, flags, what)?.0)
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
