//! Connection tracking over ctnetlink (`NETLINK_NETFILTER`, subsystem
//! `NFNL_SUBSYS_CTNETLINK`): list flows and delete the flows that match.
//!
//! Why: conntrack remembers the NAT it chose for a flow. A UDP "flow" from
//! a client that keeps sending from the same source port never goes idle,
//! so after the pod behind a hostPort is replaced, its packets keep being
//! DNATed to the dead pod's address. The reference portmap plugin
//! (`deletePortmapStaleConnections`) and kubelet therefore delete the UDP
//! entries toward a hostPort once the new DNAT rules are in place; so does
//! netboot ([`delete_flows`]).
//!
//! The messages are `netlink-packet-netfilter`'s (its `conntrack` module
//! has GET/NEW/DELETE with tuples, status, timeout and mark); the socket is
//! `netlink-sys`'s and, like every netkit socket, lives in the network
//! namespace of the thread that opened it: conntrack tables are per netns.
//!
//! Deletion is a dump of one address family's table, matching in user
//! space, then one DELETE by original tuple per match (with the entry's
//! zone and id, so an entry that was replaced meanwhile is left alone), as
//! `conntrack -D` and vishvananda/netlink's `ConntrackDeleteFilters` do. The
//! kernel can filter dumps itself (`CTA_FILTER`, Linux 5.8+) and flush by
//! filter on newer kernels, but matching here works on every kernel and
//! the table is read once per ADD that maps a UDP port only.

use std::net::IpAddr;

use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_DUMP};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Tuple,
};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::protocols::NETLINK_NETFILTER;

use crate::conn::Conn;
use crate::error::Result;

/// `IPPROTO_TCP`.
pub const TCP: u8 = 6;
/// `IPPROTO_UDP`.
pub const UDP: u8 = 17;

// linux/netfilter/nfnetlink_conntrack.h: enum ctattr_type
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;

/// DELETEs sent per datagram: their ACKs must fit the default receive
/// buffer (see `firewall::nftnl`).
const DELETE_CHUNK: usize = 64;

/// One direction of a flow: addresses and ports as the kernel saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple4 {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// A tracked flow: its protocol, the original direction (what the client
/// sent) and the reply direction (after NAT: the reply's source is where
/// the flow was DNATed to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub proto: u8,
    pub orig: Tuple4,
    pub reply: Tuple4,
    /// `CTA_ZONE` (0 when absent) and `CTA_ID`, to delete exactly it.
    zone: u16,
    id: Option<u32>,
}

impl Flow {
    /// A flow in zone 0, for the unit tests.
    #[cfg(test)]
    fn new(proto: u8, orig: Tuple4, reply: Tuple4) -> Flow {
        Flow {
            proto,
            orig,
            reply,
            zone: 0,
            id: None,
        }
    }

    pub fn is_v6(&self) -> bool {
        self.orig.dst.is_ipv6()
    }
}

/// Which flows [`delete_flows`] removes: protocol and original-direction
/// destination port, the original destination address when given, and,
/// when given, the address the flow was DNATed to (the reply's source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMatch {
    pub proto: u8,
    pub dport: u16,
    pub dst: Option<IpAddr>,
    pub nat_to: Option<IpAddr>,
}

impl FlowMatch {
    pub fn matches(&self, f: &Flow) -> bool {
        f.proto == self.proto
            && f.orig.dport == self.dport
            && self.dst.is_none_or(|d| d == f.orig.dst)
            && self.nat_to.is_none_or(|a| a == f.reply.src)
    }
}

/// `conntrack -L -f ipv4|ipv6`: every flow of one family in the calling
/// thread's network namespace.
pub fn flows(v6: bool) -> Result<Vec<Flow>> {
    CtSocket::open()?.dump(v6)
}

/// Deletes every flow of family `v6` that one of `matches` selects, in the
/// calling thread's network namespace; returns how many went. Opens no
/// socket when `matches` is empty. Entries that expire meanwhile are fine.
pub fn delete_flows(v6: bool, matches: &[FlowMatch]) -> Result<usize> {
    if matches.is_empty() {
        return Ok(0);
    }
    let mut sock = CtSocket::open()?;
    let doomed: Vec<Flow> = sock
        .dump(v6)?
        .into_iter()
        .filter(|f| matches.iter().any(|m| m.matches(f)))
        .collect();
    for chunk in doomed.chunks(DELETE_CHUNK) {
        sock.delete(chunk)?;
    }
    Ok(doomed.len())
}

fn describe(f: &Flow) -> String {
    let proto = match f.proto {
        UDP => "udp".to_string(),
        TCP => "tcp".to_string(),
        p => format!("proto {p}"),
    };
    format!(
        "{proto} {}:{} -> {}:{}",
        f.orig.src, f.orig.sport, f.orig.dst, f.orig.dport
    )
}

fn family(v6: bool) -> NetfilterProtoFamily {
    if v6 {
        NetfilterProtoFamily::IPv6
    } else {
        NetfilterProtoFamily::IPv4
    }
}

fn tuple(proto: u8, t: &Tuple4) -> Vec<Tuple> {
    vec![
        Tuple::Ip(vec![
            IPTuple::SourceAddress(t.src),
            IPTuple::DestinationAddress(t.dst),
        ]),
        Tuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::from(proto)),
            ProtoTuple::SourcePort(t.sport),
            ProtoTuple::DestinationPort(t.dport),
        ]),
    ]
}

