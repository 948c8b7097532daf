//! Node checks: subnet.env against the lease, the lease's expiry, cni0 and
//! flannel.<VNI> against the lease, the vxlan MTU against the underlay,
//! ip_forward.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};

use super::{Ctx, Finding};

/// FLANNEL_SUBNET (first usable IP/len), parsed.
pub fn env_subnet(env: &BTreeMap<String, String>) -> Option<Ipv4Net> {
    env.get("FLANNEL_SUBNET")?.parse().ok()
}

const RESTART_AGENT: &str = "restart the agent (`systemctl restart netboot-agent`, or run `netboot agent --etcd URL`): it re-acquires a lease, reprograms the node and rewrites subnet.env";

fn local_ipv4s() -> Vec<Ipv4Addr> {
    let Ok(mut nl) = netkit::Netlink::open() else {
        return Vec::new();
    };
    nl.addrs(None)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| match a.addr.addr() {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// subnet.env: present, complete, and still describing a lease of this
/// node in the current network config.
pub fn subnet_env(ctx: &Ctx) -> Finding {
    const CHECK: &str = "subnet.env";
    let path = ctx.args.subnet_file.display();
    let Some(env) = &ctx.env else {
        return Finding::problem(
            CHECK,
            format!("{path} is missing: the CNI plugin refuses every pod on this node until it exists (\"failed to load flannel 'subnet.env' file\")"),
            "start the node agent (`netboot agent --etcd URL`, or flanneld) and check its log: it writes subnet.env once the lease and the vxlan device are in place",
        );
    };
    let Some(subnet) = env_subnet(env) else {
        return Finding::problem(
            CHECK,
            format!(
                "{path} has no valid FLANNEL_SUBNET (it holds: {})",
                keys(env)
            ),
            RESTART_AGENT,
        );
    };
    let Some(cluster) = &ctx.cluster else {
        return Finding::skipped(
            CHECK,
            format!("{path} says FLANNEL_SUBNET={subnet}; not compared with etcd (unreachable)"),
        );
    };
    if let Some(net) = cluster.effective.as_ref().and_then(|e| e.network) {
        let env_net = env.get("FLANNEL_NETWORK").map(String::as_str);
        if env_net != Some(net.to_string().as_str()) {
            return Finding::problem(
                CHECK,
                format!(
                    "{path} is stale: FLANNEL_NETWORK={} but the cluster's network is now {net}",
                    env_net.unwrap_or("(none)")
                ),
                RESTART_AGENT,
            );
        }
    }
    let Some(lease) = ctx.own_lease() else {
        return Finding::problem(
            CHECK,
            format!(
                "{path} is stale: FLANNEL_SUBNET={subnet}, but etcd holds no lease for {} (it expired or was deleted; another node may take it)",
                subnet.trunc()
            ),
            RESTART_AGENT,
        );
    };
    if let Some(ip) = lease.public_ip.as_deref().and_then(|p| p.parse().ok()) {
        if !local_ipv4s().contains(&ip) {
            return Finding::problem(
                CHECK,
                format!(
                    "{path} is stale: the lease for {} belongs to {ip}, which is not an address of this node",
                    subnet.trunc()
                ),
                RESTART_AGENT,
            );
        }
    }
    Finding::ok(
        CHECK,
        format!(
            "{path}: FLANNEL_SUBNET={subnet}, lease {} (PublicIP {})",
            lease.key,
            lease.public_ip.as_deref().unwrap_or("-")
        ),
    )
}

fn keys(env: &BTreeMap<String, String>) -> String {
    if env.is_empty() {
        return "nothing".into();
    }
    env.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// This node's lease is not about to expire.
pub fn lease_expiry(ctx: &Ctx) -> Finding {
    const CHECK: &str = "lease";
    let Some(lease) = ctx.own_lease() else {
        return Finding::skipped(CHECK, "no lease of this node to check (see subnet.env)");
    };
    let warn = ctx.args.lease_warning.as_secs() as i64;
    match (lease.lease_id, lease.ttl) {
        (0, _) => Finding::ok(CHECK, format!("{} has no expiry (a reservation)", lease.subnet)),
        (_, None) => Finding::problem(
            CHECK,
            format!("the lease of {} has expired: etcd will delete it and another node may take the subnet", lease.subnet),
            RESTART_AGENT,
        ),
        (_, Some(t)) if t < warn => Finding::problem(
            CHECK,
            format!(
                "the lease of {} expires in {}m{:02}s (warning below {}m): nobody is renewing it",
                lease.subnet,
                t / 60,
                t % 60,
                warn / 60
            ),
            "make sure the agent runs (it renews the lease an hour before expiry by default); when the lease expires, pods on this node lose the overlay",
        ),
        (_, Some(t)) => Finding::ok(
            CHECK,
            format!("the lease of {} expires in {}h{:02}m", lease.subnet, t / 3600, t / 60 % 60),
        ),
    }
}

/// cni0 carries the gateway of FLANNEL_SUBNET; flannel.<VNI> carries
/// `<subnet>.0/32`, the lease's VtepMAC and the lease's PublicIP as local.
pub fn devices(ctx: &Ctx) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut nl = match netkit::Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            out.push(Finding::problem(
                "devices",
                format!("cannot open netlink: {e}"),
                "run doctor as root",
            ));
            return out;
        }
    };
    let subnet = ctx.env.as_ref().and_then(env_subnet);
    let addrs_of = |nl: &mut netkit::Netlink, index: u32| -> Vec<IpNet> {
        nl.addrs(Some(index))
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.addr)
            .collect()
    };
    // cni0
    match (nl.link_by_name("cni0").ok().flatten(), subnet) {
        (None, _) => out.push(Finding::ok(
            "cni0",
            "not created yet (the CNI plugin creates it with the first pod)",
        )),
        (Some(_), None) => out.push(Finding::skipped(
            "cni0",
            "no FLANNEL_SUBNET to compare with",
        )),
        (Some(link), Some(sn)) => {
            let want = IpNet::V4(sn);
            let have = addrs_of(&mut nl, link.index);
            let v4: Vec<String> = have
                .iter()
                .filter(|a| matches!(a, IpNet::V4(_)))
                .map(ToString::to_string)
                .collect();
            if have.contains(&want) && v4.len() == 1 {
                out.push(Finding::ok(
                    "cni0",
                    format!("carries {want}, the gateway of this node's subnet"),
                ));
            } else {
                out.push(Finding::problem(
                    "cni0",
                    format!(
                        "cni0 has [{}] but this node's subnet wants {want} (\"cni0\" already has an IP address different from ...): the subnet changed under it",
                        v4.join(", ")
                    ),
                    "with netboot-cni in native mode the next pod ADD replaces the stale address once no pod uses the old subnet; otherwise delete the pods on the old subnet, then `ip link del cni0`",
                ));
            }
        }
    }
    // flannel.<VNI>
    let vni = ctx.vni();
    let name = format!("flannel.{vni}");
    let vxlan = ctx
        .cluster
        .as_ref()
        .and_then(|c| c.effective.as_ref())
        .is_none_or(|e| e.backend == "vxlan");
    if !vxlan {
        out.push(Finding::ok(
            "vtep",
            "the backend is not vxlan: no flannel device expected",
        ));
        return out;
    }
    let info = nl.vxlan_info(&name).ok().flatten();
    let Some(info) = info else {
        out.push(match subnet {
            Some(_) => Finding::problem(
                "vtep",
                format!("{name} is missing: pods here cannot reach other nodes"),
                format!("the agent recreates it within seconds when running; {RESTART_AGENT}"),
            ),
            None => Finding::skipped("vtep", format!("{name} missing, as is subnet.env")),
        });
        return out;
    };
    let mut why = Vec::new();
    if let Some(sn) = subnet {
        let want = IpNet::V4(Ipv4Net::new(sn.network(), 32).expect("/32"));
        let have = addrs_of(&mut nl, info.link.index);
        if !have.contains(&want) {
            let h: Vec<String> = have.iter().map(ToString::to_string).collect();
            why.push(format!("has [{}], the lease wants {want}", h.join(", ")));
        }
    }
    if let Some(l) = ctx.own_lease() {
        if let (Some(want), Some(mac)) = (l.vtep_mac.as_deref(), info.link.mac) {
            if !netkit::fmt_mac(&mac).eq_ignore_ascii_case(want) {
                why.push(format!(
                    "MAC {} but the lease says VtepMAC {want} (other nodes send to the wrong MAC)",
                    netkit::fmt_mac(&mac)
                ));
            }
        }
        if let (Some(want), Some(local)) = (l.public_ip.as_deref(), info.local) {
            if local.to_string() != want {
                why.push(format!(
                    "local address {local} but the lease's PublicIP is {want}"
                ));
            }
        }
    }
    if let Some(v) = info.vni.filter(|v| *v != vni) {
        why.push(format!("VNI {v}, the network config says {vni}"));
    }
    if why.is_empty() {
        out.push(Finding::ok("vtep", format!("{name} matches the lease")));
    } else {
        out.push(Finding::problem(
            "vtep",
            format!(
                "{name} does not match this node's lease: {}",
                why.join("; ")
            ),
            format!("{RESTART_AGENT} (it replaces a stale {name})"),
        ));
    }
    out
}

