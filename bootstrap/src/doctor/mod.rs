//! `netboot doctor`: a node health check. It reads etcd (config and this
//! node's lease) and the current network namespace (devices, routes,
//! neighbours, sysctls, masquerade rules), the CNI config, plugin binaries
//! and IP store, and says in plain words what is wrong and how to fix it.
//! Exit status 1 when anything is. Every config `netboot init` writes and
//! the agent runs is understood: vxlan or host-gw, IPv4, dual stack or
//! IPv6-only.
//!
//! - [`args`], [`finding`], [`ctx`]: the options, what a check finds,
//!   and what the checks share (this node as etcd and subnet.env tell it).
//! - [`cluster`]: etcd, the network config, the leases.
//! - [`node`]: subnet.env against the config and the lease, lease expiry.
//! - [`want`]: what each family should look like in the kernel; [`plane`]:
//!   the per-family checks built on it.
//! - [`vtep`]: the vxlan devices and the MTU.
//! - [`peers`]: routes (and neighbour/FDB entries) to every other node,
//!   leftovers of another backend or family.
//! - [`host`]: cni0, forwarding, masquerade.
//! - [`conflist`]: the CNI config runtimes use and its flannel entry;
//!   [`cni`]: checks of it, the plugins it needs, the IP store.
//! - [`ghosts`]: attachment records of pods that are gone (reboot).
//! - [`hostports`]: hostPort DNAT of pods that are gone, in native mode's
//!   maps and in portmap's `cni_hostport` rules.

mod args;
mod cluster;
mod cni;
mod conflist;
mod ctx;
mod finding;
mod ghosts;
mod host;
mod hostports;
mod node;
mod peers;
mod plane;
mod vtep;
mod want;

use anyhow::Result;
use serde_json::{json, Value};

use crate::subnet_env::SubnetEnv;
use ctx::Ctx;

pub use args::DoctorArgs;
pub use cluster::{Cluster, Settings};
pub use conflist::plugin_dirs;
pub use ctx::Node;
pub use finding::{status_word, Finding, Status};
pub use host::cni0;
pub use plane::family_findings;

/// Run every check, in the order a person would fix things.
pub fn diagnose(a: &DoctorArgs) -> Vec<Finding> {
    let (etcd, cluster) = cluster::etcd_check(a);
    let node = Node {
        cluster,
        env: SubnetEnv::read(&a.subnet_file),
    };
    let ctx = Ctx { args: a, node };
    let mut out = vec![etcd];
    out.push(node::subnet_env(&ctx));
    out.push(node::lease_expiry(&ctx));
    out.extend(host::cni0(&ctx.node));
    for (_, findings) in family_findings(&ctx.node) {
        out.extend(findings);
    }
    out.push(peers::leftovers(&ctx.node));
    out.push(vtep::mtu(&ctx.node));
    out.extend(host::forwarding(&ctx.node));
    out.push(host::masquerade(&ctx.node));
    let conflist = conflist::load_conflist(&a.cni_conf_dir);
    out.push(cni::conflist(&ctx, &conflist));
    out.push(cni::plugins(&ctx, &conflist));
    out.push(cni::ipam(&ctx, &conflist));
    out.push(ghosts::check(&ctx, &conflist));
    out.push(hostports::check(&ctx, &conflist));
    out
}

/// The text report.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let tag = match f.status {
            Status::Ok => "ok     ",
            Status::Problem => "PROBLEM",
            Status::Skipped => "skipped",
        };
        s += &format!(
            "{tag}  {:<12} {}\n",
            f.check,
            f.what.replace('\n', "\n         ")
        );
        if let Some(fix) = &f.fix {
            s += &format!("{:<21} fix: {fix}\n", "");
        }
    }
    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    if problems == 0 {
        s += &format!(
            "All {} checks passed: this node looks healthy.\n",
            findings.len()
        );
    } else {
        s += &format!("{problems} problem(s) found.\n");
    }
    s
}

pub fn to_json(findings: &[Finding]) -> Value {
    let problems = findings
        .iter()
        .filter(|f| f.status == Status::Problem)
        .count();
    json!({
        "healthy": problems == 0,
        "problems": problems,
        "checks": findings.iter().map(|f| json!({
            "check": f.check,
            "status": status_word(f.status),
            "message": f.what,
            "fix": f.fix,
        })).collect::<Vec<_>>(),
    })
}

/// `netboot doctor`: exit status 1 when a problem was found.
pub fn doctor_cmd(a: &DoctorArgs) -> Result<()> {
    let findings = diagnose(a);
    if a.json {
        crate::out::emitln(&serde_json::to_string_pretty(&to_json(&findings))?)?;
    } else {
        crate::out::emit(&render(&findings))?;
    }
    if findings.iter().any(|f| f.status == Status::Problem) {
        std::process::exit(1);
    }
    Ok(())
}
