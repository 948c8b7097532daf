//! The objects of the native hostPort layout in `inet netboot` (see the
//! module docs), as data: the sets and maps, the rules that look them up,
//! and the one transaction that creates (or repairs) all of it.

use super::super::mapping::Proto;
use super::super::nftnl::{
    self, append_rule, BatchMsg, DataType, Expr, Hook, NewRule, NfSocket, SetDef, NFPROTO_INET,
    NFPROTO_IPV4, NFPROTO_IPV6, NFT_META_L4PROTO, NFT_META_NFPROTO, NFT_REG32_01, NFT_REG_1,
    NFT_REG_2,
};
use crate::error::Result;

/// The table (family `inet`): netboot's own, shared with the node
/// masquerade and forward rules, which live in other chains.
pub(crate) const TABLE: &str = "netboot";
/// The regular chain holding the DNAT lookups.
pub(crate) const CHAIN: &str = "hostports";
const PREROUTING: &str = "hostports_prerouting";
const OUTPUT: &str = "hostports_output";
const POSTROUTING: &str = "hostports_postrouting";
/// Every chain of the layout, base chains last.
pub(crate) const CHAINS: [&str; 4] = [CHAIN, PREROUTING, OUTPUT, POSTROUTING];

/// The protocols a mapping can have, in rule order.
pub(crate) const PROTOS: [Proto; 3] = [Proto::Tcp, Proto::Udp, Proto::Sctp];

/// An address family of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fam {
    V4,
    V6,
}

impl Fam {
    pub(crate) const BOTH: [Fam; 2] = [Fam::V4, Fam::V6];

    pub(crate) fn of(v6: bool) -> Fam {
        if v6 {
            Fam::V6
        } else {
            Fam::V4
        }
    }

    /// `ip` / `ip6`, as in set names and nft's syntax.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fam::V4 => "ip",
            Fam::V6 => "ip6",
        }
    }

    fn nfproto(self) -> u8 {
        match self {
            Fam::V4 => NFPROTO_IPV4,
            Fam::V6 => NFPROTO_IPV6,
        }
    }

    pub(crate) fn addr(self) -> DataType {
        match self {
            Fam::V4 => DataType::Ipv4Addr,
            Fam::V6 => DataType::Ipv6Addr,
        }
    }

    /// The register `nft` loads the second field of an `addr . x`
    /// concatenation into: right after the address.
    fn second_reg(self) -> u32 {
        match self {
            Fam::V4 => NFT_REG32_01,
            Fam::V6 => NFT_REG_2,
        }
    }
}

/// The map of one family and protocol: `hostip_hostports_ip_tcp` (key
/// `ipv4_addr . inet_service`, for mappings with a hostIP) or
/// `hostports_ip_tcp` (key `inet_service`, any local address); data
/// `pod address . container port`.
pub(crate) fn dnat_map(fam: Fam, proto: Proto, host_ip: bool) -> String {
    let prefix = if host_ip {
        "hostip_hostports"
    } else {
        "hostports"
    };
    format!("{prefix}_{}_{}", fam.name(), proto.as_str())
}

/// The set of (source . destination) pairs masqueraded after DNAT:
/// `pod . pod` (hairpin) and, IPv4 only, `127.0.0.1 . pod` (localhost).
pub(crate) fn masq_set(fam: Fam) -> String {
    format!("hostports_masq_{}", fam.name())
}

/// Every set and map: (name, key types, data types).
pub(crate) fn set_defs() -> Vec<(String, Vec<DataType>, Option<Vec<DataType>>)> {
    let port = DataType::InetService;
    let mut out = Vec::new();
    for fam in Fam::BOTH {
        let target = vec![fam.addr(), port];
        for proto in PROTOS {
            for host_ip in [true, false] {
                let key = if host_ip {
                    vec![fam.addr(), port]
                } else {
                    vec![port]
                };
                out.push((dnat_map(fam, proto, host_ip), key, Some(target.clone())));
            }
        }
        out.push((masq_set(fam), vec![fam.addr(), fam.addr()], None));
    }
    out
}

/// The set id a rule of the setup transaction refers to `name` by.
fn set_id(name: &str) -> Option<u32> {
    set_defs()
        .iter()
        .position(|(n, _, _)| n == name)
        .map(|i| i as u32 + 1)
}

/// `meta nfproto FAM`, the dependency `nft` puts before a family's match
/// in an `inet` table.
fn nfproto(fam: Fam) -> [Expr; 2] {
    [
        Expr::Meta(NFT_META_NFPROTO),
        Expr::CmpEq(vec![fam.nfproto()]),
    ]
}

