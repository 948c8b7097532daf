//! The containers of a rule set: tables, chains and named sets/maps, as
//! messages of a transaction (`add table`, `add chain`, `add set`/`add
//! map`, `flush chain`), encoded as `nft` 1.0.6 encodes them (attribute
//! order from `nft --debug=mnl`). `add` semantics throughout: the messages
//! carry `NLM_F_CREATE` without `NLM_F_EXCL`, so an object that already
//! exists with the same definition is left as it is.

use netlink_packet_core::NLM_F_CREATE;

use super::attrs::{attr_str, parse_attrs, Attrs};
use super::rule::{NFTA_RULE_CHAIN, NFTA_RULE_TABLE};
use super::socket::{BatchMsg, NfMsg, NfSocket};
use super::uapi::{family_name, NFNL_SUBSYS_NFTABLES, NFT_MSG_DELRULE};
use crate::error::Result;

// enum nf_tables_msg_types
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_GETCHAIN: u16 = 4;
const NEWCHAIN_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWCHAIN;
const NFT_MSG_NEWSET: u16 = 9;
// enum nft_table_attributes
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
// enum nft_chain_attributes / nft_hook_attributes
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_USE: u16 = 6;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
// enum nft_set_attributes / nft_set_flags
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFT_SET_MAP: u32 = 0x8;

/// A netfilter hook of a nat base chain (linux/netfilter.h
/// `enum nf_inet_hooks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    Prerouting = 0,
    Output = 3,
    Postrouting = 4,
}

/// The data types netboot's sets are made of: nft's datatype ids
/// (`include/datatype.h` `enum datatypes`), which `nft list` reads back to
/// print the elements, and their sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    /// `ipv4_addr` (TYPE_IPADDR)
    Ipv4Addr,
    /// `ipv6_addr` (TYPE_IP6ADDR)
    Ipv6Addr,
    /// `inet_service`, a port (TYPE_INET_SERVICE)
    InetService,
}

impl DataType {
    fn id(self) -> u32 {
        match self {
            DataType::Ipv4Addr => 7,
            DataType::Ipv6Addr => 8,
            DataType::InetService => 13,
        }
    }

    /// Bytes the value takes.
    pub(crate) fn len(self) -> usize {
        match self {
            DataType::Ipv4Addr => 4,
            DataType::Ipv6Addr => 16,
            DataType::InetService => 2,
        }
    }
}

/// nft's id of a concatenation `a . b . c` (`concat_subtype_add`: each
/// type shifted in by `TYPE_BITS` = 6) and its length: in a concatenation
/// every field is padded to a 4-byte register word, as the kernel lays
/// concatenations out; a single field keeps its own size.
fn concat(types: &[DataType]) -> (u32, u32) {
    let id = types.iter().fold(0, |acc, t| (acc << 6) | t.id());
    let len = match types {
        [one] => one.len(),
        _ => types.iter().map(|t| t.len().div_ceil(4) * 4).sum::<usize>(),
    };
    (id, len as u32)
}

/// The bytes of a set key or map data made of `fields` (each in network
/// order), laid out as [`concat`] sizes them.
pub(crate) fn concat_bytes(fields: &[&[u8]]) -> Vec<u8> {
    if let [one] = fields {
        return one.to_vec();
    }
    let mut v = Vec::new();
    for f in fields {
        v.extend_from_slice(f);
        v.resize(v.len().div_ceil(4) * 4, 0);
    }
    v
}

/// `add table FAMILY NAME`.
pub(crate) fn table(family: u8, name: &str) -> BatchMsg {
    let mut a = Attrs::default();
    a.put_str(NFTA_TABLE_NAME, name);
    a.put_u32(NFTA_TABLE_FLAGS, 0);
    BatchMsg {
        msg: NfMsg::nft(NFT_MSG_NEWTABLE, family, &a.buf),
        flags: NLM_F_CREATE,
        op: format!("add table {} {name}", family_name(family)),
    }
}

/// `add chain FAMILY TABLE NAME`, or with `hook` a nat base chain: `{ type
/// nat hook HOOK priority PRIO ; }`.
pub(crate) fn chain(family: u8, table: &str, name: &str, hook: Option<(Hook, i32)>) -> BatchMsg {
    let mut a = Attrs::default();
    a.put_str(NFTA_CHAIN_TABLE, table);
    a.put_str(NFTA_CHAIN_NAME, name);
    if let Some((hook, prio)) = hook {
        a.put_str(NFTA_CHAIN_TYPE, "nat");
        a.nest(NFTA_CHAIN_HOOK, |a| {
            a.put_u32(NFTA_HOOK_HOOKNUM, hook as u32);
            a.put_u32(NFTA_HOOK_PRIORITY, prio as u32);
        });
    }
    BatchMsg {
        msg: NfMsg::nft(NFT_MSG_NEWCHAIN, family, &a.buf),
        flags: NLM_F_CREATE,
        op: format!("add chain {} {table} {name}", family_name(family)),
    }
}

