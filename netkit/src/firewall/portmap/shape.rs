//! Upstream portmap's rule shapes (portmap_nftables.go `forwardPorts`) as
//! data: rendered as nft text for the `nft` path and CHECK, encoded as
//! expressions for netlink; and the nft scripts that create them.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::super::mapping::{PortmapSpec, Proto};
use super::super::nft::quote_comment;
use super::super::nftnl::{
    Expr, NFPROTO_IPV4, NFPROTO_IPV6, NFT_META_L4PROTO, NFT_REG_1, NFT_REG_2,
};
use super::layout::{HOSTIP_HOSTPORTS, HOSTPORTS, HOSTPORTS_ALL, MASQUERADING, TABLE};
use crate::error::Result;

/// One rule shape of upstream's `forwardPorts`, as data: rendered as nft
/// text for the `nft` path and CHECK, encoded as expressions for netlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Shape {
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
    pub(super) fn text(&self) -> String {
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
    pub(super) fn exprs(&self) -> Vec<Expr> {
        let v6 = self.v6();
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
                    e.push(Expr::daddr(v6, NFT_REG_1));
                    e.push(Expr::CmpEq(Expr::addr_bytes(*h)));
                }
                e.push(Expr::Meta(NFT_META_L4PROTO));
                e.push(Expr::CmpEq(vec![proto.number()]));
                e.push(Expr::dport(NFT_REG_1));
                e.push(Expr::CmpEq(host_port.to_be_bytes().to_vec()));
                e.push(Expr::Immediate {
                    reg: NFT_REG_1,
                    data: Expr::addr_bytes(*to),
                });
                e.push(Expr::Immediate {
                    reg: NFT_REG_2,
                    data: to_port.to_be_bytes().to_vec(),
                });
                e.push(Expr::Dnat {
                    family: if self.v6() {
                        NFPROTO_IPV6
                    } else {
                        NFPROTO_IPV4
                    },
                    proto_reg: NFT_REG_2,
                    flags: true,
                });
            }
            Shape::Masq { saddr, daddr } => {
                e.push(Expr::saddr(v6, NFT_REG_1));
                match saddr {
                    Some(s) => e.push(Expr::CmpEq(Expr::addr_bytes(*s))),
                    None => {
                        // A /0 prefix: nft masks everything away.
                        let zero = vec![0; if v6 { 16 } else { 4 }];
                        e.push(Expr::Bitwise {
                            mask: zero.clone(),
                            xor: zero.clone(),
                        });
                        e.push(Expr::CmpEq(zero));
                    }
                }
                e.push(Expr::daddr(v6, NFT_REG_1));
                e.push(Expr::CmpEq(Expr::addr_bytes(*daddr)));
                e.push(Expr::Masq);
            }
        }
        e
    }
}

/// The rules one address family gets.
pub(super) struct FamilyRules {
    pub family: &'static str,
    pub nfproto: u8,
    pub hostports: Vec<Shape>,
    pub masq: Vec<Shape>,
}

impl FamilyRules {
    /// Every rule with its chain, in the order the script adds them.
    pub(super) fn chained(&self) -> impl Iterator<Item = (&'static str, &Shape)> {
        let hp = self.hostports.iter().map(|r| (HOSTPORTS, r));
        hp.chain(self.masq.iter().map(|r| (MASQUERADING, r)))
    }
}

/// Upstream's rule shapes (portmap_nftables.go `forwardPorts`).
pub(super) fn expected(spec: &PortmapSpec) -> Vec<FamilyRules> {
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
pub(super) fn rules_script(spec: &PortmapSpec, rules: &[FamilyRules]) -> Result<String> {
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

/// The full nft script for [`add_port_mappings`](crate::firewall::add_port_mappings): tables, chains, shared
/// jumps, then the rules.
pub(super) fn add_script(spec: &PortmapSpec, rules: &[FamilyRules]) -> Result<String> {
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

#[cfg(test)]
mod tests {
    use super::super::super::mapping::tests::spec;
    use super::super::super::mapping::PortMapping;
    use super::*;

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
}