/// `dnat FAM to [FAM daddr .] PROTO dport map @MAP`.
fn dnat_rule(fam: Fam, proto: Proto, host_ip: bool) -> Vec<Expr> {
    let mut e = nfproto(fam).to_vec();
    e.push(Expr::Meta(NFT_META_L4PROTO));
    e.push(Expr::CmpEq(vec![proto.number()]));
    if host_ip {
        e.push(Expr::daddr(fam == Fam::V6, NFT_REG_1));
        e.push(Expr::dport(fam.second_reg()));
    } else {
        e.push(Expr::dport(NFT_REG_1));
    }
    let map = dnat_map(fam, proto, host_ip);
    e.push(Expr::Lookup {
        set_id: set_id(&map),
        set: map,
        dreg: Some(NFT_REG_1),
    });
    e.push(Expr::Dnat {
        family: fam.nfproto(),
        proto_reg: fam.second_reg(),
        flags: false,
    });
    e
}

/// `FAM saddr . FAM daddr @hostports_masq_FAM masquerade`.
fn masq_rule(fam: Fam) -> Vec<Expr> {
    let v6 = fam == Fam::V6;
    let mut e = nfproto(fam).to_vec();
    e.push(Expr::saddr(v6, NFT_REG_1));
    e.push(Expr::daddr(v6, fam.second_reg()));
    let set = masq_set(fam);
    e.push(Expr::Lookup {
        set_id: set_id(&set),
        set,
        dreg: None,
    });
    e.push(Expr::Masq);
    e
}

/// `fib daddr type local jump hostports`.
fn jump_rule() -> Vec<Expr> {
    vec![
        Expr::FibDaddrType,
        Expr::CmpEq((libc::RTN_LOCAL as u32).to_ne_bytes().to_vec()),
        Expr::Jump(CHAIN.to_string()),
    ]
}

/// Every rule, with its chain, in order: per family and protocol the
/// hostIP lookup first, then the any-address one (a mapping for one
/// address wins over a mapping for all, as in upstream portmap, whose
/// `hostip_hostports` chain comes first).
pub(crate) fn rules() -> Vec<(&'static str, Vec<Expr>)> {
    let mut out = Vec::new();
    for fam in Fam::BOTH {
        for proto in PROTOS {
            for host_ip in [true, false] {
                out.push((CHAIN, dnat_rule(fam, proto, host_ip)));
            }
        }
    }
    out.push((PREROUTING, jump_rule()));
    out.push((OUTPUT, jump_rule()));
    for fam in Fam::BOTH {
        out.push((POSTROUTING, masq_rule(fam)));
    }
    out
}

/// Whether every chain of the layout is there with its rules: each
/// chain's use count (rules in it, jumps to it) is what [`setup`] makes.
/// One dump of the table's chains, so every ADD can afford it: a chain a
/// human flushed is rebuilt by the next ADD instead of staying broken.
/// Rules replaced by others of the same number are not noticed (CHECK
/// compares them).
pub(crate) fn is_complete(sock: &mut NfSocket, ctx: &str) -> Result<bool> {
    let Some(uses) = sock.chain_uses(NFPROTO_INET, TABLE, ctx)? else {
        return Ok(false);
    };
    let rules = rules();
    Ok(CHAINS.iter().all(|c| {
        let jumps = if *c == CHAIN { 2 } else { 0 };
        let want = rules.iter().filter(|(chain, _)| chain == c).count() as u32 + jumps;
        uses.iter().any(|(n, u)| n == c && *u == want)
    }))
}

/// Creates whatever is missing of the layout and rebuilds its chains'
/// rules, in one transaction: what an ADD does when its elements found no
/// map (first hostPort on the node, a reboot, a deleted table). Chains are
/// flushed and refilled in the same transaction, so no packet ever sees a
/// half layout and a concurrent setup only repeats the same rules. The
/// elements already in the sets are kept.
pub(crate) fn setup(sock: &mut NfSocket) -> Result<()> {
    let f = NFPROTO_INET;
    let mut msgs: Vec<BatchMsg> = vec![nftnl::table(f, TABLE)];
    for (i, (name, key, data)) in set_defs().iter().enumerate() {
        let def = SetDef {
            name,
            key,
            data: data.as_deref(),
        };
        msgs.push(nftnl::set(f, TABLE, &def, i as u32 + 1));
    }
    // Priorities as numbers (dstnat -100, srcnat 100), as the rest of
    // netboot writes them.
    msgs.push(nftnl::chain(f, TABLE, CHAIN, None));
    msgs.push(nftnl::chain(
        f,
        TABLE,
        PREROUTING,
        Some((Hook::Prerouting, -100)),
    ));
    msgs.push(nftnl::chain(f, TABLE, OUTPUT, Some((Hook::Output, -100))));
    msgs.push(nftnl::chain(
        f,
        TABLE,
        POSTROUTING,
        Some((Hook::Postrouting, 100)),
    ));
    for c in CHAINS {
        msgs.push(nftnl::flush_chain(f, TABLE, c));
    }
    for (chain, exprs) in rules() {
        msgs.push(append_rule(&NewRule {
            family: f,
            table: TABLE,
            chain,
            exprs,
            comment: None,
        })?);
    }
    sock.commit(msgs, "set up the hostPort maps in table inet netboot")
}
