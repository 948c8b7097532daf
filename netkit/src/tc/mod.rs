//! Traffic control (`tc`), through [`Netlink::tc`]: queueing disciplines
//! and filters, one file per
//! kernel object: [`tbf`] (the token bucket filter and its arithmetic),
//! `filter` (a match-everything u32 filter redirecting to another
//! device); `handle` (the
//! [`TrafficHandle`] the verbs hang on); the `ingress` qdisc and the
//! qdisc listing live here.
//!
//! Built on netlink-packet-route's `TcMessage`. It knows `ingress`, `u32`
//! and `mirred` but not `tbf`, whose options are therefore encoded here
//! (`TCA_TBF_*`, linux/pkt_sched.h).

mod filter;
mod handle;
mod tbf;

use netlink_packet_core::{Nla, NlasIterator};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};
pub use handle::{TrafficHandle, INGRESS_HANDLE};
pub use tbf::{tick_in_usec, TbfParams};

/// A queueing discipline as the kernel reports it (`tc qdisc show`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    /// ifindex of the device it is attached to.
    pub index: u32,
    /// "tbf", "ingress", "noqueue", ...
    pub kind: String,
    pub handle: TcHandle,
    pub parent: TcHandle,
    /// The token bucket's parameters, for a `tbf`.
    pub tbf: Option<TbfParams>,
}

impl Qdisc {
    fn from_msg(msg: &TcMessage) -> Qdisc {
        let mut q = Qdisc {
            index: u32::try_from(msg.header.index).unwrap_or_default(),
            kind: String::new(),
            handle: msg.header.handle,
            parent: msg.header.parent,
            tbf: None,
        };
        for attr in &msg.attributes {
            match attr {
                TcAttribute::Kind(k) => q.kind = k.clone(),
                TcAttribute::Options(opts) => q.tbf = tbf_options(opts),
                _ => {}
            }
        }
        if q.kind != "tbf" {
            q.tbf = None;
        }
        q
    }

    /// Attached at the device's root (`tc qdisc ... root`).
    pub fn is_root(&self) -> bool {
        self.parent == TcHandle::ROOT
    }
}

/// netlink-packet-route hands the options of a kind it does not know as
/// one opaque attribute holding the nested `TCA_TBF_*` attributes.
fn tbf_options(opts: &[TcOption]) -> Option<TbfParams> {
    opts.iter().find_map(|o| match o {
        TcOption::Other(nla) => {
            let mut nested = vec![0u8; nla.value_len()];
            nla.emit_value(&mut nested);
            let attrs = NlasIterator::new(&nested[..])
                .filter_map(|a| a.ok())
                .map(|a| (a.kind(), a.value().to_vec()));
            tbf::parse(attrs)
        }
        _ => None,
    })
}

impl TrafficHandle<'_> {
    /// `tc qdisc show dev IDX`: the qdiscs of one device.
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<Qdisc>> {
        let what = format!("list qdiscs of link #{index}");
        let msg = TcMessage::with_index(i32::try_from(index).unwrap_or_default());
        let replies = self
            .0
            .dump(RouteNetlinkMessage::GetQueueDiscipline(msg), &what)?;
        // The kernel dumps every device's qdiscs: filter here (as tc does).
        Ok(replies
            .iter()
            .filter_map(|r| match r {
                RouteNetlinkMessage::NewQueueDiscipline(m) => Some(Qdisc::from_msg(m)),
                _ => None,
            })
            .filter(|q| q.index == index)
            .collect())
    }

    /// `tc qdisc add dev IDX handle ffff: ingress`: the hook that lets
    /// filters act on what the device receives.
    pub fn add_ingress(&mut self, index: u32) -> Result<()> {
        let mut msg = TcMessage::with_index(i32::try_from(index).unwrap_or_default());
        msg.header.handle = INGRESS_HANDLE;
        msg.header.parent = TcHandle::INGRESS;
        msg.attributes.push(TcAttribute::Kind("ingress".into()));
        let req = Request::new(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            CREATE_EXCL,
            format!("add ingress qdisc to link #{index}"),
        );
        self.0.exec(req)
    }
}
