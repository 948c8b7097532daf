//! The choice itself, over a [`Snapshot`] of the kernel's links, addresses
//! and routes: no I/O here, so every rule is unit-tested. The ways of
//! finding an interface live in [`super::view`].
//!
//! The rules are flanneld's (`main.go` and `pkg/ipmatch` LookupExtIface,
//! `pkg/ip/iface.go`), with the deviations listed in [`super`].

use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use regex::Regex;

use super::types::{External, Families, Snapshot};
use super::view::{Complete, Try, View};
use crate::agent::IfaceArgs;

/// The chosen interface, and the options tried before it and why they
/// did not do (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub external: External,
    pub skipped: Vec<String>,
}

/// Pick the public interface and addresses as flanneld does: each
/// `--iface` in order (an address finds the interface holding it, anything
/// else is a name; an empty value means the default route), then each
/// `--iface-regex` (addresses first, then names), then `--iface-can-reach`.
/// With none of those, the interface holding `--public-ip` (else
/// `--public-ipv6`), else the default route's.
pub fn select(snap: &Snapshot, a: &IfaceArgs, fams: Families) -> Result<Selection> {
    if !fams.v4 && !fams.v6 {
        bail!("the network config turns both IPv4 and IPv6 off: no address family to pick an interface for");
    }
    let regexes = compile(&a.iface_regex)?;
    let v = View::new(snap, fams, a.public_ipv6);
    let tries = plan(a, &regexes);
    let mut skipped = Vec::new();
    let (link, ip4, ip6) = if tries.is_empty() {
        implicit(&v, a)?
    } else {
        let mut found = None;
        for (what, t) in &tries {
            match v.find(t).and_then(|f| v.complete(f)) {
                Ok(f) => {
                    found = Some(f);
                    break;
                }
                Err(e) => skipped.push(format!("{what}: {e}")),
            }
        }
        found.ok_or_else(|| {
            anyhow!(
                "no interface matches the options given: {}",
                skipped.join("; ")
            )
        })?
    };
    let external = External {
        index: link.index,
        name: link.name.clone(),
        mtu: link.mtu,
        ip: ip4.map(|own| a.public_ip.unwrap_or(own)),
        iface_ip: ip4,
        ip6: ip6.map(|own| a.public_ipv6.unwrap_or(own)),
        iface_ip6: ip6,
    };
    Ok(Selection { external, skipped })
}

/// Every --iface-regex compiled up front (None for an empty one): a typo
/// is an error, not an option silently passed over.
fn compile(res: &[String]) -> Result<Vec<(&str, Option<Regex>)>> {
    res.iter()
        .map(|r| match r.as_str() {
            "" => Ok((r.as_str(), None)),
            _ => Regex::new(r)
                .map(|re| (r.as_str(), Some(re)))
                .map_err(|e| anyhow!("--iface-regex {r}: not a valid regular expression: {e}")),
        })
        .collect()
}

/// The options to try, in flanneld's order, each with its flag and value.
fn plan<'r>(a: &'r IfaceArgs, regexes: &'r [(&'r str, Option<Regex>)]) -> Vec<(String, Try<'r>)> {
    let mut tries = Vec::new();
    for s in &a.iface {
        let t = match s.parse::<IpAddr>() {
            _ if s.is_empty() => Try::Default,
            Ok(ip) => Try::Ip(ip),
            Err(_) => Try::Name(s),
        };
        tries.push((label("--iface", s), t));
    }
    for (s, re) in regexes {
        let t = re.as_ref().map_or(Try::Default, Try::Regex);
        tries.push((label("--iface-regex", s), t));
    }
    if let Some(dst) = a.iface_can_reach {
        tries.push((format!("--iface-can-reach {dst}"), Try::Reach));
    }
    tries
}

/// No --iface, --iface-regex or --iface-can-reach: the interface holding
/// --public-ip, else the one holding --public-ipv6, else the default
/// route's.
fn implicit<'a>(v: &View<'a>, a: &IfaceArgs) -> Result<Complete<'a>> {
    let how = "with no --iface, --iface-regex or --iface-can-reach, the interface holding";
    let (t, flag) = match (a.public_ip, a.public_ipv6) {
        (Some(ip), _) => (Try::Ip(IpAddr::V4(ip)), format!("--public-ip {ip}")),
        (None, Some(ip)) => (Try::Ip(IpAddr::V6(ip)), format!("--public-ipv6 {ip}")),
        (None, None) => {
            return v.find(&Try::Default).and_then(|f| v.complete(f)).map_err(|e| {
                anyhow!("cannot pick the public interface: {e}; name it with --iface, --iface-regex or --iface-can-reach")
            })
        }
    };
    v.find(&t)
        .and_then(|f| v.complete(f))
        .map_err(|e| anyhow!("{flag}: {e} ({how} the public address is used)"))
}

/// `--iface eth0`, or `--iface ""` for an empty value.
fn label(flag: &str, value: &str) -> String {
    if value.is_empty() {
        format!("{flag} \"\" (the default route's interface)")
    } else {
        format!("{flag} {value}")
    }
}
