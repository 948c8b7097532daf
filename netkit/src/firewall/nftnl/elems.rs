//! Elements of named sets and maps: add and delete (in one transaction),
//! look one up by key, dump a set. Element changes are data: unlike a rule,
//! adding or deleting one does not make the kernel re-validate the table
//! (`nft_table_validate` runs for rule and chain changes only), so their
//! cost does not grow with the rule set.
//!
//! Encoded as `nft add element` / `delete element` / `get element` (nft
//! 1.0.6, `--debug=mnl`); an element's comment is the userdata TLV `nft`
//! writes for `comment "..."` (libnftnl `NFTNL_UDATA_SET_ELEM_COMMENT`, the
//! same type 0 as a rule comment's).

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL};

use super::attrs::{attr_str, comment_udata, parse_attrs, udata_comment, Attrs};
use super::expr::{NFTA_DATA_VALUE, NFTA_LIST_ELEM};
use super::socket::{BatchMsg, NfMsg, NfSocket};
use super::uapi::{family_name, NFNL_SUBSYS_NFTABLES};
use crate::error::Result;

// enum nf_tables_msg_types
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;
const NEWSETELEM_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
// enum nft_set_elem_list_attributes
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
// enum nft_set_elem_attributes
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_USERDATA: u16 = 6;

/// One element: its key, its data (maps only) and its comment, each value
/// as the kernel stores it (see [`super::objects::concat_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetElem {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
    pub comment: Option<String>,
}

/// Where an element lives: `family table set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetRef<'a> {
    pub family: u8,
    pub table: &'a str,
    pub set: &'a str,
}

impl SetRef<'_> {
    fn name(&self) -> String {
        format!("{} {} {}", family_name(self.family), self.table, self.set)
    }
}

/// The message body of `ty` for `elems` of `set` (keys only unless `full`).
fn elems_msg(ty: u16, set: SetRef, elems: &[&SetElem], full: bool) -> Result<NfMsg> {
    let mut a = Attrs::default();
    a.put_str(NFTA_SET_ELEM_LIST_TABLE, set.table);
    a.put_str(NFTA_SET_ELEM_LIST_SET, set.set);
    let mut udata = Vec::with_capacity(elems.len());
    for e in elems {
        udata.push(match (&e.comment, full) {
            (Some(c), true) => Some(comment_udata(c)?),
            _ => None,
        });
    }
    a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |a| {
        for (e, u) in elems.iter().zip(&udata) {
            a.nest(NFTA_LIST_ELEM, |a| {
                a.nest(NFTA_SET_ELEM_KEY, |a| a.put(NFTA_DATA_VALUE, &e.key));
                if let (Some(d), true) = (&e.data, full) {
                    a.nest(NFTA_SET_ELEM_DATA, |a| a.put(NFTA_DATA_VALUE, d));
                }
                if let Some(u) = u {
                    a.put(NFTA_SET_ELEM_USERDATA, u);
                }
            });
        }
    });
    Ok(NfMsg::nft(ty, set.family, &a.buf))
}

/// `add element` of one element, refused (EEXIST) when its key is already
/// in the set, whatever the element there holds.
pub(crate) fn add_elem(set: SetRef, elem: &SetElem, what: &str) -> Result<BatchMsg> {
    Ok(BatchMsg {
        msg: elems_msg(NFT_MSG_NEWSETELEM, set, &[elem], true)?,
        flags: NLM_F_CREATE | NLM_F_EXCL,
        op: format!("add element {what} to {}", set.name()),
    })
}

/// `delete element` by key (ENOENT when the key is not in the set).
pub(crate) fn del_elem(set: SetRef, elem: &SetElem, what: &str) -> Result<BatchMsg> {
    Ok(BatchMsg {
        msg: elems_msg(NFT_MSG_DELSETELEM, set, &[elem], false)?,
        flags: 0,
        op: format!("delete element {what} from {}", set.name()),
    })
}

/// The elements in one NEWSETELEM message (a GETSETELEM answer).
fn parse_elems(body: &[u8]) -> Vec<SetElem> {
    let value = |v: &[u8]| {
        parse_attrs(v)
            .find(|(t, _)| *t == NFTA_DATA_VALUE)
            .map(|(_, v)| v.to_vec())
    };
    let Some(attrs) = body.get(4..) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (ty, list) in parse_attrs(attrs) {
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (_, e) in parse_attrs(list).filter(|(t, _)| *t == NFTA_LIST_ELEM) {
            let mut elem = SetElem {
                key: Vec::new(),
                data: None,
                comment: None,
            };
            for (t, v) in parse_attrs(e) {
                match t {
                    NFTA_SET_ELEM_KEY => elem.key = value(v).unwrap_or_default(),
                    NFTA_SET_ELEM_DATA => elem.data = value(v),
                    NFTA_SET_ELEM_USERDATA => elem.comment = udata_comment(v),
                    _ => {}
                }
            }
            out.push(elem);
        }
    }
    out
}

