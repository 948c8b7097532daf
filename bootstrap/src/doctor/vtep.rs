//! The vxlan device of each family (`flannel.<VNI>`, `flannel-v6.<VNI>`)
//! against the config and this node's lease, and the MTU: each device fits
//! its underlay, FLANNEL_MTU fits every plane.

use ipnet::IpNet;
use netkit::{Netlink, VxlanInfo};

use super::ctx::Node;
use super::finding::Finding;
use super::node::RESTART_AGENT;
use super::want::{check_name, want, Want};
use crate::netconfig::VxlanOptions;

/// Addresses of family `v6` on interface `index`, link-local left out.
fn addrs(nl: &mut Netlink, index: u32, v6: bool) -> Vec<IpNet> {
    nl.addr()
        .list(Some(index))
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.addr)
        .filter(|n| match n {
            IpNet::V4(_) => !v6,
            IpNet::V6(x) => v6 && (x.addr().segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect()
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The device's addresses of the family against the one it should have.
fn addr_mismatch(have: &[IpNet], want_addr: IpNet) -> Option<String> {
    if !have.contains(&want_addr) {
        let h: Vec<String> = have.iter().map(ToString::to_string).collect();
        return Some(format!(
            "has [{}], the lease wants {want_addr}",
            h.join(", ")
        ));
    }
    let extra: Vec<String> = have
        .iter()
        .filter(|a| **a != want_addr)
        .map(ToString::to_string)
        .collect();
    (!extra.is_empty()).then(|| {
        format!(
            "also carries {} besides {want_addr} (an old subnet's)",
            extra.join(", ")
        )
    })
}

/// How the device differs from what the lease and the config want.
fn mismatches(w: &Want, info: &VxlanInfo, nl: &mut Netlink, want_addr: IpNet) -> Vec<String> {
    let o = &w.settings.vxlan;
    let mut why = Vec::new();
    if !info.link.up {
        why.push("it is down".to_string());
    }
    why.extend(addr_mismatch(&addrs(nl, info.link.index, w.v6), want_addr));
    if let (Some(want), Some(mac)) = (w.vtep_mac(), info.link.mac) {
        if mac != want {
            why.push(format!(
                "MAC {} but the lease says VtepMAC {} (other nodes send to the wrong MAC)",
                netkit::fmt_mac(&mac),
                netkit::fmt_mac(&want)
            ));
        }
    }
    if let Some(want) = w.public() {
        if info.local != Some(want) {
            let l = info.local.map_or("none".into(), |l| l.to_string());
            why.push(format!(
                "local address {l} but the lease's public address is {want}"
            ));
        }
    }
    if info.vni != Some(o.vni) {
        let v = info.vni.map_or("none".into(), |v| v.to_string());
        why.push(format!("VNI {v}, the network config says {}", o.vni));
    }
    if info.port.is_some_and(|p| p != o.port) {
        why.push(format!(
            "UDP port {}, the network config says {} (other nodes send elsewhere)",
            info.port.unwrap_or_default(),
            o.port
        ));
    }
    if info.gbp != o.gbp {
        why.push(format!(
            "GBP {}, the network config says {}",
            on_off(info.gbp),
            on_off(o.gbp)
        ));
    }
    let learning = info.learning.unwrap_or(true);
    if learning != o.learning {
        why.push(format!(
            "learning {}, the network config says {}",
            on_off(learning),
            on_off(o.learning)
        ));
    }
    why
}

/// The `vtep` / `vtep-v6` check: the family's device exists, is a vxlan
/// device, up, with this node's subnet address (`/32` or `/128` of the
/// network address), the lease's VtepMAC and public address, and the
/// config's VNI, port, GBP and Learning.
pub fn device(w: &Want, nl: &mut Netlink) -> Finding {
    let check = check_name("vtep", w.v6);
    let name = w.device().unwrap_or_default();
    let fam = w.family();
    let info = match nl.link().vxlan_info(&name) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Finding::problem(
                check,
                format!("{name} is missing: pods here cannot reach other nodes over {fam}"),
                format!("the agent recreates it within seconds when running; {RESTART_AGENT}"),
            )
        }
        Err(e) => return Finding::skipped(check, format!("cannot read {name}: {e}")),
    };
    if info.link.kind.as_deref() != Some("vxlan") {
        return Finding::problem(
            check,
            format!(
                "{name} is a {} device, not vxlan: flannel's tunnel cannot be created",
                info.link.kind.as_deref().unwrap_or("physical")
            ),
            format!("delete it (`ip link del {name}`), then restart the agent"),
        );
    }
    let o = &w.settings.vxlan;
    let want_addr = IpNet::new(w.own.network(), w.own.max_prefix_len()).expect("host prefix");
    let why = mismatches(w, &info, nl, want_addr);
    if why.is_empty() {
        return Finding::ok(
            check,
            format!(
                "{name} matches the lease ({want_addr}, VNI {}, port {}, local {})",
                o.vni,
                o.port,
                info.local.map_or("-".into(), |l| l.to_string())
            ),
        );
    }
    Finding::problem(
        check,
        format!(
            "{name} does not match this node's lease and the network config: {}",
            why.join("; ")
        ),
        format!("{RESTART_AGENT} (it replaces a stale {name})"),
    )
}

/// One device's MTU against its underlay and Backend MTU:
/// `Ok(note)` or `Err((what, fix))`.
fn device_mtu(
    w: &Want,
    name: &str,
    dev: u32,
    under: &netkit::Link,
) -> Result<String, (String, String)> {
    let overhead = VxlanOptions::overhead(w.v6);
    let fits = under.mtu.saturating_sub(overhead);
    if dev > fits {
        let cause = match w.settings.vxlan.mtu {
            Some(m) if m > under.mtu => format!(
                " (the network config's Backend MTU {m} is above {}'s)",
                under.name
            ),
            _ => String::new(),
        };
        return Err((
            format!(
                "{name} has MTU {dev} but {} has {}: vxlan over {} needs {overhead} bytes, so packets over {fits} bytes are dropped between nodes (small pings work, large transfers hang){cause}",
                under.name, under.mtu, w.family()
            ),
            format!("set {name} to {fits} (`ip link set {name} mtu {fits}`) or restart the agent, which sizes it from the interface (lower or remove Backend MTU if it is set too high); pods created since keep the wrong MTU until recreated"),
        ));
    }
    if let Some(m) = w.settings.vxlan.mtu {
        let want_mtu = w.settings.vxlan.device_mtu(w.v6, under.mtu);
        if dev != want_mtu {
            return Err((
                format!(
                    "{name} has MTU {dev}, but the network config's Backend MTU {m} makes it {want_mtu}"
                ),
                RESTART_AGENT.to_string(),
            ));
        }
    }
    Ok(format!(
        "{name} MTU {dev} fits {} (MTU {})",
        under.name, under.mtu
    ))
}

/// The `mtu` check: each vxlan device fits its underlay (50 bytes of
/// overhead over IPv4, 70 over IPv6) and has the MTU the config asks for;
/// FLANNEL_MTU is not above any plane's (the device's, or for host-gw the
/// interface's).
pub fn mtu(node: &Node) -> Finding {
    const CHECK: &str = "mtu";
    let Ok(mut nl) = Netlink::open() else {
        return Finding::skipped(CHECK, "cannot open netlink");
    };
    let (mut ok, mut bad, mut fixes) = (Vec::new(), Vec::new(), Vec::new());
    let mut planes: Vec<(String, u32)> = Vec::new();
    for v6 in node.families() {
        let Ok(w) = want(node, v6) else { continue };
        let Some(under) = w.external(&mut nl) else {
            continue;
        };
        let Some(name) = w.device() else {
            planes.push((under.name.clone(), under.mtu));
            ok.push(format!("host-gw over {} (MTU {})", under.name, under.mtu));
            continue;
        };
        let Some(info) = nl.link().vxlan_info(&name).ok().flatten() else {
            continue;
        };
        planes.push((name.clone(), info.link.mtu));
        match device_mtu(&w, &name, info.link.mtu, &under) {
            Ok(note) => ok.push(note),
            Err((what, fix)) => {
                bad.push(what);
                fixes.push(fix);
            }
        }
    }
    let env_mtu = node.env.as_ref().and_then(|e| e.mtu());
    if let (Some(m), Some((name, least))) = (env_mtu, planes.iter().min_by_key(|p| p.1)) {
        if m > *least {
            bad.push(format!(
                "subnet.env says FLANNEL_MTU={m}, more than {name}'s {least}: pods get an MTU the network cannot carry"
            ));
            fixes.push(RESTART_AGENT.to_string());
        }
    }
    if !bad.is_empty() {
        fixes.dedup();
        return Finding::problem(CHECK, bad.join("; "), fixes.join("; "));
    }
    if ok.is_empty() {
        return Finding::skipped(CHECK, "no network device of this node to check");
    }
    Finding::ok(CHECK, ok.join("; "))
}
