//! subnet.env against the network config and this node's lease (per
//! family), and the lease itself: what it announces, and its expiry.

use std::net::IpAddr;

use super::cluster::{is_local, Settings};
use super::ctx::{Ctx, Node};
use super::finding::Finding;
use crate::leases::Listed;
use crate::subnet_env::{family_name, network_var, subnet_var, SubnetEnv};

pub const RESTART_AGENT: &str = "restart the agent (`systemctl restart netboot-agent`, or run `netboot agent --etcd URL`): it re-acquires a lease, reprograms the node and rewrites subnet.env";

fn keys(env: &SubnetEnv) -> String {
    if env.vars.is_empty() {
        return "nothing".into();
    }
    env.vars.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// Does the lease's address of family `v6` name this node? An address of
/// an interface here, or (`--public-ip` behind NAT) the local address of
/// this family's vxlan device.
fn names_this_node(node: &Node, ip: IpAddr, v6: bool) -> bool {
    let Ok(mut nl) = netkit::Netlink::open() else {
        return true;
    };
    if is_local(&mut nl, ip) {
        return true;
    }
    let Some(s) = node.settings().filter(|s| s.is_vxlan()) else {
        return false;
    };
    nl.link()
        .vxlan_info(&s.vxlan.device_name(v6))
        .ok()
        .flatten()
        .is_some_and(|i| i.local == Some(ip))
}

/// The keys a complete subnet.env has for `fams` that `env` lacks.
fn incomplete(env: &SubnetEnv, fams: &[bool]) -> Vec<String> {
    let mut bad: Vec<String> = fams
        .iter()
        .filter(|v6| env.subnet(**v6).is_none())
        .map(|v6| subnet_var(*v6).to_string())
        .collect();
    if env.mtu().is_none() {
        bad.push("FLANNEL_MTU".into());
    }
    if env.get("FLANNEL_IPMASQ").is_none() {
        bad.push("FLANNEL_IPMASQ".into());
    }
    bad
}

/// Where `env` disagrees with the network config: another network, or a
/// family the config turns off.
fn against_config(env: &SubnetEnv, settings: &Settings) -> Vec<String> {
    let mut stale = Vec::new();
    for v6 in [false, true] {
        let (net_var, sn_var) = (network_var(v6), subnet_var(v6));
        match settings.network(v6) {
            Some(net) if !env.networks(v6).contains(&net) => stale.push(format!(
                "{net_var}={} but the cluster's network is now {net}",
                env.get(net_var).unwrap_or("(none)")
            )),
            Some(_) => {}
            None if env.has(v6) || env.get(net_var).is_some() => stale.push(format!(
                "{} is off in the network config, but it still has {}: pods would get {} \
                 addresses that nothing routes",
                family_name(v6),
                if env.has(v6) { sn_var } else { net_var },
                family_name(v6)
            )),
            None => {}
        }
    }
    stale
}

/// Where `env` disagrees with this node's lease: a family's subnet, or the
/// lease naming another node.
fn against_lease(node: &Node, env: &SubnetEnv, lease: &Listed) -> Vec<String> {
    let mut stale = Vec::new();
    let key = lease.subnets();
    for v6 in node.families() {
        let (want, have) = (key.get(v6), env.subnet_net(v6));
        if want != have {
            stale.push(format!(
                "{}={} but this node's lease {} holds {}",
                subnet_var(v6),
                env.get(subnet_var(v6)).unwrap_or("(none)"),
                lease.path,
                want.map_or(format!("no {} subnet", family_name(v6)), |w| w.to_string())
            ));
        }
    }
    let primary = node.primary();
    if let Some(ip) = lease.attrs().and_then(|a| a.public(primary)) {
        if !names_this_node(node, ip, primary) {
            stale.push(format!(
                "the lease for {} belongs to {ip}, which is not an address of this node",
                key.show()
            ));
        }
    }
    stale
}

/// The `subnet.env` check: present, complete for every enabled family,
/// and still describing this node's lease in the current network config.
pub fn subnet_env(ctx: &Ctx) -> Finding {
    const CHECK: &str = "subnet.env";
    let node = &ctx.node;
    let path = ctx.args.subnet_file.display().to_string();
    let Some(env) = &node.env else {
        return Finding::problem(
            CHECK,
            format!("{path} is missing: the CNI plugin refuses every pod on this node until it exists (\"failed to load flannel 'subnet.env' file\")"),
            "start the node agent (`netboot agent --etcd URL`, or flanneld) and check its log: it writes subnet.env once the lease and the network devices are in place",
        );
    };
    let fams = node.families();
    let bad = incomplete(env, &fams);
    if !bad.is_empty() {
        return Finding::problem(
            CHECK,
            format!(
                "{path} has no valid {} (it holds: {})",
                bad.join(", "),
                keys(env)
            ),
            RESTART_AGENT,
        );
    }
    let shown: Vec<String> = fams
        .iter()
        .map(|v6| {
            format!(
                "{}={}",
                subnet_var(*v6),
                env.get(subnet_var(*v6)).unwrap_or("")
            )
        })
        .collect();
    let shown = shown.join(", ");
    let Some(settings) = node.settings() else {
        return Finding::skipped(
            CHECK,
            format!("{path} says {shown}; not compared with etcd (see the etcd check)"),
        );
    };
    let mut stale = against_config(env, settings);
    let Some(lease) = node.own_lease() else {
        let v6 = node.primary();
        let sn = env
            .subnet_net(v6)
            .map(|s| s.to_string())
            .unwrap_or_default();
        stale.push(format!(
            "{}={}, but etcd holds no lease for {sn} (it expired or was deleted; another node \
             may take it)",
            subnet_var(v6),
            env.get(subnet_var(v6)).unwrap_or("")
        ));
        return stale_finding(&path, &stale);
    };
    stale.extend(against_lease(node, env, lease));
    if !stale.is_empty() {
        return stale_finding(&path, &stale);
    }
    let public: Vec<String> = lease
        .attrs()
        .map(|a| {
            fams.iter()
                .filter_map(|v6| a.public(*v6).map(|ip| ip.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Finding::ok(
        CHECK,
        format!(
            "{path}: {shown}, lease {} (public address {})",
            lease.path,
            if public.is_empty() {
                "-".into()
            } else {
                public.join(", ")
            }
        ),
    )
}

fn stale_finding(path: &str, why: &[String]) -> Finding {
    Finding::problem(
        "subnet.env",
        format!("{path} is stale: {}", why.join("; ")),
        RESTART_AGENT,
    )
}

/// What this node's lease announces wrongly for the config.
fn lease_wrong(node: &Node, lease: &Listed) -> Vec<String> {
    let mut wrong = Vec::new();
    match (lease.attrs(), node.settings()) {
        (None, _) => wrong.push(format!(
            "{} cannot be read: {}",
            lease.path,
            lease.problem().unwrap_or_default()
        )),
        (Some(a), Some(s)) => {
            if a.backend != s.backend {
                wrong.push(format!(
                    "it announces backend {:?}, but the network config says {} (the agent \
                     has not picked the new config up)",
                    a.backend, s.backend
                ));
            }
            for v6 in node.families() {
                let fam = family_name(v6);
                if a.public(v6).is_none() {
                    wrong.push(format!("it has no {fam} public address"));
                }
                if s.is_vxlan() && a.backend == s.backend && a.vxlan(v6).is_none() {
                    wrong.push(format!(
                        "it has no {fam} VtepMAC ({}): other nodes cannot tunnel to this one",
                        if v6 { "BackendV6Data" } else { "BackendData" }
                    ));
                }
            }
        }
        (Some(_), None) => {}
    }
    wrong
}

/// The `lease` check: this node's lease announces the config's backend,
/// a public address and (vxlan) a VtepMAC for every enabled family, and is
/// not about to expire.
pub fn lease_expiry(ctx: &Ctx) -> Finding {
    const CHECK: &str = "lease";
    let node = &ctx.node;
    let Some(lease) = node.own_lease() else {
        return Finding::skipped(CHECK, "no lease of this node to check (see subnet.env)");
    };
    let sn = lease.subnets().show();
    let wrong = lease_wrong(node, lease);
    if !wrong.is_empty() {
        return Finding::problem(
            CHECK,
            format!("this node's lease of {sn} is wrong: {}", wrong.join("; ")),
            RESTART_AGENT,
        );
    }
    let warn = ctx.args.lease_warning.as_secs() as i64;
    match (lease.lease_id, lease.ttl) {
        (0, _) => Finding::ok(CHECK, format!("{sn} is reserved (no TTL): it never expires")),
        (_, None) => Finding::problem(
            CHECK,
            format!("the lease of {sn} has expired: etcd will delete it and another node may take the subnet"),
            RESTART_AGENT,
        ),
        (_, Some(t)) if t < warn => Finding::problem(
            CHECK,
            format!(
                "the lease of {sn} expires in {}m{:02}s (warning below {}m): nobody is renewing it",
                t / 60,
                t % 60,
                warn / 60
            ),
            "make sure the agent runs (it renews the lease an hour before expiry by default); when the lease expires, pods on this node lose the overlay",
        ),
        (_, Some(t)) => Finding::ok(
            CHECK,
            format!("the lease of {sn} expires in {}h{:02}m", t / 3600, t / 60 % 60),
        ),
    }
}