/// The set a NEWSETELEM message is about.
fn parse_set_name(body: &[u8]) -> Option<String> {
    parse_attrs(body.get(4..)?)
        .find(|(t, _)| *t == NFTA_SET_ELEM_LIST_SET)
        .map(|(_, v)| attr_str(v))
}

impl NfSocket {
    /// `get element` of one key: `None` when the key (or the set, or the
    /// table) does not exist. One hash lookup in the kernel, whatever the
    /// size of the set.
    pub(crate) fn get_elem(
        &mut self,
        set: SetRef,
        key: &[u8],
        what: &str,
    ) -> Result<Option<SetElem>> {
        let probe = SetElem {
            key: key.to_vec(),
            data: None,
            comment: None,
        };
        let msg = elems_msg(NFT_MSG_GETSETELEM, set, &[&probe], false)?;
        let Some((msgs, _)) = self.exchange(msg, NLM_F_ACK, what)? else {
            return Ok(None);
        };
        Ok(msgs
            .iter()
            .filter(|m| m.ty == NEWSETELEM_TYPE)
            .flat_map(|m| parse_elems(&m.body))
            .find(|e| e.key == key))
    }

    /// Every element of `set` (`None` when the set or its table does not
    /// exist). Costs in proportion to the set: for GC and diagnosis only.
    pub(crate) fn dump_elems(&mut self, set: SetRef, what: &str) -> Result<Option<Vec<SetElem>>> {
        let mut a = Attrs::default();
        a.put_str(NFTA_SET_ELEM_LIST_TABLE, set.table);
        a.put_str(NFTA_SET_ELEM_LIST_SET, set.set);
        let msg = NfMsg::nft(NFT_MSG_GETSETELEM, set.family, &a.buf);
        let Some(msgs) = self.dump(msg, what)? else {
            return Ok(None);
        };
        Ok(Some(
            msgs.iter()
                .filter(|m| m.ty == NEWSETELEM_TYPE)
                .filter(|m| parse_set_name(&m.body).as_deref() == Some(set.set))
                .flat_map(|m| parse_elems(&m.body))
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::attrs::tests::tree;
    use super::*;

    /// `add element inet netboot hostip_hostports_ip6_udp { fd00::1 . 53
    /// comment "n/c/e" : fd00::2 . 5353 }`, transcribed from `nft
    /// --debug=mnl` 1.0.6 (less the set id it adds when the set is created
    /// in the same transaction).
    #[test]
    fn encodes_a_map_element_like_nft_and_parses_it_back() {
        let fd = |last: u8| {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            a[15] = last;
            a
        };
        let cat = super::super::objects::concat_bytes;
        let e = SetElem {
            key: cat(&[&fd(1), &53u16.to_be_bytes()]),
            data: Some(cat(&[&fd(2), &5353u16.to_be_bytes()])),
            comment: Some("n/c/e".into()),
        };
        let set = SetRef {
            family: 1,
            table: "netboot",
            set: "hostip_hostports_ip6_udp",
        };
        let m = add_elem(set, &e, "x").unwrap().msg;
        let t = tree(&m.body[4..]);
        let want = "\
1 len=12 6e6574626f6f7400
2 len=29 686f737469705f686f7374706f7274735f6970365f75647000
3 N len=76
  1 N len=72
    1 N len=28
      1 len=24 fd000000000000000000000000000001 00350000
    2 N len=28
      1 len=24 fd000000000000000000000000000002 14e90000
    6 len=12 00066e2f632f6500
"
        .replace(" 0035", "0035")
        .replace(" 14e9", "14e9");
        assert_eq!(t, want);
        assert_eq!(parse_elems(&m.body), vec![e.clone()]);
        assert_eq!(parse_set_name(&m.body).as_deref(), Some(set.set));
        // A delete names the key alone.
        let d = del_elem(set, &e, "x").unwrap().msg;
        let parsed = parse_elems(&d.body);
        assert_eq!(parsed[0].key, e.key);
        assert_eq!(
            (parsed[0].data.as_ref(), parsed[0].comment.as_ref()),
            (None, None)
        );
    }
}
