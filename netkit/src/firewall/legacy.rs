//! Removing what the reference portmap's *iptables* backend left behind.
//!
//! That backend (containernetworking/plugins `plugins/meta/portmap/
//! portmap_iptables.go`) keeps one chain per container in table `nat`,
//! `CNI-DN-<hash>` (and, from old versions, `CNI-SN-<hash>`), reached from
//! `CNI-HOSTPORT-DNAT` (resp. `CNI-HOSTPORT-SNAT`) by multiport jump rules.
//! A node that switched from the reference chain to native mode must still
//! be able to tear those down, or stale DNAT keeps stealing a hostPort from
//! the next pod that uses it (plugins#683). Everything else in `nat`
//! (the shared CNI-HOSTPORT-* chains, kube-proxy, Docker...) is left alone.
//!
//! Cost: one `iptables-save -t nat` per family and, only when the
//! container's chain exists, one `iptables-restore --noflush` that deletes
//! the jumps, flushes and deletes the chain atomically.

use std::fmt::Write as _;

use super::hash::hash_with_prefix;
use super::iptables;
use crate::error::{Error, Result};

/// The reference portmap's per-container DNAT chain in iptables `nat`:
/// `CNI-DN-` + the first 21 hex digits of sha512(network + containerID)
/// (28 characters, `utils.MustFormatChainNameWithPrefix`).
pub fn legacy_dnat_chain(network: &str, container_id: &str) -> String {
    hash_with_prefix(28, "CNI-DN-", &format!("{network}{container_id}"))
}

fn legacy_snat_chain(network: &str, container_id: &str) -> String {
    hash_with_prefix(28, "CNI-SN-", &format!("{network}{container_id}"))
}

/// Remove `CNI-DN-<hash>` / `CNI-SN-<hash>` of (network, container) and
/// every rule jumping to them, in IPv4 and IPv6 `nat`. Idempotent; a node
/// without iptables (or without a `nat` table) has nothing to clean.
/// Network name and container ID are only hashed, never interpolated.
pub fn cleanup_legacy_portmap(network: &str, container_id: &str) -> Result<()> {
    let chains = [
        legacy_dnat_chain(network, container_id),
        legacy_snat_chain(network, container_id),
    ];
    remove_nat_chains(network, container_id, &chains)
}

/// The reference bridge's per-container masquerade chain in iptables
/// `nat` (`ipMasq`, `ip.SetupIPMasq`): `CNI-` + the first 24 hex digits
/// of sha512(network + containerID) (`utils.FormatChainName`), reached
/// from `POSTROUTING` by `-s <pod IP> -j <chain>`.
pub fn bridge_masq_chain(network: &str, container_id: &str) -> String {
    hash_with_prefix(28, "CNI-", &format!("{network}{container_id}"))
}

/// Remove the reference bridge's masquerade chain of (network, container)
/// and the `POSTROUTING` jumps to it, in IPv4 and IPv6 `nat`. bridge
/// itself tears it down only when its DEL still finds the pod's interface
/// with its addresses: never with an empty `CNI_NETNS` (plugins#810, so
/// never from GC) nor after an earlier, interrupted DEL already removed
/// the interface. Idempotent; touches no other container's chain.
pub fn cleanup_bridge_masquerade(network: &str, container_id: &str) -> Result<()> {
    remove_nat_chains(
        network,
        container_id,
        &[bridge_masq_chain(network, container_id)],
    )
}

/// Deletes `chains` and every rule jumping to them from iptables and
/// ip6tables `nat`, where present.
fn remove_nat_chains(network: &str, container_id: &str, chains: &[String]) -> Result<()> {
    for v6 in [false, true] {
        let ctx = format!(
            "remove {}iptables chain {} ({network}, {container_id})",
            if v6 { "ip6" } else { "" },
            chains[0]
        );
        let dump = match iptables::save(&ctx, v6, "nat") {
            Ok(dump) => dump,
            Err(Error::ToolMissing { .. }) => continue,
            Err(e) => return Err(e),
        };
        if let Some(script) = teardown_script(&dump, chains) {
            iptables::restore(&ctx, v6, &script)?;
        }
    }
    Ok(())
}

/// The restore input deleting `chains` found in `dump` (an
/// `iptables-save -t nat` output), or `None` when none of them exists.
/// Jump rules are fed back exactly as iptables-save printed them, with
/// `-A` turned into `-D`, which is how iptables-restore matches a rule.
fn teardown_script(dump: &str, chains: &[String]) -> Option<String> {
    let present: Vec<&String> = chains
        .iter()
        .filter(|c| dump.lines().any(|l| l.starts_with(&format!(":{c} "))))
        .collect();
    if present.is_empty() {
        return None;
    }
    let mut s = String::from("*nat\n");
    for c in &present {
        let jump = format!(" -j {c}");
        for l in dump.lines() {
            if let Some(rest) = l.strip_prefix("-A ") {
                let from = rest.split(' ').next().unwrap_or_default();
                if from != c.as_str() && l.ends_with(&jump) {
                    let _ = writeln!(s, "-D {rest}");
                }
            }
        }
    }
    for c in &present {
        let _ = writeln!(s, "-F {c}\n-X {c}");
    }
    s.push_str("COMMIT\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_match_portmap() {
        // python3: "CNI-DN-" + sha512(b"cbrtestcid1").hexdigest()[:21]
        assert_eq!(
            legacy_dnat_chain("cbrtest", "cid1"),
            "CNI-DN-3559618f612683956afb4"
        );
    }

    #[test]
    fn masquerade_chain_names_match_bridge() {
        // python3: "CNI-" + sha512(b"cbr0ctr-c1-26916-6-k").hexdigest()[:24],
        // and the chain the reference bridge made for that container.
        assert_eq!(
            bridge_masq_chain("cbr0", "ctr-c1-26916-6-k"),
            "CNI-a392843087a2a48cb33fd9f3"
        );
    }

    #[test]
    fn script_deletes_only_that_chain() {
        let c = legacy_dnat_chain("n", "a");
        let other = legacy_dnat_chain("n", "b");
        let dump = format!(
            "*nat\n:PREROUTING ACCEPT [0:0]\n:{c} - [0:0]\n:{other} - [0:0]\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"n\\\" id: \\\"a\\\"\" -m multiport --dports 80 -j {c}\n\
             -A CNI-HOSTPORT-DNAT -p tcp -m multiport --dports 81 -j {other}\n\
             -A {c} -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.2:80\nCOMMIT\n"
        );
        let s = teardown_script(&dump, &[c.clone(), legacy_snat_chain("n", "a")]).unwrap();
        assert_eq!(
            s,
            format!(
                "*nat\n-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment \"dnat name: \\\"n\\\" id: \\\"a\\\"\" -m multiport --dports 80 -j {c}\n\
                 -F {c}\n-X {c}\nCOMMIT\n"
            )
        );
        assert!(teardown_script("*nat\nCOMMIT\n", &[c]).is_none());
    }
}
