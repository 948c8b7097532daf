//! `netboot doctor`: a node health check. It reads etcd (config and this
//! node's lease) and the current network namespace (devices, sysctls), the
//! CNI config, plugin binaries and IP store, and says in plain words what is
//! wrong and how to fix it. Exit status 1 when anything is.
//!
//! - [`node`]: subnet.env, devices, MTU, ip_forward, lease expiry.
//! - [`cni`]: the conflist, the plugins it needs, the IP store.
//! - [`ghosts`]: attachment records of pods that are gone (reboot).

mod cni;
mod ghosts;
mod node;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::agent::parse_duration;
use crate::cli::EtcdArgs;
use crate::etcd::Etcd;
use crate::netconfig::NetConfig;

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

/// A subnet lease as doctor needs it.
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub subnet: ipnet::Ipv4Net,
    pub public_ip: Option<String>,
    pub vtep_mac: Option<String>,
    /// etcd lease id (0: none) and seconds left (None: expired).
    pub lease_id: i64,
    pub ttl: Option<i64>,
}

impl Lease {
    fn from_kv(kv: &crate::etcd::Kv) -> Option<Lease> {
        let subnet = crate::lease::parse_key(&kv.key)?.v4?;
        let parsed = crate::lease::Lease::parse(&kv.key, &kv.value).ok();
        Some(Lease {
            key: kv.key.clone(),
            subnet,
            public_ip: parsed.as_ref().map(|p| p.attrs.public_ip.to_string()),
            vtep_mac: parsed
                .as_ref()
                .and_then(|p| p.attrs.data)
                .map(|d| netkit::fmt_mac(&d.vtep_mac)),
            lease_id: kv.lease,
            ttl: None,
        })
    }
}

/// `KEY=VALUE` lines of flannel's subnet.env.
pub fn read_subnet_env(path: &std::path::Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

/// Where plugins are looked for: the bin dir, then $CNI_PATH.
pub fn plugin_dirs(bin_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs = vec![bin_dir.to_path_buf()];
    if let Some(p) = std::env::var_os("CNI_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

/// What etcd told us (None when unreachable).
pub struct Cluster {
    /// The valid network config's effective settings (None: missing or
    /// invalid).
    pub effective: Option<Settings>,
    pub leases: Vec<Lease>,
}

/// What doctor needs from the effective network config.
pub struct Settings {
    pub network: Option<ipnet::Ipv4Net>,
    pub backend: String,
    pub vni: Option<u32>,
}

/// What the checks share.
pub struct Ctx<'a> {
    pub args: &'a DoctorArgs,
    pub cluster: Option<Cluster>,
    /// subnet.env as KEY → VALUE, when readable.
    pub env: Option<BTreeMap<String, String>>,
}

impl Ctx<'_> {
    /// This node's lease: the one holding FLANNEL_SUBNET.
    pub fn own_lease(&self) -> Option<&Lease> {
        let sn = node::env_subnet(self.env.as_ref()?)?;
        self.cluster
            .as_ref()?
            .leases
            .iter()
            .find(|l| l.subnet == sn.trunc())
    }

    pub fn vni(&self) -> u32 {
        self.cluster
            .as_ref()
            .and_then(|c| c.effective.as_ref())
            .and_then(|e| e.vni)
            .unwrap_or(crate::netconfig::DEFAULT_VNI)
    }
}

fn etcd_check(a: &DoctorArgs) -> (Finding, Option<Cluster>) {
    const CHECK: &str = "etcd";
    let key = a.etcd.key("config");
    let connected = a
        .etcd
        .opts()
        .and_then(|o| Etcd::connect(&o, &key))
        .and_then(|mut etcd| {
            let cfg = etcd.get(&key)?;
            let prefix = a.etcd.key("subnets/");
            let mut leases: Vec<Lease> = etcd
                .get_prefix(&prefix)?
                .iter()
                .filter_map(Lease::from_kv)
                .collect();
            for l in &mut leases {
                if l.lease_id != 0 {
                    l.ttl = etcd.lease_ttl(l.lease_id)?;
                }
            }
            Ok((etcd.endpoint().to_string(), cfg, leases))
        });
    let (ep, cfg, leases) = match connected {
        Ok(v) => v,
        Err(e) => {
            return (
                Finding::problem(
                    CHECK,
                    format!("etcd is unreachable from this node: {e:#}"),
                    format!(
                    "start etcd or fix the address: `curl {}/health` must answer from this node; \
                         the agent cannot renew its lease and new nodes cannot join meanwhile",
                    a.etcd.endpoints.first().map_or("URL", String::as_str)
                ),
                ),
                None,
            )
        }
    };
    let Some(cfg) = cfg else {
        return (
            Finding::problem(
                CHECK,
                format!("etcd at {ep} answers, but {key} holds no network config"),
                "run `netboot init --etcd URL --network CIDR` once for the cluster",
            ),
            Some(Cluster {
                effective: None,
                leases,
            }),
        );
    };
    let effective = NetConfig::parse(&cfg.value)
        .ok()
        .and_then(|c| c.check().ok())
        .map(|e| Settings {
            network: e.v4.as_ref().map(|v| v.network),
            backend: e.backend.clone(),
            vni: e.vni,
        });
    let finding = match &effective {
        Some(e) => Finding::ok(
            CHECK,
            format!(
                "etcd at {ep}: network {}, backend {}, {} lease(s)",
                e.network.map_or("-".into(), |n| n.to_string()),
                e.backend,
                leases.len()
            ),
        ),
        None => Finding::problem(
            CHECK,
            format!(
                "the network config at {key} is not valid: {}",
                String::from_utf8_lossy(&cfg.value)
            ),
            "see `netboot config --etcd URL` for what is wrong; rewrite it with `netboot init --force`",
        ),
    };
    (finding, Some(Cluster { effective, leases }))
}

/// Run every check, in the order a person would fix things.
pub fn diagnose(a: &DoctorArgs) -> Vec<Finding> {
    let (etcd, cluster) = etcd_check(a);
    let env = read_subnet_env(&a.subnet_file);
    let ctx = Ctx {
        args: a,
        cluster,
        env,
    };
    let mut out = vec![etcd];
    out.push(node::subnet_env(&ctx));
    out.push(node::lease_expiry(&ctx));
    out.extend(node::devices(&ctx));
    out.push(node::mtu(&ctx));
    out.push(node::ip_forward());
    let conflist = cni::load_conflist(&a.cni_conf_dir);
    out.push(cni::conflist(&ctx, &conflist));
    out.push(cni::plugins(&ctx, &conflist));
    out.push(cni::ipam(&ctx, &conflist));
    out.push(ghosts::check(&ctx, &conflist));
    out
}

fn status_word(s: Status) -> &'static str {
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