/// `flush chain FAMILY TABLE NAME` (a DELRULE naming no rule).
pub(crate) fn flush_chain(family: u8, table: &str, name: &str) -> BatchMsg {
    let mut a = Attrs::default();
    a.put_str(NFTA_RULE_TABLE, table);
    a.put_str(NFTA_RULE_CHAIN, name);
    BatchMsg {
        msg: NfMsg::nft(NFT_MSG_DELRULE, family, &a.buf),
        flags: 0,
        op: format!("flush chain {} {table} {name}", family_name(family)),
    }
}

/// A named set (`data: None`) or map, hashed (no intervals, no timeouts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetDef<'a> {
    pub name: &'a str,
    pub key: &'a [DataType],
    pub data: Option<&'a [DataType]>,
}

/// `add set|map FAMILY TABLE NAME { type KEY [: DATA] ; }`; `id` lets rules
/// of the same transaction refer to it (`NFTA_LOOKUP_SET_ID`).
pub(crate) fn set(family: u8, table: &str, def: &SetDef, id: u32) -> BatchMsg {
    let mut a = Attrs::default();
    a.put_str(NFTA_SET_TABLE, table);
    a.put_str(NFTA_SET_NAME, def.name);
    a.put_u32(
        NFTA_SET_FLAGS,
        if def.data.is_some() { NFT_SET_MAP } else { 0 },
    );
    let (key_type, key_len) = concat(def.key);
    a.put_u32(NFTA_SET_KEY_TYPE, key_type);
    a.put_u32(NFTA_SET_KEY_LEN, key_len);
    if let Some(data) = def.data {
        let (data_type, data_len) = concat(data);
        a.put_u32(NFTA_SET_DATA_TYPE, data_type);
        a.put_u32(NFTA_SET_DATA_LEN, data_len);
    }
    a.put_u32(NFTA_SET_ID, id);
    let kind = if def.data.is_some() { "map" } else { "set" };
    BatchMsg {
        msg: NfMsg::nft(NFT_MSG_NEWSET, family, &a.buf),
        flags: NLM_F_CREATE,
        op: format!("add {kind} {} {table} {}", family_name(family), def.name),
    }
}

impl NfSocket {
    /// Every chain of table `family table` with its use count (the rules
    /// in it plus the jumps to it, `NFTA_CHAIN_USE`): one dump of that
    /// table's chains, whatever the rules and sets hold. `None` when the
    /// table does not exist.
    pub(crate) fn chain_uses(
        &mut self,
        family: u8,
        table: &str,
        what: &str,
    ) -> Result<Option<Vec<(String, u32)>>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_CHAIN_TABLE, table);
        let Some(msgs) = self.dump(NfMsg::nft(NFT_MSG_GETCHAIN, family, &a.buf), what)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for m in msgs.iter().filter(|m| m.ty == NEWCHAIN_TYPE) {
            let (mut name, mut uses, mut in_table) = (None, 0, false);
            for (ty, v) in parse_attrs(m.body.get(4..).unwrap_or_default()) {
                match ty {
                    NFTA_CHAIN_TABLE => in_table = attr_str(v) == table,
                    NFTA_CHAIN_NAME => name = Some(attr_str(v)),
                    NFTA_CHAIN_USE => {
                        uses = v.try_into().map(u32::from_be_bytes).unwrap_or_default()
                    }
                    _ => {}
                }
            }
            if let (Some(n), true) = (name, in_table) {
                out.push((n, uses));
            }
        }
        // A dump filtered by a table that does not exist is empty.
        Ok((!out.is_empty()).then_some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::super::attrs::tests::tree;
    use super::*;

    /// `add map inet netboot hostports_ip_tcp { type inet_service :
    /// ipv4_addr . inet_service ; }` and `add chain ... { type nat hook
    /// output priority -100 ; }` as `nft --debug=mnl` 1.0.6 sends them
    /// (less the set's userdata, which only `nft` itself reads).
    #[test]
    fn encodes_map_and_base_chain_like_nft() {
        use DataType::*;
        let def = SetDef {
            name: "hostports_ip_tcp",
            key: &[InetService],
            data: Some(&[Ipv4Addr, InetService]),
        };
        let m = set(1, "netboot", &def, 1).msg;
        assert_eq!(tree(&m.body[4..]), include_str!("testdata/map.mnl"));
        assert_eq!(concat(&[Ipv6Addr, InetService]), (0x20d, 20));
        assert_eq!(concat(&[Ipv6Addr, Ipv6Addr]), (0x208, 32));
        let c = chain(1, "netboot", "hostports_output", Some((Hook::Output, -100))).msg;
        assert_eq!(
            tree(&c.body[4..]),
            include_str!("testdata/nat_output_chain.mnl")
        );
        assert_eq!(
            concat_bytes(&[&[10, 0, 0, 2], &80u16.to_be_bytes()]),
            [10, 0, 0, 2, 0, 80, 0, 0]
        );
        assert_eq!(concat_bytes(&[&8080u16.to_be_bytes()]), [0x1f, 0x90]);
    }
}
