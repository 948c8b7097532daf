//! nf_tables rules: one to append (encoded as libnftnl does), one to
//! delete by handle, and what netboot reads back from a rule dump.

use netlink_packet_core::{NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_ECHO};

use super::attrs::{attr_str, comment_udata, parse_attrs, udata_comment, Attrs};
use super::expr::{summarize, Expr};
use super::socket::{BatchMsg, NfMsg, NfSocket};
use super::uapi::{family_name, NEWRULE_TYPE, NFT_MSG_DELRULE, NFT_MSG_GETRULE, NFT_MSG_NEWRULE};
use crate::error::Result;

// enum nft_rule_attributes
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;

/// A rule to append: `add rule FAMILY TABLE CHAIN <exprs> comment "C"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRule<'a> {
    pub family: u8,
    pub table: &'a str,
    pub chain: &'a str,
    pub exprs: Vec<Expr>,
    /// `comment "C"`, if any.
    pub comment: Option<&'a str>,
}

impl NewRule<'_> {
    /// The NFT_MSG_NEWRULE attributes (after the nfgenmsg).
    pub(crate) fn attrs(&self) -> Result<Vec<u8>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, self.table);
        a.put_str(NFTA_RULE_CHAIN, self.chain);
        a.nest(NFTA_RULE_EXPRESSIONS, |a| {
            for e in &self.exprs {
                e.encode(a);
            }
        });
        if let Some(c) = self.comment {
            a.put(NFTA_RULE_USERDATA, &comment_udata(c)?);
        }
        Ok(a.buf)
    }
}

/// `add rule` of `rule` as a message of a larger transaction.
pub(crate) fn append_rule(rule: &NewRule) -> Result<BatchMsg> {
    Ok(BatchMsg {
        msg: NfMsg::nft(NFT_MSG_NEWRULE, rule.family, &rule.attrs()?),
        flags: NLM_F_CREATE | NLM_F_APPEND,
        op: format!(
            "add rule {} {} {}",
            family_name(rule.family),
            rule.table,
            rule.chain
        ),
    })
}

/// A rule as dumped by the kernel: where it is, its handle, its comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DumpedRule {
    pub family: u8,
    pub table: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    /// [`Expr::summary`] of each expression, in order.
    pub exprs: Vec<String>,
}

/// A rule to delete, by handle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DelRule<'a> {
    pub family: u8,
    pub table: &'a str,
    pub chain: &'a str,
    pub handle: u64,
}

/// Parse one NFT_MSG_NEWRULE (a dump answer) body: nfgenmsg + attributes.
pub(super) fn parse_rule(body: &[u8]) -> Option<DumpedRule> {
    let family = *body.first()?;
    let mut r = DumpedRule {
        family,
        table: String::new(),
        chain: String::new(),
        handle: 0,
        comment: None,
        exprs: Vec::new(),
    };
    let mut has_handle = false;
    for (ty, v) in parse_attrs(body.get(4..)?) {
        match ty {
            NFTA_RULE_TABLE => r.table = attr_str(v),
            NFTA_RULE_CHAIN => r.chain = attr_str(v),
            NFTA_RULE_HANDLE => {
                r.handle = u64::from_be_bytes(v.try_into().ok()?);
                has_handle = true;
            }
            NFTA_RULE_USERDATA => r.comment = udata_comment(v),
            NFTA_RULE_EXPRESSIONS => r.exprs = summarize(v),
            _ => {}
        }
    }
    has_handle.then_some(r)
}

impl NfSocket {
    /// Append `rules` in one transaction (`nft --echo add rule` each, in
    /// order). Returns the rules as the kernel committed them, handles
    /// included (`NLM_F_ECHO`: the commit's notifications come back to this
    /// socket), so that they can later be deleted without listing the table.
    pub(crate) fn add_rules(&mut self, rules: &[NewRule], what: &str) -> Result<Vec<DumpedRule>> {
        let mut msgs = Vec::with_capacity(rules.len());
        for r in rules {
            msgs.push(BatchMsg {
                msg: NfMsg::nft(NFT_MSG_NEWRULE, r.family, &r.attrs()?),
                flags: NLM_F_CREATE | NLM_F_APPEND | NLM_F_ECHO,
                op: format!("add rule {} {} {}", family_name(r.family), r.table, r.chain),
            });
        }
        let echoed = self.batch(msgs, what)?;
        Ok(echoed
            .iter()
            .filter(|m| m.ty == NEWRULE_TYPE)
            .filter_map(|m| parse_rule(&m.body))
            .collect())
    }

    /// Delete `rules` by handle in one transaction.
    pub(crate) fn del_rules(&mut self, rules: &[DelRule], what: &str) -> Result<()> {
        let msgs = rules
            .iter()
            .map(|r| {
                let mut a = Attrs::default();
                a.put_str(NFTA_RULE_TABLE, r.table);
                a.put_str(NFTA_RULE_CHAIN, r.chain);
                a.put_u64(NFTA_RULE_HANDLE, r.handle);
                BatchMsg {
                    msg: NfMsg::nft(NFT_MSG_DELRULE, r.family, &a.buf),
                    flags: 0,
                    op: format!(
                        "delete rule {} {} {} handle {}",
                        family_name(r.family),
                        r.table,
                        r.chain,
                        r.handle
                    ),
                }
            })
            .collect();
        self.batch(msgs, what).map(|_| ())
    }

