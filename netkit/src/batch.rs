//! Several neighbour / FDB / route changes in one round trip.
//!
//! flannel's vxlan backend programs three objects per remote node (ARP entry,
//! FDB entry, onlink route) and tears down three on removal; a node joining
//! a 100-node cluster would otherwise make 300 round trips.

use std::net::IpAddr;

use crate::error::Result;
use crate::neigh::req as neigh;
use crate::route::{req as route, RouteSpec};
use crate::socket::{Netlink, Request};

/// An ordered list of requests sent with [`Netlink::apply`]. Each method
/// mirrors a verb of [`Netlink::neigh`] or [`Netlink::route`], with the same
/// semantics (deletes are idempotent).
#[derive(Debug, Default)]
pub struct Batch {
    reqs: Vec<Request>,
}

impl Batch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.reqs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// See [`NeighHandle::add`](crate::NeighHandle::add).
    pub fn add_neigh(&mut self, index: u32, ip: IpAddr, mac: [u8; 6]) -> &mut Self {
        self.push(neigh::add_neigh(index, ip, mac))
    }

    /// See [`NeighHandle::del`](crate::NeighHandle::del).
    pub fn del_neigh(&mut self, index: u32, ip: IpAddr) -> &mut Self {
        self.push(neigh::del_neigh(index, ip))
    }

    /// See [`NeighHandle::add_fdb`](crate::NeighHandle::add_fdb) (replace semantics).
    pub fn add_fdb(&mut self, index: u32, mac: [u8; 6], dst: IpAddr) -> &mut Self {
        self.push(neigh::add_fdb(index, mac, dst))
    }

    /// See [`NeighHandle::del_fdb`](crate::NeighHandle::del_fdb).
    pub fn del_fdb(&mut self, index: u32, mac: [u8; 6], dst: Option<IpAddr>) -> &mut Self {
        self.push(neigh::del_fdb(index, mac, dst))
    }

    /// See [`RouteHandle::add`](crate::RouteHandle::add). Fails early on an invalid spec.
    pub fn add_route(&mut self, r: &RouteSpec) -> Result<&mut Self> {
        Ok(self.push(route::add_route(r)?))
    }

    /// See [`RouteHandle::replace`](crate::RouteHandle::replace). Fails early on an invalid spec.
    pub fn replace_route(&mut self, r: &RouteSpec) -> Result<&mut Self> {
        Ok(self.push(route::replace_route(r)?))
    }

    /// See [`RouteHandle::del`](crate::RouteHandle::del). Fails early on an invalid spec.
    pub fn del_route(&mut self, r: &RouteSpec) -> Result<&mut Self> {
        Ok(self.push(route::del_route(r)?))
    }

    fn push(&mut self, r: Request) -> &mut Self {
        self.reqs.push(r);
        self
    }
}

/// Requests per datagram. The kernel runs a datagram's requests inside our
/// `sendmsg` and queues every ACK at once, each an skb of about 1 KiB
/// truesize: past the default receive buffer (208 KiB) ACKs would be
/// dropped (ENOBUFS), so a big batch (a thousand peers joining is 3000
/// requests) goes in datagrams of this many, one round trip each.
const PER_DATAGRAM: usize = 64;

impl Netlink {
    /// Send the requests of `batch` in as few datagrams as the kernel's
    /// buffers allow (one for up to 64 requests) and return one result per
    /// request, in order. The kernel keeps going after a failure, so check
    /// each result; [`first_error`] folds them for the common case.
    pub fn apply(&mut self, batch: Batch) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(batch.reqs.len());
        let mut reqs = batch.reqs.into_iter().peekable();
        while reqs.peek().is_some() {
            let chunk: Vec<Request> = reqs.by_ref().take(PER_DATAGRAM).collect();
            out.extend(self.exec_all(chunk));
        }
        out
    }
}

/// The first error of a batch's results, if any.
pub fn first_error(results: Vec<Result<()>>) -> Result<()> {
    results.into_iter().collect()
}
