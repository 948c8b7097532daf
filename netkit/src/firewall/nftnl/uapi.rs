//! The kernel uapi numbers the nf_tables messages share, and the
//! `nft` name of a family.

// linux/netfilter/nfnetlink.h
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NLMSG_MIN_TYPE`.
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(super) const NFNETLINK_V0: u8 = 0;

// linux/netfilter.h
pub(crate) const NFPROTO_INET: u8 = 1;
pub(crate) const NFPROTO_IPV4: u8 = 2;
pub(crate) const NFPROTO_IPV6: u8 = 10;

// linux/netfilter/nf_tables.h: enum nf_tables_msg_types
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_GETRULE: u16 = 7;
pub(super) const NFT_MSG_DELRULE: u16 = 8;
/// The nlmsg type of a rule in a GETRULE dump.
pub(super) const NEWRULE_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE;

pub(super) fn family_name(f: u8) -> &'static str {
    match f {
        NFPROTO_IPV4 => "ip",
        NFPROTO_IPV6 => "ip6",
        _ => "?",
    }
}