/// A flow out of a dumped NEW message; `None` for what has no ports or
/// addresses (ICMP, other families): nothing [`FlowMatch`] could select.
fn parse_flow(attrs: &[ConntrackAttribute]) -> Option<Flow> {
    let (mut orig, mut reply, mut zone, mut id) = (None, None, 0, None);
    for a in attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = parse_tuple(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = parse_tuple(t),
            ConntrackAttribute::Other(nla) => {
                let v = nla_value(nla);
                match (nla_kind(nla), v.len()) {
                    (CTA_ZONE, 2) => zone = u16::from_be_bytes([v[0], v[1]]),
                    (CTA_ID, 4) => id = Some(u32::from_be_bytes([v[0], v[1], v[2], v[3]])),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let ((proto, orig), (_, reply)) = (orig?, reply?);
    Some(Flow {
        proto,
        orig,
        reply,
        zone,
        id,
    })
}

fn nla_kind(nla: &DefaultNla) -> u16 {
    use netlink_packet_core::Nla;
    nla.kind()
}

fn nla_value(nla: &DefaultNla) -> Vec<u8> {
    use netlink_packet_core::Nla;
    let mut v = vec![0; nla.value_len()];
    nla.emit_value(&mut v);
    v
}

fn parse_tuple(t: &[Tuple]) -> Option<(u8, Tuple4)> {
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, None, None);
    for part in t {
        match part {
            Tuple::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            Tuple::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(n) => sport = Some(*n),
                        ProtoTuple::DestinationPort(n) => dport = Some(*n),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some((
        proto?,
        Tuple4 {
            src: src?,
            dst: dst?,
            sport: sport?,
            dport: dport?,
        },
    ))
}

thread_local! {
    static OPENED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many ctnetlink sockets the calling thread has opened so far. A
/// diagnostic for tests: an ADD without a UDP mapping must open none.
pub fn sockets_opened_on_this_thread() -> u64 {
    OPENED.with(|c| c.get())
}

/// A ctnetlink socket in the calling thread's network namespace.
struct CtSocket {
    conn: Conn,
    out: Vec<u8>,
}

impl CtSocket {
    fn open() -> Result<CtSocket> {
        OPENED.with(|c| c.set(c.get() + 1));
        let ctx = "open conntrack netlink socket";
        let conn = Conn::open(NETLINK_NETFILTER, ctx, String::new())?;
        Ok(CtSocket {
            conn,
            out: Vec::new(),
        })
    }

    /// Queues one message (sent by [`CtSocket::flush`]); returns its seq.
    fn push(&mut self, fam: NetfilterProtoFamily, msg: ConntrackMessage, flags: u16) -> u32 {
        let nf = NetfilterMessage::new(NetfilterHeader::new(fam, 0, 0), msg);
        self.conn.push(nf, flags, &mut self.out)
    }

    fn flush(&mut self, what: &str) -> Result<()> {
        let buf = std::mem::take(&mut self.out);
        self.conn.send(&buf, what)
    }

    /// `IPCTNL_MSG_CT_GET` with `NLM_F_DUMP` for one family.
    fn dump(&mut self, v6: bool) -> Result<Vec<Flow>> {
        let what = format!("list conntrack {}", if v6 { "ipv6" } else { "ipv4" });
        let nf = NetfilterMessage::new(
            NetfilterHeader::new(family(v6), 0, 0),
            ConntrackMessage::Get(Vec::new()),
        );
        let (replies, _) = self.conn.exchange(nf, NLM_F_DUMP, &what)?;
        let mut out = Vec::new();
        for m in replies {
            if let NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(ConntrackMessage::New(attrs)),
                ..
            } = m
            {
                // The dump is per family, but check: a v4 match must never
                // select a v6 flow.
                out.extend(parse_flow(&attrs).filter(|f| f.is_v6() == v6));
            }
        }
        Ok(out)
    }

    /// One `IPCTNL_MSG_CT_DELETE` per flow, by original tuple, zone and id,
    /// in one datagram; a flow already gone (ENOENT) counts as deleted.
    fn delete(&mut self, flows: &[Flow]) -> Result<()> {
        let mut seqs = Vec::with_capacity(flows.len());
        for f in flows {
            let mut attrs = vec![ConntrackAttribute::CtaTupleOrig(tuple(f.proto, &f.orig))];
            if f.zone != 0 {
                attrs.push(ConntrackAttribute::Other(DefaultNla::new(
                    CTA_ZONE,
                    f.zone.to_be_bytes().to_vec(),
                )));
            }
            if let Some(id) = f.id {
                attrs.push(ConntrackAttribute::Other(DefaultNla::new(
                    CTA_ID,
                    id.to_be_bytes().to_vec(),
                )));
            }
            seqs.push(self.push(
                family(f.is_v6()),
                ConntrackMessage::Delete(attrs),
                NLM_F_ACK,
            ));
        }
        let what = format!(
            "delete {} conntrack entries ({} ...)",
            flows.len(),
            flows.first().map(describe).unwrap_or_default()
        );
        self.flush(&what)?;
        self.acks(&seqs, &what, true)
    }

    /// Waits for the ACK of every `seqs`; the first error wins.
    fn acks(&mut self, seqs: &[u32], what: &str, missing_ok: bool) -> Result<()> {
        let mut answers = vec![None; seqs.len()];
        self.conn
            .acks::<NetfilterMessage>(seqs, &mut answers, None, what, drop)?;
        let first = answers.into_iter().find_map(|a| match a {
            Some(Err(nack)) if !(missing_ok && nack.errno == libc::ENOENT) => {
                Some(nack.error(what, "", ""))
            }
            _ => None,
        });
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
#[path = "conntrack_tests.rs"]
mod tests;
