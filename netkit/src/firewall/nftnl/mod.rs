//! nf_tables spoken directly over `NETLINK_NETFILTER`, for the hot
//! port-mapping operations (see [`super::portmap`]): add rules in one batch,
//! dump a table's rules, delete rules by handle in one batch.
//!
//! Only what those operations need is here, encoded attribute for attribute
//! the way `nft` 1.0.6 (libnftnl) encodes the same rules, as printed by
//! `nft --debug=netlink,mnl -f -`: the kernel stores the expressions it is
//! given, so identical messages give identical `nft list` output whichever
//! tool wrote them. Every constant is named after the kernel uapi header it
//! comes from (`linux/netfilter/nf_tables.h`, `nfnetlink.h`, `nf_nat.h`,
//! `linux/netfilter.h`); the only non-kernel one is libnftnl's userdata TLV
//! type for rule comments, which is how `nft` (and so knftables, and so
//! upstream portmap) stores `comment "..."`.
//!
//! # Batches and acknowledgements
//!
//! A change is `NFNL_MSG_BATCH_BEGIN`, the messages, `NFNL_MSG_BATCH_END`,
//! in one datagram; the kernel commits all of it or nothing. Every message
//! in between carries `NLM_F_ACK` and gets exactly one answer. Those answers
//! are delivered only after the whole batch was processed, and a 0 answer
//! does not mean "committed" when another message of the batch failed (the
//! kernel still acks the good ones before aborting), so the batch succeeded
//! only if *every* answer is 0. A failed commit, or a batch refused as a
//! whole (no `CAP_NET_ADMIN`), is answered on the BATCH_BEGIN's sequence
//! number, before any per-message answer. The delimiters themselves carry no
//! `NLM_F_ACK`: kernels before 6.1 never answer them.
//!
//! # Closing after a delete
//!
//! Deleted rules are freed after an RCU grace period by a kernel worker
//! (`nf_tables_trans_destroy_work`), and closing *any* nfnetlink socket
//! while that worker has not yet picked up its list waits for it to finish
//! (`nft_rcv_nl_event` flushes it on NETLINK_URELEASE): measured, the
//! `close()` right after a DELRULE batch takes ~16-18 ms, a whole grace
//! period, which is what most of a DEL cost. So a socket that committed a
//! delete is not closed there but kept ([`NfSocket::linger`]) until the
//! next operation or process exit; by then the worker has long started (the
//! plugin deletes the veth next, itself a grace period) and the close is
//! immediate. At most one socket lingers per process.
//!
//! No `unsafe`: the socket is `netlink-sys`'s, the framing
//! `netlink-packet-core`'s; only the nf_tables attributes are encoded here.

mod attrs;
mod elems;
mod expr;
mod objects;
mod rule;
mod socket;
mod uapi;

pub(crate) use elems::{add_elem, del_elem, SetElem, SetRef};
pub(crate) use expr::{
    Expr, NFT_META_L4PROTO, NFT_META_NFPROTO, NFT_REG32_01, NFT_REG_1, NFT_REG_2,
};
pub(crate) use objects::{chain, concat_bytes, flush_chain, set, table, DataType, Hook, SetDef};
pub(crate) use rule::{append_rule, DelRule, NewRule};
pub(crate) use socket::{BatchMsg, NfSocket};
pub(crate) use uapi::{NFPROTO_INET, NFPROTO_IPV4, NFPROTO_IPV6};
