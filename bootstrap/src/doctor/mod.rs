//! `netboot doctor`: a node health check. It reads etcd (config and this
//! node's lease) and the current network namespace (devices, routes,
//! neighbours, sysctls, masquerade rules), the CNI config, plugin binaries
//! and IP store, and says in plain words what is wrong and how to fix it.
//! Exit status 1 when anything is. Every config `netboot init` writes and
//! the agent runs is understood: vxlan or host-gw, IPv4, dual stack or
//! IPv6-only.
//!
//! - [`cluster`]: etcd, the network config, the leases.
//! - [`node`]: subnet.env against the config and the lease, lease expiry.
//! - [`plane`]: what each family should look like in the kernel.
//! - [`vtep`]: the vxlan devices and the MTU.
//! - [`peers`]: routes (and neighbour/FDB entries) to every other node,
//!   leftovers of another backend or family.
//! - [`host`]: cni0, forwarding, masquerade.
//! - [`cni`]: the conflist, the plugins it needs, the IP store.
//! - [`ghosts`]: attachment records of pods that are gone (reboot).
//! - [`hostports`]: hostPort DNAT of pods that are gone, in native mode's
//!   maps and in portmap's `cni_hostport` rules.

mod cluster;
mod cni;
mod ghosts;
mod host;
mod hostports;
mod node;
mod peers;
mod plane;
mod vtep;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::agent::parse_duration;
use crate::cli::EtcdArgs;
use crate::leases::Listed;
use crate::subnet_env::SubnetEnv;

pub use cluster::{Cluster, Settings};
pub use host::cni0;
pub use plane::family_findings;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// flannel's subnet file on this node (as given to the agent).
    #[arg(long, default_value = "/run/flannel/subnet.env", value_name = "FILE")]
    pub subnet_file: PathBuf,
    /// Directory of CNI configs; the first one (by name) is what runtimes use.
    #[arg(long, default_value = "/etc/cni/net.d", value_name = "DIR")]
    pub cni_conf_dir: PathBuf,
    /// Where plugins are looked for (besides $CNI_PATH).
    #[arg(long, default_value = "/opt/cni/bin", value_name = "DIR")]
    pub cni_bin_dir: PathBuf,
    /// Warn when this node's lease has less than this left.
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_warning: Duration,
    /// Warn when the node's pod subnet is this full (percent).
    #[arg(long, default_value_t = 90, value_name = "PERCENT")]
    pub ipam_warning: u8,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problem,
    /// Could not be checked (what it needs is missing or broken; that is
    /// reported by another check).
    Skipped,
}

/// One finding: which check, its outcome, what was seen, how to fix it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &'static str, what: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            what: what.into(),
            fix: None,
        }
    }
    fn problem(check: &'static str, what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Problem,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
    fn skipped(check: &'static str, why: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Skipped,
            what: why.into(),
            fix: None,
        }
    }
}

/// Where plugins are looked for: the bin dir, then $CNI_PATH.
pub fn plugin_dirs(bin_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs = vec![bin_dir.to_path_buf()];
    if let Some(p) = std::env::var_os("CNI_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

/// What is known of this node: etcd's view (None when unreachable) and
/// its subnet.env (None when unreadable). `status` builds one too.
pub struct Node {
    pub cluster: Option<Cluster>,
    pub env: Option<SubnetEnv>,
}

impl Node {
    /// The valid network config's settings.
    pub fn settings(&self) -> Option<&Settings> {
        self.cluster.as_ref()?.effective.as_ref()
    }

    /// The families to check (`false` = IPv4): the config's, else those
    /// subnet.env describes, else IPv4.
    pub fn families(&self) -> Vec<bool> {
        let fams: Vec<bool> = match (self.settings(), &self.env) {
            (Some(s), _) => [false, true]
                .into_iter()
                .filter(|v6| s.network(*v6).is_some())
                .collect(),
            (None, Some(e)) => [false, true].into_iter().filter(|v6| e.has(*v6)).collect(),
            (None, None) => Vec::new(),
        };
        if fams.is_empty() {
            vec![false]
        } else {
            fams
        }
    }

    /// The family this node's lease is found by (`true`: IPv6): IPv4
    /// unless the config turns it off (without a config: unless subnet.env
    /// has only an IPv6 subnet).
    pub fn primary(&self) -> bool {
        match self.settings() {
            Some(s) => s.v4.is_none(),
            None => self
                .env
                .as_ref()
                .is_some_and(|e| !e.has(false) && e.has(true)),
        }
    }

    /// This node's lease: the one holding subnet.env's subnet (IPv4, or
    /// IPv6 on an IPv6-only node).
    pub fn own_lease(&self) -> Option<&Listed> {
        let v6 = self.primary();
        let sn = self.env.as_ref()?.subnet_net(v6)?;
        self.cluster
            .as_ref()?
            .leases
            .iter()
            .find(|l| l.subnets().get(v6) == Some(sn))
    }

    /// Every other lease the agent would program: readable, of the
    /// config's backend, not naming this node's address.
    pub fn peers(&self) -> Vec<&Listed> {
        let (Some(c), Some(s)) = (self.cluster.as_ref(), self.settings()) else {
            return Vec::new();
        };
        let own = self.own_lease();
        let v6 = self.primary();
        let own_ip = own.and_then(Listed::attrs).and_then(|a| a.public(v6));
        c.leases
            .iter()
            .filter(|l| own.is_none_or(|o| o.path != l.path) && l.key.is_some())
            .filter(|l| {
                l.attrs()
                    .is_some_and(|a| a.backend == s.backend && a.public(v6) != own_ip)
            })
            .collect()
    }

    /// Readable leases of other nodes announcing another backend.
    pub fn other_backend(&self) -> Vec<&Listed> {
        let (Some(c), Some(s)) = (self.cluster.as_ref(), self.settings()) else {
            return Vec::new();
        };
        let own = self.own_lease().map(|o| o.path.as_str());
        c.leases
            .iter()
            .filter(|l| Some(l.path.as_str()) != own && l.key.is_some())
            .filter(|l| l.attrs().is_some_and(|a| a.backend != s.backend))
            .collect()
    }
}

/// What the checks share.
pub struct Ctx<'a> {
    pub args: &'a DoctorArgs,
    pub node: Node,
}

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
    let conflist = cni::load_conflist(&a.cni_conf_dir);
    out.push(cni::conflist(&ctx, &conflist));
    out.push(cni::plugins(&ctx, &conflist));
    out.push(cni::ipam(&ctx, &conflist));
    out.push(ghosts::check(&ctx, &conflist));
    out.push(hostports::check(&ctx, &conflist));
    out
}

pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Problem => "problem",
        Status::Skipped => "skipped",
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::Kv;
    use crate::netconfig::NetConfig;

    fn node(config: &str, env: &str, leases: &[(&str, &str)]) -> Node {
        let e = NetConfig::parse(config.as_bytes())
            .unwrap()
            .check()
            .unwrap();
        let kv = |(k, v): &(&str, &str)| Kv {
            key: format!("/p/subnets/{k}"),
            value: v.as_bytes().to_vec(),
            mod_revision: 1,
            lease: 0,
        };
        Node {
            cluster: Some(Cluster {
                effective: Some(Settings::from_effective(&e)),
                leases: leases.iter().map(|l| Listed::from_kv(&kv(l))).collect(),
            }),
            env: Some(SubnetEnv::parse(env)),
        }
    }

    #[test]
    fn ipv6_only_nodes_find_their_lease_and_peers_by_ipv6() {
        let n = node(
            r#"{"EnableIPv4":false,"EnableIPv6":true,"IPv6Network":"fd00::/48","Backend":{"Type":"host-gw"}}"#,
            // A stale IPv4 line must not make IPv4 the lookup family.
            "FLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\n",
            &[
                (
                    "0.0.0.0-0&fd00:0:0:3::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::11","BackendType":"host-gw"}"#,
                ),
                // An older lease of ours (same address): not a peer.
                (
                    "0.0.0.0-0&fd00:0:0:9::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::11","BackendType":"host-gw"}"#,
                ),
                (
                    "0.0.0.0-0&fd00:0:0:4::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::12","BackendType":"host-gw"}"#,
                ),
                (
                    "0.0.0.0-0&fd00:0:0:5::-64",
                    r#"{"PublicIP":"0.0.0.0","PublicIPv6":"fd00:1::13","BackendType":"vxlan"}"#,
                ),
                ("garbage", "{}"),
            ],
        );
        assert_eq!(n.families(), vec![true]);
        assert!(n.primary());
        assert!(n.own_lease().unwrap().path.ends_with("fd00:0:0:3::-64"));
        let peers: Vec<&str> = n.peers().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(peers, ["/p/subnets/0.0.0.0-0&fd00:0:0:4::-64"]);
        let other: Vec<&str> = n.other_backend().iter().map(|l| l.path.as_str()).collect();
        assert_eq!(other, ["/p/subnets/0.0.0.0-0&fd00:0:0:5::-64"]);
    }

    #[test]
    fn families_without_a_config_come_from_subnet_env() {
        let mut n = node(
            r#"{"Network":"10.2.0.0/16","Backend":{"Type":"vxlan"}}"#,
            "",
            &[],
        );
        n.cluster = None;
        n.env = Some(SubnetEnv::parse("FLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\n"));
        assert_eq!(n.families(), vec![true]);
        assert!(n.primary());
        n.env = None;
        assert_eq!(n.families(), vec![false]);
    }
}
