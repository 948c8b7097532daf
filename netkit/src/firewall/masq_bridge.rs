//! Upstream bridge's per-attachment `ipMasq` in its nftables layout
//! (containernetworking/plugins `pkg/ip/ipmasq_nftables_linux.go`): table
//! `inet cni_plugins_masquerade`, chain `masq_checks`, one rule per pod
//! address commented with `<hash(net)>-<hash(ifname:id)>, net: .., if: ..,
//! id: ..`.
//!
//! Test-only: no netboot code path writes this layout (the reference
//! bridge plugin writes and deletes its own rules, and netboot's native
//! mode masquerades per node, see `masq`). The writer stays to pin down
//! what bridge's rules look like, against the real kernel below.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use super::hash::hash_with_prefix;
use super::masq::fam;
use super::nft::{self, check_ident, quote_comment, ListedRule};
use crate::error::Result;

const ATT_TABLE: &str = "inet cni_plugins_masquerade";
const ATT_CHAIN: &str = "masq_checks";

/// bridge's `hashForInstance`: 16 hex digits of sha512(network), `-`,
/// 16 hex digits of sha512(ifname:containerID).
fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        hash_with_prefix(16, "", network),
        hash_with_prefix(16, "", &format!("{ifname}:{container_id}"))
    )
}

/// bridge's `commentForInstance`, cut to 128 bytes like knftables'
/// `CommentLengthMax`.
pub(crate) fn attachment_masquerade_comment(
    network: &str,
    ifname: &str,
    container_id: &str,
) -> String {
    let mut c = format!(
        "{}, net: {network}, if: {ifname}, id: {container_id}",
        instance_hash(network, ifname, container_id)
    );
    c.truncate(128);
    c
}

fn att_ctx(verb: &str, network: &str, ifname: &str, id: &str) -> Result<String> {
    let ctx = format!("{verb} masquerade for {id}/{ifname} ({network}) in {ATT_TABLE} {ATT_CHAIN}");
    check_ident(&ctx, "network name", network)?;
    check_ident(&ctx, "interface name", ifname)?;
    check_ident(&ctx, "container ID", id)?;
    Ok(ctx)
}

fn list_instance(ctx: &str, hash: &str) -> Result<Vec<ListedRule>> {
    let listed = nft::list(ctx, "inet", "cni_plugins_masquerade", Some(ATT_CHAIN))?;
    Ok(listed
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.comment.as_deref().is_some_and(|c| c.starts_with(hash)))
        .collect())
}

/// bridge `ipMasq` for one attachment: for each pod address `ip/len`,
/// masquerade `saddr ip` to anything outside `ip/len`'s subnet. Replaces
/// this attachment's previous rules in the same transaction (one list, one
/// transaction, as upstream).
pub(crate) fn add_attachment_masquerade(
    network: &str,
    ifname: &str,
    container_id: &str,
    addrs: &[IpNet],
) -> Result<()> {
    let ctx = att_ctx("add", network, ifname, container_id)?;
    let comment = quote_comment(
        &ctx,
        &attachment_masquerade_comment(network, ifname, container_id),
    )?;
    let stale = list_instance(&ctx, &instance_hash(network, ifname, container_id))?;
    let mut s = format!(
        "add table {ATT_TABLE} {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\" ; }}\n\
         add chain {ATT_TABLE} {ATT_CHAIN} {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\" ; }}\n\
         add chain {ATT_TABLE} postrouting {{ type nat hook postrouting priority 100 ; }}\n\
         flush chain {ATT_TABLE} postrouting\n\
         add rule {ATT_TABLE} postrouting ip daddr 224.0.0.0/4 return\n\
         add rule {ATT_TABLE} postrouting ip6 daddr ff00::/8 return\n\
         add rule {ATT_TABLE} postrouting goto {ATT_CHAIN}\n"
    );
    s.push_str(&nft::delete_lines(
        "cni_plugins_masquerade",
        &stale.iter().collect::<Vec<_>>(),
    ));
    for a in addrs {
        let (f, ip): (&str, IpAddr) = (fam(a), a.addr());
        let _ = writeln!(
            s,
            "add rule {ATT_TABLE} {ATT_CHAIN} {f} saddr {ip} {f} daddr != {} masquerade comment {comment}",
            a.trunc()
        );
    }
    nft::apply(&ctx, &s)
}

/// Remove one attachment's bridge-style masquerade rules. Idempotent.
pub(crate) fn del_attachment_masquerade(
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<()> {
    let ctx = att_ctx("delete", network, ifname, container_id)?;
    let stale = list_instance(&ctx, &instance_hash(network, ifname, container_id))?;
    if stale.is_empty() {
        return Ok(());
    }
    nft::apply(
        &ctx,
        &nft::delete_lines("cni_plugins_masquerade", &stale.iter().collect::<Vec<_>>()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{create_named, delete_named, Netns};

    #[test]
    fn bridge_comment() {
        // python3: sha512(b"cbrtest")[:16] + "-" + sha512(b"eth0:cid1")[:16]
        assert_eq!(
            attachment_masquerade_comment("cbrtest", "eth0", "cid1"),
            "ab029c805a524413-0b65a318f52e521b, net: cbrtest, if: eth0, id: cid1"
        );
        let long = "c".repeat(120);
        assert_eq!(attachment_masquerade_comment("n", "eth0", &long).len(), 128);
    }

    /// A throwaway named netns, deleted on drop.
    struct Ns(String, Netns);

    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = delete_named(&self.0);
        }
    }

    #[test]
    fn attachment_masquerade_uses_bridge_layout() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let name = format!("nk-unit-masq-{}", std::process::id());
        let path = create_named(&name).unwrap();
        let ns = Ns(name.clone(), Netns::open(&path).unwrap());
        let addrs: [IpNet; 2] = [
            "10.99.0.5/24".parse().unwrap(),
            "fd99::5/64".parse().unwrap(),
        ];
        let listed = |chain: &'static str| {
            ns.1.run(|| nft::list("test", "inet", "cni_plugins_masquerade", Some(chain)))
                .unwrap()
                .unwrap()
                .unwrap_or_default()
        };
        for _ in 0..2 {
            ns.1.run(|| add_attachment_masquerade("cbr0", "eth0", "cid-m", &addrs))
                .unwrap()
                .unwrap();
        }
        let want = attachment_masquerade_comment("cbr0", "eth0", "cid-m");
        let r = listed(ATT_CHAIN);
        assert_eq!(r.len(), 2, "a second ADD replaces, not duplicates");
        assert!(r
            .iter()
            .all(|x| x.comment.as_deref() == Some(want.as_str())));
        assert!(
            r[0].text.contains("ip daddr != 10.99.0.0/24"),
            "{}",
            r[0].text
        );
        let post = listed("postrouting");
        assert_eq!(post.len(), 3);
        assert!(
            post[2].text.ends_with("goto masq_checks"),
            "{}",
            post[2].text
        );
        for _ in 0..2 {
            ns.1.run(|| del_attachment_masquerade("cbr0", "eth0", "cid-m"))
                .unwrap()
                .unwrap();
        }
        assert!(listed(ATT_CHAIN).is_empty());
    }
}
