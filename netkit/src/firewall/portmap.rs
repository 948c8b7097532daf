//! hostPort → podIP:containerPort DNAT, in upstream portmap's nftables
//! layout (containernetworking/plugins `plugins/meta/portmap/
//! portmap_nftables.go`), object for object:
//!
//! ```text
//! table ip cni_hostport {                      # and ip6, same shape
//!   comment "CNI portmap plugin"
//!   chain hostports { <one rule per mapping, comment "<containerID>"> }
//!   chain hostip_hostports { }                 # legacy, kept for upgrades
//!   chain hostports_all { jump hostip_hostports; jump hostports }
//!   chain prerouting { type nat hook prerouting priority -100 (dstnat)
//!                      fib daddr type local jump hostports_all }
//!   chain output     { type nat hook output priority -100
//!                      fib daddr type local jump hostports_all }
//!   chain masquerading { type nat hook postrouting priority 100 (srcnat)
//!                      <hairpin/localhost masquerade, comment "<containerID>"> }
//! }
//! ```
//!
//! Priorities are written as numbers, as knftables does, because nft < 1.0.7
//! rejects the name `dstnat` in the output hook.
//!
//! **The rule comment is the bare container ID**, not a hash: that is what
//! upstream's nftables backend writes and matches on DEL, so it is what we
//! must write to interoperate (only its *iptables* backend hashes, into the
//! chain name `CNI-DN-<hash>`, see [`hostport_hash`]). Like upstream, the
//! network name is not part of the comment: DEL of a container removes its
//! mappings in every network. Rules per mapping, not map elements, for
//! upstream's reason: "delete 10.0.0.3 only if container A added it" needs
//! the per-rule owner tag when a new container reuses an IP.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::hash::hash_with_prefix;
use super::nft::{self, check_ident, quote_comment, ListedRule};
use super::nftnl::{
    DelRule, Expr, NewRule, NfSocket, DNAT_ADDR_REG, DNAT_PORT_REG, NFPROTO_IPV4, NFPROTO_IPV6,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER,
};
use crate::error::{Error, Result};

