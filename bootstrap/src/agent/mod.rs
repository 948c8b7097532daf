//! `netboot agent` and `netboot leave`: a flanneld-compatible node agent
//! (etcd subnet lease, vxlan or host-gw backend, IPv4 and/or IPv6,
//! subnet.env) and its undo.
//!
//! - [`args`]: the options of `agent` and `leave`; [`log`]: the agent's
//!   log lines.
//! - [`iface`]: choosing the public interface and addresses as flanneld does.
//! - [`store`]: etcd with one-member-at-a-time failover.
//! - [`follow`]: the lease watch: resumed from the last revision applied,
//!   checked with progress requests, listed again only when etcd cannot
//!   resume it.
//! - [`backend`]: the kernel side per family (vxlan devices or host-gw
//!   routes, DirectRouting, cni0).
//! - [`setup`]: the config as the agent runs it, and the data planes.
//! - [`run`]: start-up and the event loop.
//! - [`own`]: this node's lease: acquisition, reservations; [`renew`]:
//!   its renewal. [`state`]: the running agent's state.
//! - [`sync`]: the node's setup and every other lease programmed, a burst
//!   of watch events at a time.
//! - [`relist`]: the rare O(N) work: lists, the kernel compare
//!   (`--resync-interval`), device rebuilds.
//! - [`drift`]: kernel notifications acted on (entries put back).
//! - [`env`]: flannel's subnet.env, written atomically.
//! - [`leave`]: release the lease and remove what the agent set up.
//! - [`lock`]: one agent per network namespace.
//! - [`wake`]: kernel notifications, jittered backoff.
//! - [`observe`]: what the agent tells the outside: systemd notifications
//!   ([`notify`]), `/healthz`, `/readyz` and `/metrics` ([`health`],
//!   [`metrics`]).

mod args;
mod backend;
mod drift;
mod env;
mod etcd_errors;
mod follow;
mod health;
mod held;
pub mod iface;
mod leave;
pub mod lock;
mod log;
mod metrics;
mod notify;
mod observe;
mod own;
#[cfg(test)]
mod own_tests;
mod publish;
mod relist;
mod renew;
mod run;
mod setup;
mod state;
mod store;
mod sync;
mod wake;

pub use args::{AgentArgs, IfaceArgs, LeaveArgs};
pub use leave::leave_cmd;
pub use log::{debug, log, verbosity_level};
pub use run::agent_cmd;
pub use sync::RULE_TAG;
