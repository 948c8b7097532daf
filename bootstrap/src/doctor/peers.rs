//! Routes to the other nodes, per family, as the agent (or flanneld)
//! programs them:
//! - vxlan: `<subnet> via <subnet network address> dev flannel[-v6].<VNI>
//!   onlink`, a permanent neighbour entry for that address with the peer's
//!   VtepMAC, and an FDB entry sending the VtepMAC to its public address;
//!   with DirectRouting, a peer on the same L2 segment gets a direct route
//!   instead;
//! - host-gw: `<subnet> via <public address> dev <interface>`.
//!
//! Also the gateway routes into the cluster network that no lease explains,
//! and [`leftovers`]: devices of another backend, VNI or family.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use netkit::{Family, Link, Neigh, Netlink, RouteEntry};

use super::ctx::Node;
use super::finding::Finding;
use super::node::RESTART_AGENT;
use super::want::{check_name, prefixes, Want};
use crate::leases::Listed;
use crate::subnet_env::family_name;

/// How a peer should be routed.
enum How {
    Tunnel { dev: u32, mac: [u8; 6] },
    Direct { ext: u32 },
}

/// What is in the kernel, read once per check.
struct Kernel {
    names: BTreeMap<u32, String>,
    routes: Vec<RouteEntry>,
    neighs: Vec<Neigh>,
    fdb: Vec<Neigh>,
}

impl Kernel {
    /// Links, the family's routes, and the device's neighbour and FDB
    /// entries.
    fn read(nl: &mut Netlink, v6: bool, dev: Option<u32>) -> Kernel {
        let family = if v6 { Family::V6 } else { Family::V4 };
        Kernel {
            names: nl
                .link()
                .list()
                .unwrap_or_default()
                .into_iter()
                .map(|l| (l.index, l.name))
                .collect(),
            routes: nl.route().list(family).unwrap_or_default(),
            neighs: dev
                .map(|i| nl.neigh().list(i, v6).unwrap_or_default())
                .unwrap_or_default(),
            fdb: dev
                .map(|i| nl.neigh().list_fdb(i).unwrap_or_default())
                .unwrap_or_default(),
        }
    }

    /// Gateway routes into `network` on `ours` (interface, device) that
    /// lead to none of `expected`.
    fn stale(&self, network: IpNet, expected: &[IpNet], ours: &[Option<u32>]) -> Vec<String> {
        self.routes
            .iter()
            .filter(|r| {
                r.table == 254
                    && r.gw.is_some()
                    && ours.contains(&r.oif)
                    && network.contains(&r.dst)
                    && !expected.contains(&r.dst)
            })
            .map(|r| {
                format!(
                    "stale route {} {}: no lease holds {}",
                    r.dst,
                    self.route_text(r),
                    r.dst
                )
            })
            .collect()
    }

    fn name(&self, index: Option<u32>) -> String {
        index
            .and_then(|i| self.names.get(&i).cloned())
            .unwrap_or_else(|| "?".into())
    }

    fn route_text(&self, r: &RouteEntry) -> String {
        match r.gw {
            Some(gw) => format!("via {gw} dev {}", self.name(r.oif)),
            None => format!("dev {}", self.name(r.oif)),
        }
    }

    /// Why `subnet` is not routed as `how` says, if it is not.
    fn wrong(&self, subnet: IpNet, public: IpAddr, how: &How) -> Vec<String> {
        let (gw, oif) = match how {
            How::Tunnel { dev, .. } => (subnet.network(), *dev),
            How::Direct { ext } => (public, *ext),
        };
        let want = format!(
            "{subnet} via {gw} dev {}{}",
            self.name(Some(oif)),
            if matches!(how, How::Tunnel { .. }) {
                " onlink"
            } else {
                ""
            }
        );
        let mut why = Vec::new();
        let found: Vec<&RouteEntry> = self
            .routes
            .iter()
            .filter(|r| r.dst == subnet && r.table == 254)
            .collect();
        if !found.iter().any(|r| r.gw == Some(gw) && r.oif == Some(oif)) {
            match found.first() {
                None => why.push(format!("no route (want `{want}`)")),
                Some(r) => why.push(format!(
                    "its route goes {} (want `{want}`)",
                    self.route_text(r)
                )),
            }
        }
        if let How::Tunnel { mac, .. } = how {
            let m = netkit::fmt_mac(mac);
            if !self
                .neighs
                .iter()
                .any(|n| n.ip == Some(gw) && n.mac == Some(*mac) && n.permanent)
            {
                why.push(format!("no permanent neighbour entry {gw} lladdr {m}"));
            }
            if !self
                .fdb
                .iter()
                .any(|f| f.mac == Some(*mac) && f.ip == Some(public) && f.permanent)
            {
                why.push(format!("no FDB entry {m} dst {public}"));
            }
        }
        why
    }
}