const TABLE: &str = "cni_hostport";
const HOSTPORTS: &str = "hostports";
const HOSTIP_HOSTPORTS: &str = "hostip_hostports";
const HOSTPORTS_ALL: &str = "hostports_all";
const MASQUERADING: &str = "masquerading";
/// Chains whose rules carry a container's comment.
const OWNED_CHAINS: [&str; 3] = [HOSTPORTS, HOSTIP_HOSTPORTS, MASQUERADING];

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The nft keyword (and CNI `protocol` value): `tcp`, `udp`, `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (`meta l4proto`).
    fn number(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
            Proto::Sctp => libc::IPPROTO_SCTP as u8,
        }
    }

    /// Parse a CNI `protocol` (case-insensitive, as portmap lowercases it).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// One CNI `portMappings` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Proto,
    /// Only traffic to this host address is mapped. An address of the other
    /// family than a container IP is skipped for that IP (as upstream); an
    /// unspecified address (`0.0.0.0`, `::`) means "any".
    pub host_ip: Option<IpAddr>,
}

/// Everything [`add_port_mappings`] / [`check_port_mappings`] need.
#[derive(Debug, Clone, Copy)]
pub struct PortmapSpec<'a> {
    /// CNI network name (only for validation and messages: upstream's nft
    /// comments do not carry it).
    pub network: &'a str,
    /// CNI_CONTAINERID; becomes every rule's comment.
    pub container_id: &'a str,
    /// CNI_IFNAME (validation and messages only).
    pub ifname: &'a str,
    /// The container's addresses; as upstream, the first IPv4 and the first
    /// IPv6 one are mapped, the rest ignored.
    pub container_ips: &'a [IpAddr],
    pub mappings: &'a [PortMapping],
    /// portmap `snat` (upstream default: true): masquerade hairpin traffic
    /// (pod → its own hostPort) and, for IPv4, traffic from 127.0.0.1.
    pub snat: bool,
    /// portmap `masqAll`: with `snat`, masquerade mapped traffic from any
    /// source instead of only hairpin/localhost.
    pub masq_all: bool,
}

/// portmap's hash for (network, container): the first 21 hex digits of
/// `sha512(network + containerID)`, i.e. what follows `CNI-DN-` in the
/// reference portmap's *iptables* per-container chain name (`pkg/utils`
/// `MustFormatChainNameWithPrefix`, 28 characters in all; see
/// [`legacy_dnat_chain`](super::legacy_dnat_chain)). The nftables backend
/// does not hash: its comment is the container ID itself, which is what
/// [`list_port_mapping_owners`] returns.
pub fn hostport_hash(network: &str, container_id: &str) -> String {
    hash_with_prefix(21, "", &format!("{network}{container_id}"))
}

/// True when the plugin must set `net.ipv4.conf.<host-if>.route_localnet=1`
/// (netkit::sysctl, on the bridge or host interface the container is routed
/// through) after [`add_port_mappings`]: with `snat` and an IPv4 container
/// address, connections to `127.0.0.1:hostPort` are DNATed to the pod, and
/// the kernel drops packets with a 127/8 source that cross a routing
/// boundary unless route_localnet is on (upstream portmap does the same in
/// `cmdAdd`). IPv6 has no equivalent (`::1` traffic is never mapped).
pub fn needs_route_localnet(spec: &PortmapSpec) -> bool {
    spec.snat && !spec.mappings.is_empty() && spec.container_ips.iter().any(IpAddr::is_ipv4)
}

/// Which way [`add_port_mappings`], [`del_port_mappings`] and
/// [`list_port_mapping_owners`] reach the kernel. Both write the very same
/// objects (see the module docs); CHECK always reads through `nft -j`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftPath {
    /// nf_tables netlink, one batch per change (the default). ADD falls back
    /// to `nft -f -` when a table or chain is missing (it creates them), and
    /// everything falls back to `nft` when no `NETLINK_NETFILTER` socket can
    /// be opened.
    Netlink,
    /// The `nft` binary for everything.
    Cli,
}

impl NftPath {
    /// Set to `1` to force [`NftPath::Cli`].
    pub const ENV: &'static str = "NETBOOT_NFT_CLI";

    /// [`NftPath::Cli`] when `NETBOOT_NFT_CLI=1`, else [`NftPath::Netlink`].
    pub fn from_env() -> NftPath {
        match std::env::var_os(Self::ENV) {
            Some(v) if v == "1" => NftPath::Cli,
            _ => NftPath::Netlink,
        }
    }
}

/// One rule shape of upstream's `forwardPorts`, as data: rendered as nft
/// text for the `nft` path and CHECK, encoded as expressions for netlink.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// `[FAMILY daddr HOST] PROTO dport HP dnat to CIP:CP`
    Dnat {
        host_ip: Option<IpAddr>,
        proto: Proto,
        host_port: u16,
        to: IpAddr,
        to_port: u16,
    },
    /// `FAMILY saddr SRC FAMILY daddr CIP masquerade`; no `saddr` means
    /// the all-zero prefix (`0.0.0.0/0`, `::/0`) of `masqAll`.
    Masq {
        saddr: Option<IpAddr>,
        daddr: IpAddr,
    },
}

/// `nft`'s payload offsets of the source and destination address in the
/// IPv4 / IPv6 header, and the address length.
fn addr_fields(v6: bool) -> (u32, u32, u32) {
    if v6 {
        (8, 24, 16)
    } else {
        (12, 16, 4)
    }
}

impl Shape {
    fn v6(&self) -> bool {
        match self {
            Shape::Dnat { to, .. } => to.is_ipv6(),
            Shape::Masq { daddr, .. } => daddr.is_ipv6(),
        }
    }

    fn family(&self) -> &'static str {
        if self.v6() {
            "ip6"
        } else {
            "ip"
        }
    }

    /// The canonical text `nft list` prints back for this rule.
    fn text(&self) -> String {
        let family = self.family();
        match self {
            Shape::Dnat {
                host_ip,
                proto,
                host_port,
                to,
                to_port,
            } => {
                let mut rule = String::new();
                if let Some(h) = host_ip {
                    let _ = write!(rule, "{family} daddr {h} ");
                }
                let to = match to {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                };
                let _ = write!(
                    rule,
                    "{} dport {host_port} dnat to {to}:{to_port}",
                    proto.as_str()
                );
                rule
            }
            Shape::Masq { saddr, daddr } => {
                let src = match (saddr, self.v6()) {
                    (Some(s), _) => s.to_string(),
                    (None, false) => "0.0.0.0/0".to_string(),
                    (None, true) => "::/0".to_string(),
                };
                format!("{family} saddr {src} {family} daddr {daddr} masquerade")
            }
        }
    }

    /// The expressions `nft` 1.0.6 generates for [`Shape::text`] (as
    /// printed by `nft --debug=netlink`), in order.
    fn exprs(&self) -> Vec<Expr> {
        let (saddr_off, daddr_off, alen) = addr_fields(self.v6());
        let load_addr = |offset| Expr::Payload {
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset,
            len: alen,
        };
        let mut e = Vec::new();
        match self {
            Shape::Dnat {
                host_ip,
                proto,
                host_port,
                to,
                to_port,
            } => {
                if let Some(h) = host_ip {
                    e.push(load_addr(daddr_off));
                    e.push(Expr::CmpEq(Expr::addr_bytes(*h)));
                }
                e.push(Expr::MetaL4proto);
                e.push(Expr::CmpEq(vec![proto.number()]));
                // tcp/udp/sctp dport: 2 bytes at transport header + 2.
                e.push(Expr::Payload {
                    base: NFT_PAYLOAD_TRANSPORT_HEADER,
                    offset: 2,
                    len: 2,
                });
                e.push(Expr::CmpEq(host_port.to_be_bytes().to_vec()));
                e.push(Expr::Immediate {
                    reg: DNAT_ADDR_REG,
                    data: Expr::addr_bytes(*to),
                });
                e.push(Expr::Immediate {
                    reg: DNAT_PORT_REG,
                    data: to_port.to_be_bytes().to_vec(),
                });
                e.push(Expr::DnatToRegs {
                    family: if self.v6() {
                        NFPROTO_IPV6
                    } else {
                        NFPROTO_IPV4
                    },
                });
            }
            Shape::Masq { saddr, daddr } => {
                e.push(load_addr(saddr_off));
                match saddr {
                    Some(s) => e.push(Expr::CmpEq(Expr::addr_bytes(*s))),
                    None => {
                        // A /0 prefix: nft masks everything away.
                        let zero = vec![0; alen as usize];
                        e.push(Expr::Bitwise {
                            mask: zero.clone(),
                            xor: zero.clone(),
                        });
                        e.push(Expr::CmpEq(zero));
                    }
                }
                e.push(load_addr(daddr_off));
                e.push(Expr::CmpEq(Expr::addr_bytes(*daddr)));
                e.push(Expr::Masq);
            }
        }
        e
    }
}

/// The rules one address family gets.
struct FamilyRules {
    family: &'static str,
    nfproto: u8,
    hostports: Vec<Shape>,
    masq: Vec<Shape>,
}

impl FamilyRules {
    /// Every rule with its chain, in the order the script adds them.
    fn chained(&self) -> impl Iterator<Item = (&'static str, &Shape)> {
        let hp = self.hostports.iter().map(|r| (HOSTPORTS, r));
        hp.chain(self.masq.iter().map(|r| (MASQUERADING, r)))
    }
}

fn validate(ctx: &str, spec: &PortmapSpec) -> Result<()> {
    check_ident(ctx, "network name", spec.network)?;
    check_ident(ctx, "container ID", spec.container_id)?;
    check_ident(ctx, "interface name", spec.ifname)?;
    quote_comment(ctx, spec.container_id)?;
    if let Some(m) = spec
        .mappings
        .iter()
        .find(|m| m.host_port == 0 || m.container_port == 0)
    {
        return Err(Error::invalid(
            ctx,
            format!("port mapping {m:?}: ports must be > 0"),
        ));
    }
    Ok(())
}

/// Upstream's rule shapes (portmap_nftables.go `forwardPorts`).
fn expected(spec: &PortmapSpec) -> Vec<FamilyRules> {
    let first4 = spec.container_ips.iter().find(|a| a.is_ipv4());
    let first6 = spec.container_ips.iter().find(|a| a.is_ipv6());
    let mut out = Vec::new();
    for (family, nfproto, cip) in [("ip", NFPROTO_IPV4, first4), ("ip6", NFPROTO_IPV6, first6)] {
        let Some(&cip) = cip else { continue };
        let v6 = cip.is_ipv6();
        let mut hostports = Vec::new();
        for m in spec.mappings {
            let host_ip = match m.host_ip {
                Some(h) if h.is_ipv6() != v6 => continue,
                Some(h) if !h.is_unspecified() => Some(h),
                _ => None,
            };
            hostports.push(Shape::Dnat {
                host_ip,
                proto: m.protocol,
                host_port: m.host_port,
                to: cip,
                to_port: m.container_port,
            });
        }
        let mut masq = Vec::new();
        if spec.snat {
            masq.push(Shape::Masq {
                saddr: (!spec.masq_all).then_some(cip),
                daddr: cip,
            });
            if !v6 && !spec.masq_all {
                masq.push(Shape::Masq {
                    saddr: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
                    daddr: cip,
                });
            }
        }
        out.push(FamilyRules {
            family,
            nfproto,
            hostports,
            masq,
        });
    }
    out
}

/// Only the per-container `add rule` lines (the steady-state ADD).
fn rules_script(spec: &PortmapSpec, rules: &[FamilyRules]) -> Result<String> {
    let comment = quote_comment("port mappings", spec.container_id)?;
    let mut s = String::new();
    for fr in rules {
        let t = format!("{} {TABLE}", fr.family);
        for (chain, r) in fr.chained() {
            let _ = writeln!(s, "add rule {t} {chain} {} comment {comment}", r.text());
        }
    }
    Ok(s)
}

/// The full nft script for [`add_port_mappings`]: tables, chains, shared
/// jumps, then the rules.
fn add_script(spec: &PortmapSpec, rules: &[FamilyRules]) -> Result<String> {
    let mut s = String::new();
    for fr in rules {
        let f = fr.family;
        let t = format!("{f} {TABLE}");
        let _ = writeln!(s, "add table {t} {{ comment \"CNI portmap plugin\" ; }}");
        for c in [HOSTPORTS, HOSTIP_HOSTPORTS, HOSTPORTS_ALL] {
            let _ = writeln!(s, "add chain {t} {c}");
        }
        // The shared chains are rebuilt (flush + add) in the same
        // transaction, exactly as upstream does, so they never hold a
        // duplicate jump whichever implementation ran last.
        let _ = writeln!(s, "flush chain {t} {HOSTPORTS_ALL}");
        let _ = writeln!(s, "add rule {t} {HOSTPORTS_ALL} jump {HOSTIP_HOSTPORTS}");
        let _ = writeln!(s, "add rule {t} {HOSTPORTS_ALL} jump {HOSTPORTS}");
        for hook in ["prerouting", "output"] {
            let _ = writeln!(
                s,
                "add chain {t} {hook} {{ type nat hook {hook} priority -100 ; }}"
            );
            let _ = writeln!(s, "flush chain {t} {hook}");
            let _ = writeln!(
                s,
                "add rule {t} {hook} fib daddr type local jump {HOSTPORTS_ALL}"
            );
        }
        if spec.snat {
            let _ = writeln!(
                s,
                "add chain {t} {MASQUERADING} {{ type nat hook postrouting priority 100 ; }}"
            );
        }
    }
    s.push_str(&rules_script(spec, rules)?);
    Ok(s)
}

/// Program `spec`'s mappings: one DNAT rule per mapping (plus the
/// masquerade rules when `snat`), each commented with the container ID, in
/// one nf_tables transaction (see [`add_port_mappings_via`]).
///
/// No mappings: nothing is done (upstream portmap returns early too).
/// Like upstream, ADD does not look for older rules of the same container:
/// the plugin's rollback and crash recovery call [`del_port_mappings`]
/// first, which keeps the steady-state ADD at one transaction. Afterwards,
/// see [`needs_route_localnet`].
pub fn add_port_mappings(spec: &PortmapSpec) -> Result<()> {
    add_port_mappings_via(NftPath::from_env(), spec).map(|_| ())
}

/// One rule [`add_port_mappings_tracked`] created, by handle: what
/// [`del_port_rules`] needs to delete exactly it without listing the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    /// In `ip6 cni_hostport` rather than `ip cni_hostport`.
    pub v6: bool,
    pub chain: String,
    pub handle: u64,
}

/// [`add_port_mappings`], also returning the rules it created when the
/// netlink path added them (empty when `nft` did: DEL then lists the table).
pub fn add_port_mappings_tracked(spec: &PortmapSpec) -> Result<Vec<RuleRef>> {
    add_port_mappings_via(NftPath::from_env(), spec)
}

/// [`add_port_mappings_tracked`] through `path`.
///
/// Fast path (either way): on a node that already has the tables, only the
/// rules are added, as one batch (netlink: NEWRULE messages between
/// BATCH_BEGIN/END; CLI: one `nft -f -` of `add rule` lines, ~5 ms of
/// exec). Re-declaring existing chains costs the kernel ~15 ms per
/// transaction, and that would be paid on every ADD. If anything is missing
/// (first ADD on the node, upstream or a human deleted a chain) the batch
/// fails as a whole with ENOENT, nothing was changed, and the full `nft -f -`
/// script creates everything and rebuilds the shared jumps as upstream does.
/// A jump or base chain removed by hand while `hostports`/`masquerading`
/// stay is not repaired here; CHECK reports it.
pub fn add_port_mappings_via(path: NftPath, spec: &PortmapSpec) -> Result<Vec<RuleRef>> {
    let ctx = format!(
        "add port mappings for {} ({}, {}) in table {TABLE}",
        spec.container_id, spec.network, spec.ifname
    );
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(Vec::new());
    }
    let rules = expected(spec);
    if rules.is_empty() {
        return Err(Error::invalid(ctx, "no container IP to map ports to"));
    }
    let sock = match path {
        NftPath::Netlink => NfSocket::open().ok(),
        NftPath::Cli => None,
    };
    let fast = match sock {
        Some(mut sock) => {
            let new: Vec<NewRule> = rules
                .iter()
                .flat_map(|fr| {
                    fr.chained().map(|(chain, r)| NewRule {
                        family: fr.nfproto,
                        table: TABLE,
                        chain,
                        exprs: r.exprs(),
                        comment: spec.container_id,
                    })
                })
                .collect();
            match sock.add_rules(&new, &ctx) {
                Err(e) if e.errno() == Some(libc::ENOENT) => Err(e),
                Ok(echoed) => {
                    return Ok(echoed
                        .into_iter()
                        .filter(|r| r.table == TABLE)
                        .map(|r| RuleRef {
                            v6: r.family == NFPROTO_IPV6,
                            chain: r.chain,
                            handle: r.handle,
                        })
                        .collect())
                }
                Err(e) => return Err(e),
            }
        }
        None => nft::apply(&ctx, &rules_script(spec, &rules)?),
    };
    match fast {
        Err(Error::Command { .. } | Error::Netlink { .. }) => {
            nft::apply(&ctx, &add_script(spec, &rules)?).map(|()| Vec::new())
        }
        other => other.map(|()| Vec::new()),
    }
}

/// Deletes the rules [`add_port_mappings_tracked`] returned, by handle,
/// without listing the table: listing costs the kernel and us time in
/// proportion to every mapping on the node (~4 ms of a DEL's CPU with 500
/// pods), reading one rule back by its handle does not. Each rule is read
/// back first and deleted only if it still carries `container_id`'s
/// comment, in a chain of ours: a handle is unique only within one life of
/// the table, which a reboot or a human can end.
///
/// `Ok(false)` when that cannot be shown for every rule (one is gone or is
/// not ours, the `nft` path is forced, no netfilter socket): nothing was
/// deleted and the caller lists the table with [`del_port_mappings_in`],
/// which is always right.
pub fn del_port_rules(container_id: &str, rules: &[RuleRef]) -> Result<bool> {
    let ctx = format!("delete port mappings of {container_id} by handle in table {TABLE}");
    check_ident(&ctx, "container ID", container_id)?;
    if rules.is_empty() || NftPath::from_env() == NftPath::Cli {
        return Ok(false);
    }
    NfSocket::close_lingering();
    let Ok(mut sock) = NfSocket::open() else {
        return Ok(false);
    };
    let nfproto = |r: &RuleRef| if r.v6 { NFPROTO_IPV6 } else { NFPROTO_IPV4 };
    for r in rules {
        if !OWNED_CHAINS.contains(&r.chain.as_str()) {
            return Ok(false);
        }
        let found = sock.get_rule(nfproto(r), TABLE, &r.chain, r.handle, &ctx)?;
        if found.and_then(|f| f.comment).as_deref() != Some(container_id) {
            return Ok(false);
        }
    }
    let dels: Vec<DelRule> = rules
        .iter()
        .map(|r| DelRule {
            family: nfproto(r),
            table: TABLE,
            chain: &r.chain,
            handle: r.handle,
        })
        .collect();
    match sock.del_rules(&dels, &ctx) {
        Ok(()) => {
            // As in del_port_mappings_via: closing now would wait for the
            // deleted rules' RCU grace period.
            sock.linger();
            Ok(true)
        }
        // Deleted under our feet between the read and the delete.
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove every rule commented with `container_id` from chains `hostports`,
/// `hostip_hostports` and `masquerading` of `ip` and `ip6 cni_hostport`,
/// whoever wrote it (netboot or upstream portmap). Idempotent: a missing
/// table, or no matching rule, is success. Costs one listing per family
/// (netlink: a GETRULE dump of the table; CLI: `nft -j list table`) plus,
/// only if something matched, one delete transaction (rules can only be
/// deleted by handle). `network` is validated but, as upstream, not part of
/// the match.
pub fn del_port_mappings(network: &str, container_id: &str) -> Result<()> {
    del_port_mappings_in(network, container_id, true, true)
}

/// [`del_port_mappings`] limited to the address families the container
/// had: each family costs one listing, which grows with the number of
/// mappings on the node, so an IPv4-only pod skips the `ip6` table.
pub fn del_port_mappings_in(network: &str, container_id: &str, v4: bool, v6: bool) -> Result<()> {
    del_port_mappings_via(NftPath::from_env(), network, container_id, v4, v6)
}

/// [`del_port_mappings_in`] through `path`.
pub fn del_port_mappings_via(
    path: NftPath,
    network: &str,
    container_id: &str,
    v4: bool,
    v6: bool,
) -> Result<()> {
    let ctx = format!("delete port mappings of {container_id} ({network}) in table {TABLE}");
    check_ident(&ctx, "network name", network)?;
    check_ident(&ctx, "container ID", container_id)?;
    let families: Vec<(&str, u8)> = [("ip", NFPROTO_IPV4), ("ip6", NFPROTO_IPV6)]
        .into_iter()
        .filter(|(f, _)| if *f == "ip" { v4 } else { v6 })
        .collect();
    let mut sock = match path {
        NftPath::Netlink => {
            NfSocket::close_lingering();
            NfSocket::open().ok()
        }
        NftPath::Cli => None,
    };
    // A racing DEL/ADD can delete a handle between our list and our delete
    // (the batch then fails as a whole with ENOENT); list again once.
    let mut attempt = 0;
    loop {
        let outcome = match sock.as_mut() {
            Some(sock) => {
                let mut doomed = Vec::new();
                for (_, nfproto) in &families {
                    let rules = sock.dump_rules(*nfproto, TABLE, &ctx)?;
                    doomed.extend(rules.into_iter().filter(|r| {
                        OWNED_CHAINS.contains(&r.chain.as_str())
                            && r.comment.as_deref() == Some(container_id)
                    }));
                }
                if doomed.is_empty() {
                    return Ok(());
                }
                let dels: Vec<DelRule> = doomed
                    .iter()
                    .map(|r| DelRule {
                        family: r.family,
                        table: TABLE,
                        chain: &r.chain,
                        handle: r.handle,
                    })
                    .collect();
                sock.del_rules(&dels, &ctx)
            }
            None => {
                let mut doomed: Vec<ListedRule> = Vec::new();
                for (f, _) in &families {
                    let rules = nft::list(&ctx, f, TABLE, None)?.unwrap_or_default();
                    doomed.extend(rules.into_iter().filter(|r| {
                        OWNED_CHAINS.contains(&r.chain.as_str())
                            && r.comment.as_deref() == Some(container_id)
                    }));
                }
                if doomed.is_empty() {
                    return Ok(());
                }
                let script = nft::delete_lines(TABLE, &doomed.iter().collect::<Vec<_>>());
                nft::apply(&ctx, &script)
            }
        };
        match outcome {
            Ok(()) => {
                // Closing now would wait for the deleted rules' RCU grace
                // period; see nftnl "Closing after a delete".
                if let Some(s) = sock.take() {
                    s.linger();
                }
                return Ok(());
            }
            Err(Error::Command { .. }) if attempt == 0 => attempt += 1,
            Err(e) if attempt == 0 && e.errno() == Some(libc::ENOENT) => attempt += 1,
            other => return other,
        }
    }
}

/// Verify that every rule [`add_port_mappings`] would add for `spec` is
/// present (rule text and comment), and that the base chains still jump to
/// `hostports_all` and it to `hostports`. The error names the first missing
/// rule and its chain. Stricter than upstream's CHECK, which only counts
/// comments.
pub fn check_port_mappings(spec: &PortmapSpec) -> Result<()> {
    let ctx = format!(
        "check port mappings for {} ({}, {})",
        spec.container_id, spec.network, spec.ifname
    );
    validate(&ctx, spec)?;
    if spec.mappings.is_empty() {
        return Ok(());
    }
    for fr in expected(spec) {
        let f = fr.family;
        let Some(listed) = nft::list(&ctx, f, TABLE, None)? else {
            return Err(Error::NotFound {
                what: format!("{ctx}: table {f} {TABLE}"),
            });
        };
        let has = |chain: &str, text: &str, comment: Option<&str>| {
            listed
                .iter()
                .any(|r| r.chain == chain && r.text == text && r.comment.as_deref() == comment)
        };
        let texts: Vec<(&str, String)> = fr.chained().map(|(c, r)| (c, r.text())).collect();
        let jump_all = format!("fib daddr type local jump {HOSTPORTS_ALL}");
        let jump_hp = format!("jump {HOSTPORTS}");
        let wanted = [
            ("prerouting", jump_all.as_str(), None),
            ("output", jump_all.as_str(), None),
            (HOSTPORTS_ALL, jump_hp.as_str(), None),
        ]
        .into_iter()
        .chain(
            texts
                .iter()
                .map(|(chain, r)| (*chain, r.as_str(), Some(spec.container_id))),
        );
        for (chain, text, comment) in wanted {
            if !has(chain, text, comment) {
                let c = comment
                    .map(|c| format!(" comment \"{c}\""))
                    .unwrap_or_default();
                return Err(Error::NotFound {
                    what: format!("{ctx}: rule `{text}`{c} in chain {f} {TABLE} {chain}"),
                });
            }
        }
    }
    Ok(())
}

/// Every distinct comment (= container ID) on a rule in the owned chains of
/// `ip`/`ip6 cni_hostport`, sorted. For GC: the plugin maps each to its
/// attachment records and calls [`del_port_mappings`] for the orphans. Note
/// that upstream portmap's rules show up here too (same layout).
pub fn list_port_mapping_owners() -> Result<Vec<String>> {
    list_port_mapping_owners_via(NftPath::from_env())
}

/// [`list_port_mapping_owners`] through `path`.
pub fn list_port_mapping_owners_via(path: NftPath) -> Result<Vec<String>> {
    let ctx = format!("list port mapping owners in table {TABLE}");
    let mut sock = match path {
        NftPath::Netlink => NfSocket::open().ok(),
        NftPath::Cli => None,
    };
    let mut owners = Vec::new();
    for (f, nfproto) in [("ip", NFPROTO_IPV4), ("ip6", NFPROTO_IPV6)] {
        let rules: Vec<(String, Option<String>)> = match sock.as_mut() {
            Some(sock) => sock
                .dump_rules(nfproto, TABLE, &ctx)?
                .into_iter()
                .map(|r| (r.chain, r.comment))
                .collect(),
            None => nft::list(&ctx, f, TABLE, None)?
                .unwrap_or_default()
                .into_iter()
                .map(|r| (r.chain, r.comment))
                .collect(),
        };
        for (chain, comment) in rules {
            if let (true, Some(c)) = (OWNED_CHAINS.contains(&chain.as_str()), comment) {
                owners.push(c);
            }
        }
    }
    owners.sort();
    owners.dedup();
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(ips: &'a [IpAddr], maps: &'a [PortMapping], masq_all: bool) -> PortmapSpec<'a> {
        PortmapSpec {
            network: "cbr",
            container_id: "c1",
            ifname: "eth0",
            container_ips: ips,
            mappings: maps,
            snat: true,
            masq_all,
        }
    }

    #[test]
    fn rule_shapes_follow_upstream() {
        let ips = ["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let maps = [
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Proto::Tcp,
                host_ip: None,
            },
            PortMapping {
                host_port: 53,
                container_port: 5353,
                protocol: Proto::Udp,
                host_ip: Some("192.168.1.1".parse().unwrap()),
            },
            PortMapping {
                host_port: 99,
                container_port: 99,
                protocol: Proto::Sctp,
                host_ip: Some("0.0.0.0".parse().unwrap()),
            },
        ];
        let text = |v: &[Shape]| v.iter().map(Shape::text).collect::<Vec<_>>();
        let r = expected(&spec(&ips, &maps, false));
        assert_eq!(
            text(&r[0].hostports),
            [
                "tcp dport 8080 dnat to 10.0.0.2:80",
                "ip daddr 192.168.1.1 udp dport 53 dnat to 10.0.0.2:5353",
                "sctp dport 99 dnat to 10.0.0.2:99",
            ]
        );
        assert_eq!(
            text(&r[0].masq),
            [
                "ip saddr 10.0.0.2 ip daddr 10.0.0.2 masquerade",
                "ip saddr 127.0.0.1 ip daddr 10.0.0.2 masquerade",
            ]
        );
        // v4 hostIPs are skipped for the v6 address; 0.0.0.0 is too (it is
        // IPv4), exactly as upstream's family check does.
        assert_eq!(
            text(&r[1].hostports),
            ["tcp dport 8080 dnat to [fd00::2]:80"]
        );
        assert_eq!(
            text(&r[1].masq),
            ["ip6 saddr fd00::2 ip6 daddr fd00::2 masquerade"]
        );
        let r = expected(&spec(&ips, &maps, true));
        assert_eq!(
            text(&r[0].masq),
            ["ip saddr 0.0.0.0/0 ip daddr 10.0.0.2 masquerade"]
        );
        assert_eq!(
            text(&r[1].masq),
            ["ip6 saddr ::/0 ip6 daddr fd00::2 masquerade"]
        );
    }

    #[test]
    fn hash_matches_portmap_chain_name() {
        // python3: "CNI-DN-" + sha512(b"cbrtestcid1").hexdigest()[:21]
        assert_eq!(hostport_hash("cbrtest", "cid1"), "3559618f612683956afb4");
    }

    #[test]
    fn rejects_injection() {
        let ips = ["10.0.0.2".parse().unwrap()];
        let mut s = spec(&ips, &[], false);
        s.container_id = "x\" ; flush ruleset ; \"";
        // validate() only: nothing in a unit test may reach the host's nft.
        assert!(validate("t", &s).is_err());
        let maps = [PortMapping {
            host_port: 0,
            container_port: 80,
            protocol: Proto::Tcp,
            host_ip: None,
        }];
        assert!(validate("t", &spec(&ips, &maps, false)).is_err());
    }
}
