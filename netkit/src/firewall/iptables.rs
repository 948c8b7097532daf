//! The iptables side of the node: one reader (`iptables-save -t TABLE` of
//! a family) and one writer (`iptables-restore --noflush`), used by the
//! legacy portmap cleanup, the FORWARD accept rules, and the read-only
//! queries `CHECK` and `netboot doctor` ask ([`portmap_dnat_present`],
//! [`flanneld_masquerade_present`]).
//!
//! Through the binaries rather than nft: rules written by iptables live
//! wherever the node's iptables puts them (legacy xtables or iptables-nft),
//! and only the same binaries read them back faithfully.

use ipnet::IpNet;

use super::exec;
use crate::error::{Error, Result};

/// `iptables-save` or `ip6tables-save`.
fn save_tool(v6: bool) -> &'static str {
    if v6 {
        "ip6tables-save"
    } else {
        "iptables-save"
    }
}

/// The rules of `table` for one family, as `iptables-save -t TABLE` (or
/// `ip6tables-save`) prints them. A table the kernel has not loaded reads
/// as empty (iptables says "Table does not exist"): nothing is in it.
/// Fails with [`Error::ToolMissing`] when iptables is not installed, which
/// callers that only clean up treat as "nothing to do".
pub(crate) fn save(ctx: &str, v6: bool, table: &str) -> Result<String> {
    match exec::run(ctx, save_tool(v6), &["-t", table], None) {
        Ok(o) => Ok(o.stdout),
        Err(Error::Command { stderr, .. }) if stderr.contains("does not exist") => {
            Ok(String::new())
        }
        Err(e) => Err(e),
    }
}

/// Feeds `script` to `iptables-restore --noflush` (or `ip6tables-restore`):
/// one atomic commit of the tables it names, other rules untouched.
pub(crate) fn restore(ctx: &str, v6: bool, script: &str) -> Result<()> {
    let tool = if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    };
    exec::run(ctx, tool, &["--noflush"], Some(script)).map(|_| ())
}

/// Whether `iptables-restore` (or `ip6tables-restore`) is installed.
pub(crate) fn can_restore(v6: bool) -> bool {
    exec::find_tool(if v6 {
        "ip6tables-restore"
    } else {
        "iptables-restore"
    })
    .is_some()
}

/// Whether the reference portmap's iptables backend has rules for
/// (network, container) in the family's `nat` table: it tags each with the
/// comment `dnat name: "<network>" id: "<container>"` (plugins/meta/portmap
/// `portmap_iptables.go`, `utils.FormatComment`), which iptables-save
/// prints with its quotes escaped or, in older versions, not.
pub fn portmap_dnat_present(v6: bool, network: &str, container_id: &str) -> Result<bool> {
    let ctx = format!("look for the port mapping rules of {container_id} in {network}");
    Ok(portmap_tagged(
        &save(&ctx, v6, "nat")?,
        network,
        container_id,
    ))
}

fn portmap_tagged(dump: &str, network: &str, container_id: &str) -> bool {
    let tag = format!("dnat name: \\\"{network}\\\" id: \\\"{container_id}\\\"");
    dump.contains(&tag) || dump.contains(&tag.replace('\\', ""))
}

/// Whether flanneld's own masquerade rule for `subnet` is in place: a node
/// run by flanneld masquerades in `nat` chain `FLANNEL-POSTRTG`
/// (`-A FLANNEL-POSTRTG -s <subnet> ... -j MASQUERADE`).
pub fn flanneld_masquerade_present(subnet: IpNet) -> Result<bool> {
    let ctx = format!("look for flanneld's masquerade rule of {subnet}");
    let dump = save(&ctx, matches!(subnet, IpNet::V6(_)), "nat")?;
    Ok(has_flanneld_masquerade(&dump, subnet))
}

fn has_flanneld_masquerade(dump: &str, subnet: IpNet) -> bool {
    let want = format!("-A FLANNEL-POSTRTG -s {subnet} ");
    dump.lines()
        .any(|l| l.starts_with(&want) && l.contains("MASQUERADE"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portmap_rules_are_told_by_their_comment_escaped_or_not() {
        let rule = r#"-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \"cbr0\" id: \"c1\"" -m multiport --dports 8080 -j CNI-DN-1"#;
        assert!(portmap_tagged(rule, "cbr0", "c1"));
        assert!(portmap_tagged(&rule.replace('\\', ""), "cbr0", "c1"));
        assert!(!portmap_tagged(rule, "cbr0", "c2"));
        assert!(!portmap_tagged(rule, "other", "c1"));
    }

    #[test]
    fn flanneld_rule_is_told_by_chain_source_and_target() {
        let sn: IpNet = "10.2.3.0/24".parse().unwrap();
        let dump = "*nat\n:FLANNEL-POSTRTG - [0:0]\n\
            -A FLANNEL-POSTRTG -s 10.2.0.0/16 -d 10.2.0.0/16 -j RETURN\n\
            -A FLANNEL-POSTRTG -s 10.2.3.0/24 ! -d 224.0.0.0/4 -m comment --comment \"flanneld masq\" -j MASQUERADE --random-fully\nCOMMIT\n";
        assert!(has_flanneld_masquerade(dump, sn));
        assert!(!has_flanneld_masquerade(
            dump,
            "10.2.4.0/24".parse().unwrap()
        ));
        assert!(!has_flanneld_masquerade(
            &dump.replace("MASQUERADE", "RETURN"),
            sn
        ));
    }
}