fn show_list(items: &[String]) -> String {
    let mut s = items.iter().take(8).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 8 {
        s += &format!("; and {} more", items.len() - 8);
    }
    s
}

/// The interface other nodes are reached through and the family's vxlan
/// device (name, index), or the finding that says why not.
fn locate(w: &Want, nl: &mut Netlink) -> Result<(Link, Option<(String, u32)>), Finding> {
    let check = check_name("peers", w.v6);
    let fam = w.family();
    let Some(ext) = w.external(nl) else {
        return Err(match w.public() {
            Some(ip) => Finding::problem(
                check,
                format!("this node's {fam} public address {ip} (in its lease) is on no interface here: other nodes send to an address this node does not have"),
                RESTART_AGENT,
            ),
            None => Finding::skipped(check, "no public address of this node to find its interface by (see the lease check)"),
        });
    };
    let Some(name) = w.device() else {
        return Ok((ext, None));
    };
    match nl.link().vxlan_info(&name).ok().flatten() {
        Some(i) => Ok((ext, Some((name, i.link.index)))),
        None => Err(Finding::skipped(
            check,
            format!("{name} is missing (see the vtep check)"),
        )),
    }
}

/// Where things are: the external interface, its prefixes of the family,
/// the vxlan device.
struct Place<'a> {
    ext: &'a Link,
    on_link: &'a [IpNet],
    dev: Option<u32>,
}

/// How peer lease `p` should be routed in family `w.v6`: (subnet, public
/// address, how), or why it cannot be.
fn plan(w: &Want, p: &Listed, at: &Place) -> Result<(IpNet, IpAddr, How), String> {
    let fam = w.family();
    let a = p.attrs().ok_or("unreadable")?;
    let key = p.subnets();
    let (Some(subnet), Some(public)) = (key.get(w.v6), a.public(w.v6)) else {
        return Err(format!(
            "{} ({}): its lease has no {fam} {} (its agent runs without {fam}), so pods here cannot reach its pods over {fam}",
            key.show(),
            a.public(!w.v6).map_or("-".into(), |i| i.to_string()),
            if key.get(w.v6).is_none() { "subnet" } else { "public address" }
        ));
    };
    let direct_ok = !w.settings.is_vxlan() || w.settings.vxlan.direct_routing;
    if direct_ok && at.on_link.iter().any(|n| n.contains(&public)) {
        return Ok((subnet, public, How::Direct { ext: at.ext.index }));
    }
    let Some(dev) = at.dev else {
        return Err(format!(
            "{subnet} (node {public}): {public} is not on the same L2 segment as {} ({}): host-gw cannot route to it (use vxlan, or vxlan with DirectRouting, across routed networks)",
            at.ext.name,
            at.on_link.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        ));
    };
    match a.vxlan(w.v6) {
        Some(d) => Ok((subnet, public, How::Tunnel { dev, mac: d.vtep_mac })),
        None => Err(format!(
            "{subnet} (node {public}): its lease has no {fam} VtepMAC, so no tunnel can be set up to it (its agent must rewrite the lease)"
        )),
    }
}

/// Peers announcing another backend than the config's.
fn other_backends(node: &Node, w: &Want) -> Vec<String> {
    node.other_backend()
        .iter()
        .map(|p| {
            format!(
                "{} (node {}) announces backend {:?}, but the network config says {}: this node does not route to it",
                p.subnets().show(),
                p.attrs()
                    .and_then(|a| a.public(w.v6).or(a.public(!w.v6)))
                    .map_or("-".into(), |i| i.to_string()),
                p.attrs().map_or("", |a| a.backend.as_str()),
                w.settings.backend
            )
        })
        .collect()
}

