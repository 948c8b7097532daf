//! The per-family checks, built on what the family should look like
//! ([`super::want`]): the vxlan device ([`super::vtep`]) and the routes to
//! every other node ([`super::peers`]).

use netkit::Netlink;

use super::ctx::Node;
use super::finding::Finding;
use super::want::{check_name, want};
use super::{peers, vtep};

/// The checks of every enabled family, IPv4 first: its vxlan device
/// (vxlan only) and the routes to every other node.
pub fn family_findings(node: &Node) -> Vec<(bool, Vec<Finding>)> {
    let mut nl = Netlink::open().ok();
    node.families()
        .into_iter()
        .map(|v6| {
            let vxlan = node.settings().is_none_or(|s| s.is_vxlan());
            let findings = match (want(node, v6), nl.as_mut()) {
                (_, None) => vec![Finding::problem(
                    check_name("peers", v6),
                    "cannot open netlink to read the network setup",
                    "run doctor as root, in the node's network namespace",
                )],
                (Err(why), Some(_)) => {
                    let mut f = Vec::new();
                    if vxlan {
                        f.push(Finding::skipped(check_name("vtep", v6), why.clone()));
                    }
                    f.push(Finding::skipped(check_name("peers", v6), why));
                    f
                }
                (Ok(w), Some(nl)) => {
                    let mut f = Vec::new();
                    if w.device().is_some() {
                        f.push(vtep::device(&w, nl));
                    }
                    f.push(peers::check(node, &w, nl));
                    f
                }
            };
            (v6, findings)
        })
        .collect()
}
