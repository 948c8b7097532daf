//! Which elements one attachment's port mappings are: the keys and data
//! ADD adds, the keys DEL looks up, and the reverse (an element read back
//! from the kernel, described in words).

use std::net::{IpAddr, Ipv4Addr};

use super::super::mapping::{PortMapping, PortmapSpec, Proto};
use super::super::nftnl::{concat_bytes, Expr, SetElem};
use super::layout::{dnat_map, masq_set, set_defs, Fam, PROTOS};
use crate::error::{Error, Result};

/// One element of the layout, with the set it goes in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub set: String,
    pub elem: SetElem,
    /// What it maps, for messages: `tcp 8080 -> 10.2.1.5:80`.
    pub what: String,
}

fn sock(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The hostIP a mapping is restricted to in `fam`: `Ok(None)` for any
/// address, `Err(())` when the mapping does not apply to `fam` (a hostIP
/// of the other family; `0.0.0.0` and `::` are addresses of their family,
/// as upstream portmap has it).
fn host_ip_in(m: &PortMapping, fam: Fam) -> std::result::Result<Option<IpAddr>, ()> {
    match m.host_ip {
        Some(h) if Fam::of(h.is_ipv6()) != fam => Err(()),
        Some(h) if !h.is_unspecified() => Ok(Some(h)),
        _ => Ok(None),
    }
}

/// The DNAT element of mapping `m` toward `pod` (key only when `pod` is
/// `None`: what DEL looks up).
fn dnat(m: &PortMapping, fam: Fam, host_ip: Option<IpAddr>, pod: Option<IpAddr>) -> Planned {
    let port = m.host_port.to_be_bytes();
    let key = match host_ip {
        Some(h) => concat_bytes(&[&Expr::addr_bytes(h), &port]),
        None => concat_bytes(&[&port]),
    };
    let data = pod.map(|p| concat_bytes(&[&Expr::addr_bytes(p), &m.container_port.to_be_bytes()]));
    let from = match host_ip {
        Some(h) => sock(h, m.host_port),
        None => m.host_port.to_string(),
    };
    let to = pod.map_or_else(|| "?".to_string(), |p| sock(p, m.container_port));
    Planned {
        set: dnat_map(fam, m.protocol, host_ip.is_some()),
        elem: SetElem {
            key,
            data,
            comment: None,
        },
        what: format!("{} {from} -> {to}", m.protocol.as_str()),
    }
}

/// The masquerade pairs of a pod address: hairpin, and localhost (IPv4).
fn masq(pod: IpAddr) -> Vec<Planned> {
    let fam = Fam::of(pod.is_ipv6());
    let mut sources = vec![pod];
    if fam == Fam::V4 {
        sources.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    sources
        .into_iter()
        .map(|src| Planned {
            set: masq_set(fam),
            elem: SetElem {
                key: concat_bytes(&[&Expr::addr_bytes(src), &Expr::addr_bytes(pod)]),
                data: None,
                comment: None,
            },
            what: format!("masquerade {src} -> {pod}"),
        })
        .collect()
}

/// The first address of each family, as upstream portmap maps them.
fn pod_addrs(ips: &[IpAddr]) -> Vec<(Fam, IpAddr)> {
    Fam::BOTH
        .iter()
        .filter_map(|f| {
            ips.iter()
                .find(|a| Fam::of(a.is_ipv6()) == *f)
                .map(|a| (*f, *a))
        })
        .collect()
}

/// Every element ADD adds for `spec`, each commented with `owner`. Two
/// mappings of the same key are refused unless they are the same mapping.
pub(crate) fn planned(spec: &PortmapSpec, owner: &str, ctx: &str) -> Result<Vec<Planned>> {
    let mut out: Vec<Planned> = Vec::new();
    for (fam, pod) in pod_addrs(spec.container_ips) {
        for m in spec.mappings {
            let Ok(host_ip) = host_ip_in(m, fam) else {
                continue;
            };
            let p = dnat(m, fam, host_ip, Some(pod));
            match out
                .iter()
                .find(|o| o.set == p.set && o.elem.key == p.elem.key)
            {
                Some(o) if o.elem.data == p.elem.data => continue,
                Some(o) => {
                    return Err(Error::invalid(
                        ctx,
                        format!(
                            "port mappings `{}` and `{}` claim the same host port",
                            o.what, p.what
                        ),
                    ))
                }
                None => out.push(p),
            }
        }
        if spec.snat {
            out.extend(masq(pod));
        }
    }
    for p in &mut out {
        p.elem.comment = Some(owner.to_string());
    }
    Ok(out)
}

/// The DNAT keys DEL looks up for `spec`: those of the families of its
/// addresses, or of both when it names none (its ADD result was never
/// recorded). Data and owner are the kernel's to tell.
pub(crate) fn dnat_keys(spec: &PortmapSpec) -> Vec<Planned> {
    let fams: Vec<Fam> = match pod_addrs(spec.container_ips) {
        v if v.is_empty() => Fam::BOTH.to_vec(),
        v => v.into_iter().map(|(f, _)| f).collect(),
    };
    let mut out: Vec<Planned> = Vec::new();
    for fam in fams {
        for m in spec.mappings {
            if let Ok(host_ip) = host_ip_in(m, fam) {
                let p = dnat(m, fam, host_ip, None);
                if !out
                    .iter()
                    .any(|o| o.set == p.set && o.elem.key == p.elem.key)
                {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The masquerade keys of `pods` (DEL: hairpin and localhost pairs).
pub(crate) fn masq_keys(pods: &[IpAddr]) -> Vec<Planned> {
    pod_addrs(pods)
        .into_iter()
        .flat_map(|(_, p)| masq(p))
        .collect()
}

/// The pod address in a DNAT element's data (`addr . port`).
pub(crate) fn data_addr(set: &str, data: &[u8]) -> Option<IpAddr> {
    addr_at(fam_of_set(set)?, data, 0)
}

fn fam_of_set(set: &str) -> Option<Fam> {
    Fam::BOTH.into_iter().find(|f| {
        set.ends_with(&format!("_{}", f.name()))
            || PROTOS
                .iter()
                .any(|p| set.ends_with(&format!("_{}_{}", f.name(), p.as_str())))
    })
}

/// The address of `fam` at byte `at` of `v`.
fn addr_at(fam: Fam, v: &[u8], at: usize) -> Option<IpAddr> {
    match fam {
        Fam::V4 => <[u8; 4]>::try_from(v.get(at..at + 4)?)
            .ok()
            .map(|a| IpAddr::V4(a.into())),
        Fam::V6 => <[u8; 16]>::try_from(v.get(at..at + 16)?)
            .ok()
            .map(|a| IpAddr::V6(a.into())),
    }
}

fn port_at(v: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(at..at + 2)?.try_into().ok()?))
}

/// An element of one of the layout's sets in words (`tcp 8080 ->
/// 10.2.1.5:80`, `masquerade 127.0.0.1 -> 10.2.1.5`) and the pod address
/// it points at; `None` for a set that is not the layout's or bytes that
/// do not fit it.
pub(crate) fn describe(set: &str, e: &SetElem) -> Option<(String, IpAddr)> {
    let (_, key_types, _) = set_defs().into_iter().find(|(n, _, _)| n == set)?;
    let fam = fam_of_set(set)?;
    let word = fam.addr().len().div_ceil(4) * 4;
    if set == masq_set(fam) {
        let (src, dst) = (addr_at(fam, &e.key, 0)?, addr_at(fam, &e.key, word)?);
        return Some((format!("masquerade {src} -> {dst}"), dst));
    }
    let proto: Proto = PROTOS
        .into_iter()
        .find(|p| set.ends_with(&format!("_{}", p.as_str())))?;
    let data = e.data.as_deref()?;
    let (pod, to_port) = (addr_at(fam, data, 0)?, port_at(data, word)?);
    let from = match key_types.len() {
        2 => sock(addr_at(fam, &e.key, 0)?, port_at(&e.key, word)?),
        _ => port_at(&e.key, 0)?.to_string(),
    };
    Some((
        format!("{} {from} -> {}", proto.as_str(), sock(pod, to_port)),
        pod,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(ips: &'a [IpAddr], maps: &'a [PortMapping]) -> PortmapSpec<'a> {
        PortmapSpec {
            network: "cbr0",
            container_id: "c1",
            ifname: "eth0",
            container_ips: ips,
            mappings: maps,
            snat: true,
            masq_all: false,
        }
    }

    fn m(host_port: u16, protocol: Proto, host_ip: Option<&str>) -> PortMapping {
        PortMapping {
            host_port,
            container_port: 80,
            protocol,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
        }
    }

    #[test]
    fn elements_follow_upstream_family_rules_and_describe_themselves() {
        let ips = ["10.0.0.2".parse().unwrap(), "fd00::2".parse().unwrap()];
        let maps = [
            m(8080, Proto::Tcp, None),
            m(53, Proto::Udp, Some("192.168.1.1")),
            m(99, Proto::Sctp, Some("0.0.0.0")),
            // A duplicate of the first is the same element.
            m(8080, Proto::Tcp, None),
        ];
        let p = planned(&spec(&ips, &maps), "cbr0/c1/eth0", "t").unwrap();
        let got: Vec<(String, String)> = p
            .iter()
            .map(|p| (p.set.clone(), describe(&p.set, &p.elem).unwrap().0))
            .collect();
        let want = [
            ("hostports_ip_tcp", "tcp 8080 -> 10.0.0.2:80"),
            (
                "hostip_hostports_ip_udp",
                "udp 192.168.1.1:53 -> 10.0.0.2:80",
            ),
            ("hostports_ip_sctp", "sctp 99 -> 10.0.0.2:80"),
            ("hostports_masq_ip", "masquerade 10.0.0.2 -> 10.0.0.2"),
            ("hostports_masq_ip", "masquerade 127.0.0.1 -> 10.0.0.2"),
            // 0.0.0.0 and 192.168.1.1 are IPv4: not mapped for fd00::2.
            ("hostports_ip6_tcp", "tcp 8080 -> [fd00::2]:80"),
            ("hostports_masq_ip6", "masquerade fd00::2 -> fd00::2"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(p
            .iter()
            .all(|p| p.elem.comment.as_deref() == Some("cbr0/c1/eth0")));
        // What ADD planned, p.what says too.
        assert_eq!(p[1].what, "udp 192.168.1.1:53 -> 10.0.0.2:80");
        let d = p[0].elem.data.as_deref().unwrap();
        assert_eq!(data_addr(&p[0].set, d), Some(ips[0]));
        // The same host port to two pod ports is refused.
        let clash = [
            m(8080, Proto::Tcp, None),
            PortMapping {
                container_port: 81,
                ..m(8080, Proto::Tcp, None)
            },
        ];
        let e = planned(&spec(&ips, &clash), "o", "t").unwrap_err();
        assert!(e.to_string().contains("claim the same host port"), "{e}");
    }

    #[test]
    fn del_keys_cover_both_families_when_the_addresses_are_unknown() {
        let maps = [
            m(8080, Proto::Tcp, None),
            m(53, Proto::Udp, Some("fd00::1")),
        ];
        let keys: Vec<String> = dnat_keys(&spec(&[], &maps))
            .into_iter()
            .map(|p| p.set)
            .collect();
        assert_eq!(
            keys,
            [
                "hostports_ip_tcp",
                "hostports_ip6_tcp",
                "hostip_hostports_ip6_udp"
            ]
        );
        let v4 = ["10.0.0.2".parse().unwrap()];
        let keys: Vec<String> = dnat_keys(&spec(&v4, &maps))
            .into_iter()
            .map(|p| p.set)
            .collect();
        assert_eq!(keys, ["hostports_ip_tcp"]);
        assert_eq!(masq_keys(&v4).len(), 2);
    }
}