    /// `nft -a list ... handle H` for one rule: `None` when no rule of
    /// `family table chain` has that handle (or the table is gone). One
    /// lookup, whatever the size of the chain.
    pub(crate) fn get_rule(
        &mut self,
        family: u8,
        table: &str,
        chain: &str,
        handle: u64,
        what: &str,
    ) -> Result<Option<DumpedRule>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, table);
        a.put_str(NFTA_RULE_CHAIN, chain);
        a.put_u64(NFTA_RULE_HANDLE, handle);
        let (rules, _) = self.get_rules(family, &a.buf, NLM_F_ACK, what)?;
        Ok(rules.into_iter().next())
    }

    /// Every rule of table `family table` (none when the table does not
    /// exist).
    pub(crate) fn dump_rules(
        &mut self,
        family: u8,
        table: &str,
        what: &str,
    ) -> Result<Vec<DumpedRule>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, table);
        let msgs = self.dump(NfMsg::nft(NFT_MSG_GETRULE, family, &a.buf), what)?;
        Ok(msgs
            .unwrap_or_default()
            .iter()
            .filter(|m| m.ty == NEWRULE_TYPE)
            .filter_map(|m| parse_rule(&m.body))
            .collect())
    }

    /// One GETRULE and its answers (see [`NfSocket::exchange`]); ENOENT
    /// (no such table, chain or rule) is an empty answer.
    fn get_rules(
        &mut self,
        family: u8,
        attrs: &[u8],
        flags: u16,
        what: &str,
    ) -> Result<(Vec<DumpedRule>, bool)> {
        let msg = NfMsg::nft(NFT_MSG_GETRULE, family, attrs);
        let Some((msgs, interrupted)) = self.exchange(msg, flags, what)? else {
            return Ok((Vec::new(), false));
        };
        let rules = msgs
            .iter()
            .filter(|m| m.ty == NEWRULE_TYPE)
            .filter_map(|m| parse_rule(&m.body))
            .collect();
        Ok((rules, interrupted))
    }
}

#[cfg(test)]
mod tests {
    use super::super::attrs::tests::tree;
    use super::super::expr::{NFT_META_L4PROTO, NFT_REG_1, NFT_REG_2};
    use super::super::uapi::{NFPROTO_IPV4, NFPROTO_IPV6};
    use super::*;

    /// `add rule ip cni_hostport hostports tcp dport 8080 dnat to
    /// 10.0.0.2:80 comment "c1"`, transcribed from `nft --debug=mnl` 1.0.6
    /// (types, nesting, lengths, bytes).
    #[test]
    fn encodes_dnat_rule_exactly_like_nft() {
        let r = NewRule {
            family: NFPROTO_IPV4,
            table: "cni_hostport",
            chain: "hostports",
            exprs: vec![
                Expr::Meta(NFT_META_L4PROTO),
                Expr::CmpEq(vec![6]),
                Expr::dport(NFT_REG_1),
                Expr::CmpEq(8080u16.to_be_bytes().to_vec()),
                Expr::Immediate {
                    reg: NFT_REG_1,
                    data: vec![10, 0, 0, 2],
                },
                Expr::Immediate {
                    reg: NFT_REG_2,
                    data: 80u16.to_be_bytes().to_vec(),
                },
                Expr::Dnat {
                    family: NFPROTO_IPV4,
                    proto_reg: NFT_REG_2,
                    flags: true,
                },
            ],
            comment: Some("c1"),
        };
        let attrs = r.attrs().unwrap();
        // nft's message length was 392 = 16 (nlmsghdr) + 4 (nfgenmsg) + attrs.
        assert_eq!(attrs.len(), 392 - 20);
        assert_eq!(tree(&attrs), include_str!("testdata/dnat_rule.mnl"));
    }

    #[test]
    fn parses_a_dumped_rule() {
        let mut a = Attrs::default();
        a.put_str(NFTA_RULE_TABLE, "cni_hostport");
        a.put_str(NFTA_RULE_CHAIN, "masquerading");
        a.put_u64(NFTA_RULE_HANDLE, 0x1234);
        a.nest(NFTA_RULE_EXPRESSIONS, |a| Expr::Masq.encode(a));
        a.put(NFTA_RULE_USERDATA, &comment_udata("cid").unwrap());
        // nfgenmsg (family, version, res_id) before the attributes.
        let mut body = vec![NFPROTO_IPV6, 0, 0, 0];
        body.extend_from_slice(&a.buf);
        assert_eq!(
            parse_rule(&body),
            Some(DumpedRule {
                family: NFPROTO_IPV6,
                table: "cni_hostport".into(),
                chain: "masquerading".into(),
                handle: 0x1234,
                comment: Some("cid".into()),
                exprs: vec!["masq".into()],
            })
        );
        assert_eq!(parse_rule(&body[..4]), None, "no handle");
    }
}
