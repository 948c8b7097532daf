//! The running agent's state ([`Agent`], whose methods live with what
//! they do: start-up and the event loop in [`super::run`], the lease in
//! [`super::own`], programming in [`super::sync`], lists in
//! [`super::relist`], kernel drift in [`super::drift`], what it tells the
//! outside in [`super::publish`]) and this node's lease ([`Own`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use super::backend::Plane;
use super::held::Held;
use super::iface::External;
use super::observe::Observer;
use super::setup::NetSetup;
use super::store::Store;
use super::AgentArgs;
use crate::lease::SubnetKey;

/// Pause between attempts while etcd or the config is not there yet.
pub const RETRY: Duration = Duration::from_secs(2);

/// This node's lease.
pub struct Own {
    pub key: SubnetKey,
    /// The etcd key.
    pub path: String,
    /// etcd lease id; 0 for a reservation (no TTL).
    pub lease: i64,
    /// When to renew; `None` for a reservation.
    pub renew_at: Option<Instant>,
    /// When the etcd lease runs out (from its grant); `None` for a
    /// reservation.
    pub expires: Option<Instant>,
}

pub(super) struct Agent<'a> {
    pub a: &'a AgentArgs,
    pub store: Store,
    pub ext: External,
    pub net: NetSetup,
    /// One per enabled family, IPv4 first.
    pub planes: Vec<Plane>,
    pub prefix: String,
    pub own: Option<Own>,
    /// Subnets to prefer when acquiring (subnet.env, or the current one).
    pub previous: SubnetKey,
    /// Lease keys already reported as skipped, with the reason.
    pub skipped: BTreeMap<String, String>,
    /// Every other key under the prefix as the watch last told it.
    pub leases: Held,
    /// Keys whose programming failed, retried on [`Agent::retry_at`].
    pub failed: BTreeSet<String>,
    pub retry_at: Option<Instant>,
    /// The pause before the next retry of `failed` (run.rs doubles it).
    pub retry_delay: Duration,
    /// Counts batches of peers programmed or removed (for the metrics).
    pub programmed: u64,
    /// systemd notifications, readiness and metrics.
    pub obs: Observer,
}