/// flannel.<VNI>'s MTU fits the underlay (vxlan adds 50 bytes) and
/// FLANNEL_MTU is not above it.
pub fn mtu(ctx: &Ctx) -> Finding {
    const CHECK: &str = "mtu";
    let name = format!("flannel.{}", ctx.vni());
    let Ok(mut nl) = netkit::Netlink::open() else {
        return Finding::skipped(CHECK, "cannot open netlink");
    };
    let Some(info) = nl.vxlan_info(&name).ok().flatten() else {
        return Finding::skipped(CHECK, format!("no {name} to check"));
    };
    let under = info
        .dev
        .and_then(|i| nl.link_by_index(i).ok().flatten())
        .or_else(|| {
            // No dev: the interface carrying the local address.
            let local = info.local?;
            let idx = nl
                .addrs(None)
                .ok()?
                .into_iter()
                .find(|a| a.addr.addr() == local)?
                .index;
            nl.link_by_index(idx).ok().flatten()
        });
    let Some(under) = under else {
        return Finding::skipped(
            CHECK,
            format!("cannot tell which interface {name} runs over"),
        );
    };
    let fits = under.mtu.saturating_sub(50);
    if info.link.mtu > fits {
        return Finding::problem(
            CHECK,
            format!(
                "{name} has MTU {} but {} has {}: vxlan needs 50 bytes, so packets over {fits} bytes are dropped between nodes (small pings work, large transfers hang)",
                info.link.mtu, under.name, under.mtu
            ),
            format!("set {name} to {fits} (`ip link set {name} mtu {fits}`) or restart the agent, which sizes it from the interface; pods created since keep the wrong MTU until recreated"),
        );
    }
    let env_mtu: Option<u32> = ctx
        .env
        .as_ref()
        .and_then(|e| e.get("FLANNEL_MTU"))
        .and_then(|m| m.parse().ok());
    if let Some(m) = env_mtu.filter(|m| *m > info.link.mtu) {
        return Finding::problem(
            CHECK,
            format!(
                "subnet.env says FLANNEL_MTU={m}, more than {name}'s {}: pods get an MTU the overlay cannot carry",
                info.link.mtu
            ),
            RESTART_AGENT,
        );
    }
    Finding::ok(
        CHECK,
        format!(
            "{name} MTU {} fits {} (MTU {})",
            info.link.mtu, under.name, under.mtu
        ),
    )
}

/// net.ipv4.ip_forward in this network namespace.
pub fn ip_forward() -> Finding {
    const CHECK: &str = "ip_forward";
    match std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        Ok(v) if v.trim() == "1" => Finding::ok(CHECK, "net.ipv4.ip_forward = 1"),
        Ok(v) => Finding::problem(
            CHECK,
            format!("net.ipv4.ip_forward = {}: this node does not route pod traffic to other nodes or out", v.trim()),
            "`sysctl -w net.ipv4.ip_forward=1` (and set it in /etc/sysctl.d/ to survive reboots); the agent and netboot-cni turn it on when they set the node up",
        ),
        Err(e) => Finding::skipped(CHECK, format!("cannot read /proc/sys/net/ipv4/ip_forward: {e}")),
    }
}