/// The `peers` / `peers-v6` check.
pub fn check(node: &Node, w: &Want, nl: &mut Netlink) -> Finding {
    let check = check_name("peers", w.v6);
    let fam = w.family();
    let (ext, dev) = match locate(w, nl) {
        Ok(v) => v,
        Err(f) => return f,
    };
    let k = Kernel::read(nl, w.v6, dev.as_ref().map(|d| d.1));
    let on_link = prefixes(nl, ext.index, w.v6);
    let at = Place {
        ext: &ext,
        on_link: &on_link,
        dev: dev.as_ref().map(|d| d.1),
    };
    let mut bad = Vec::new();
    let mut expected: Vec<IpNet> = vec![w.own];
    let (mut tunnel, mut direct) = (0, 0);
    for p in node.peers() {
        let (subnet, public, how) = match plan(w, p, &at) {
            Ok(v) => v,
            Err(why) => {
                bad.push(why);
                continue;
            }
        };
        expected.push(subnet);
        match how {
            How::Tunnel { .. } => tunnel += 1,
            How::Direct { .. } => direct += 1,
        }
        let why = k.wrong(subnet, public, &how);
        if !why.is_empty() {
            bad.push(format!("{subnet} (node {public}): {}", why.join(", ")));
        }
    }
    bad.extend(k.stale(w.network, &expected, &[Some(ext.index), at.dev]));
    if node.families().first() == Some(&w.v6) {
        bad.extend(other_backends(node, w));
    }
    if !bad.is_empty() {
        return Finding::problem(
            check,
            format!(
                "{fam}: {} problem(s) with the routes to other nodes: {}",
                bad.len(),
                show_list(&bad)
            ),
            format!(
                "a running agent puts back routes, neighbour and FDB entries as soon as the kernel reports them removed, and compares every entry at its next resync (--resync-interval, 10 min by default); otherwise {RESTART_AGENT}. A node announcing another backend or missing a family must restart its own agent"
            ),
        );
    }
    let through = match &dev {
        Some((name, _)) if direct > 0 => {
            format!("{tunnel} through {name}, {direct} direct via {}", ext.name)
        }
        Some((name, _)) => format!("through {name}"),
        None => format!("via {} (host-gw)", ext.name),
    };
    Finding::ok(
        check,
        format!(
            "{fam}: {} other node(s), every one routed {through}",
            tunnel + direct
        ),
    )
}

/// The `leftovers` check: no vxlan device of another backend, VNI or
/// family (a node that switched vxlan → host-gw, changed VNI, or turned a
/// family off still routes part of the cluster into it).
pub fn leftovers(node: &Node) -> Finding {
    const CHECK: &str = "leftovers";
    let Some(s) = node.settings() else {
        return Finding::skipped(
            CHECK,
            "no valid network config to compare with (see the etcd check)",
        );
    };
    let Ok(mut nl) = Netlink::open() else {
        return Finding::skipped(CHECK, "cannot open netlink");
    };
    let keep: Vec<String> = [false, true]
        .into_iter()
        .filter(|v6| s.is_vxlan() && s.network(*v6).is_some())
        .map(|v6| s.vxlan.device_name(v6))
        .collect();
    let mut left = Vec::new();
    for l in nl.link().list().unwrap_or_default() {
        let v6 = l.name.starts_with("flannel-v6.");
        let ours = v6 || l.name.starts_with("flannel.");
        if !ours || keep.contains(&l.name) || l.kind.as_deref() != Some("vxlan") {
            continue;
        }
        let why = if !s.is_vxlan() {
            format!("the network uses {} now", s.backend)
        } else if s.network(v6).is_none() {
            format!("{} is off in the network config", family_name(v6))
        } else {
            format!("the network uses VNI {} now", s.vxlan.vni)
        };
        left.push((l.name, why));
    }
    if left.is_empty() {
        return Finding::ok(
            CHECK,
            match keep.is_empty() {
                true => "no flannel vxlan device, as host-gw wants".to_string(),
                false => format!("no flannel device besides {}", keep.join(", ")),
            },
        );
    }
    let names: Vec<&str> = left.iter().map(|(n, _)| n.as_str()).collect();
    Finding::problem(
        CHECK,
        format!(
            "left from an old config: {}; traffic routed into them goes nowhere",
            left.iter()
                .map(|(n, w)| format!("{n} ({w})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        format!(
            "delete {} (`ip link del {}`), or restart the agent: it removes devices of an old config when it starts",
            if names.len() == 1 { "it" } else { "them" },
            names.join("`, `ip link del ")
        ),
    )
}
