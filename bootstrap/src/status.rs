//! `netboot status`: the config (backend, families, vxlan options), every
//! subnet lease (flanneld's or a netboot agent's: both subnets, both public
//! addresses, the VtepMAC of each family, time left or "reserved"), and
//! this node: subnet.env, its lease, the agent, each family's device and
//! routes (doctor's per-family checks), cni0 and the plugin binaries.

use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::StatusArgs;
use crate::doctor::{self, Cluster, Finding, Node, Settings};
use crate::etcd::Etcd;
use crate::leases::{self, Listed};
use crate::netconfig::NetConfig;
use crate::show::{read_config, ConfigReport};
use crate::subnet_env::{family_name, network_var, subnet_var, SubnetEnv};

/// Plugins worth knowing about on a flannel node.
const PLUGINS: &[&str] = &[
    "netboot-cni",
    "flannel",
    "bridge",
    "host-local",
    "portmap",
    "loopback",
];

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The columns of one lease: subnets, public addresses, backend, VtepMACs,
/// expiry.
fn lease_row(l: &Listed) -> [String; 8] {
    let key = l.subnets();
    let a = l.attrs();
    let mac = |v6: bool| {
        opt(a
            .and_then(|a| a.vxlan(v6))
            .map(|d| netkit::fmt_mac(&d.vtep_mac)))
    };
    let subnet = match (l.key, key.v4) {
        (None, _) => l.path.rsplit('/').next().unwrap_or("").to_string(),
        (Some(_), v4) => opt(v4),
    };
    [
        subnet,
        opt(key.v6),
        opt(a.and_then(|a| a.public(false))),
        opt(a.and_then(|a| a.public(true))),
        a.map_or("-".into(), |a| a.backend.clone()),
        mac(false),
        mac(true),
        l.expiry_text(),
    ]
}

fn lease_json(l: &Listed) -> Value {
    let key = l.subnets();
    let a = l.attrs();
    let mac = |v6: bool| {
        a.and_then(|a| a.vxlan(v6))
            .map(|d| netkit::fmt_mac(&d.vtep_mac))
    };
    json!({
        "key": l.path,
        "subnet": key.v4.map(|n| n.to_string()),
        "ipv6Subnet": key.v6.map(|n| n.to_string()),
        "publicIP": a.and_then(|a| a.public(false)).map(|i| i.to_string()),
        "publicIPv6": a.and_then(|a| a.public(true)).map(|i| i.to_string()),
        "backendType": a.map(|a| a.backend.clone()),
        "vtepMAC": mac(false),
        "vtepMACv6": mac(true),
        "vni": a.and_then(|a| a.data.or(a.data6)).map(|d| d.vni),
        "reserved": l.is_reservation(),
        "etcdLease": (l.lease_id != 0).then(|| format!("{:x}", l.lease_id)),
        "ttlSeconds": l.ttl,
        "expiresIn": l.expiry_text(),
        "problem": l.problem(),
    })
}

fn finding_json(f: &Finding) -> Value {
    json!({"check": f.check, "status": doctor::status_word(f.status), "message": f.what})
}

/// One family of this node: its subnet.env lines and doctor's checks.
struct FamilyState {
    v6: bool,
    subnet: Option<String>,
    network: Option<String>,
    findings: Vec<Finding>,
}

fn families(node: &Node) -> Vec<FamilyState> {
    doctor::family_findings(node)
        .into_iter()
        .map(|(v6, findings)| FamilyState {
            v6,
            subnet: node
                .env
                .as_ref()
                .and_then(|e| e.get(subnet_var(v6)))
                .map(str::to_string),
            network: node
                .settings()
                .and_then(|s| s.network(v6))
                .map(|n| n.to_string()),
            findings,
        })
        .collect()
}

/// `In short: IPv4 10.2.0.0/16 + IPv6 …, backend vxlan (VNI 1, port 8472, DirectRouting)`.
fn config_line(s: &Settings) -> String {
    format!("  in short:   {}\n", s.describe())
}

/// What `status` found, for [`status_json`].
struct Shown<'a> {
    a: &'a StatusArgs,
    endpoint: &'a str,
    prefix: &'a str,
    report: &'a ConfigReport,
    node: &'a Node,
    fams: &'a [FamilyState],
    cni0: &'a [Finding],
    agent: &'a Option<(String, Option<String>)>,
    dirs: &'a [PathBuf],
    plugins: &'a [(&'a str, Option<PathBuf>)],
}

/// `status --json`.
fn status_json(s: &Shown) -> Value {
    json!({
        "etcd": s.endpoint,
        "config": s.report.to_json(),
        "backend": s.node.settings().map(|st| st.backend.clone()),
        "families": s.node.settings().map(|st| [false, true].into_iter().filter(|v6| st.network(*v6).is_some()).map(family_name).collect::<Vec<_>>()),
        "leases": s.node.cluster.as_ref().map_or(&[][..], |c| &c.leases[..]).iter().map(lease_json).collect::<Vec<_>>(),
        "node": {
            "subnetFile": s.a.subnet_file,
            "subnetEnv": s.node.env.as_ref().map(|e| &e.vars),
            "lease": s.node.own_lease().map(|l| l.path.clone()),
            "leaseExpiresIn": s.node.own_lease().map(Listed::expiry_text),
            "agent": {"running": s.agent.is_some(), "pid": s.agent.as_ref().map(|a| a.0.clone()), "subnetFile": s.agent.as_ref().and_then(|a| a.1.clone())},
            "families": s.fams.iter().map(|f| json!({
                "family": family_name(f.v6),
                "network": f.network,
                "subnet": f.subnet,
                "checks": f.findings.iter().map(finding_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "cni0": s.cni0.iter().map(finding_json).collect::<Vec<_>>(),
            "pluginDirs": s.dirs,
            "plugins": s.plugins.iter().map(|(n, p)| json!({"name": n, "path": p})).collect::<Vec<_>>(),
        },
    })
}

pub fn status_cmd(a: &StatusArgs) -> Result<()> {
    let key = a.etcd.key("config");
    let mut etcd = Etcd::connect(&a.etcd.opts()?, &key)?;
    let cfg_kv = read_config(&mut etcd, &key)?;
    let report = ConfigReport::new(&cfg_kv);
    let settings = NetConfig::parse(&cfg_kv.value)
        .ok()
        .and_then(|c| c.check().ok())
        .map(|e| Settings::from_effective(&e));
    let subnets_prefix = a.etcd.key("subnets/");
    let leases = leases::list(&mut etcd, &subnets_prefix)?;
    let node = Node {
        cluster: Some(Cluster {
            effective: settings,
            leases,
        }),
        env: SubnetEnv::read(&a.subnet_file),
    };
    let fams = families(&node);
    let cni0 = doctor::cni0(&node);
    // The agent of this network namespace, if one runs (its lock's holder).
    let agent = crate::agent::lock::holder().map(|(pid, text)| {
        let pid = crate::agent::lock::field(&text, "pid").map_or(pid.to_string(), str::to_string);
        let sf = crate::agent::lock::field(&text, "subnet_file").map(str::to_string);
        (pid, sf)
    });
    let dirs = doctor::plugin_dirs(&a.cni_bin_dir);
    let plugins: Vec<(&str, Option<PathBuf>)> = PLUGINS
        .iter()
        .map(|p| (*p, dirs.iter().map(|d| d.join(p)).find(|f| f.is_file())))
        .collect();
    let shown = Shown {
        a,
        endpoint: etcd.endpoint(),
        prefix: &subnets_prefix,
        report: &report,
        node: &node,
        fams: &fams,
        cni0: &cni0,
        agent: &agent,
        dirs: &dirs,
        plugins: &plugins,
    };
    if a.json {
        crate::out::emitln(&serde_json::to_string_pretty(&status_json(&shown))?)?;
    } else {
        crate::out::emit(&status_text(&shown))?;
    }
    Ok(())
}

/// The text report.
fn status_text(sh: &Shown) -> String {
    let mut s = format!("etcd: {}\n{}", sh.endpoint, sh.report.to_text());
    if let Some(st) = sh.node.settings() {
        s += &config_line(st);
    }
    let leases = sh.node.cluster.as_ref().map_or(&[][..], |c| &c.leases[..]);
    s += &format!("\nSubnet leases under {} ({}):\n", sh.prefix, leases.len());
    let rows: Vec<[String; 8]> = leases.iter().map(lease_row).collect();
    s += &table(
        [
            "SUBNET",
            "IPV6 SUBNET",
            "PUBLIC IP",
            "PUBLIC IPV6",
            "BACKEND",
            "VTEP MAC",
            "VTEP MAC (IPV6)",
            "EXPIRES IN",
        ],
        &rows,
    );
    for l in leases {
        if let Some(p) = l.problem() {
            s += &format!("  PROBLEM in {}: {p}\n", l.path);
        }
    }
    s += &node_text(sh);
    s += &format!(
        "  plugins (in {}):\n",
        sh.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    for (n, p) in sh.plugins {
        s += &format!(
            "    {n:<12} {}\n",
            p.as_ref()
                .map_or("missing".into(), |p| p.display().to_string())
        );
    }
    s
}

fn finding_line(f: &Finding) -> String {
    let tag = match f.status {
        doctor::Status::Ok => "ok",
        doctor::Status::Problem => "PROBLEM",
        doctor::Status::Skipped => "skipped",
    };
    format!("    {:<9} {:<7} {}\n", f.check, tag, f.what)
}

/// The node part of the text: subnet.env, lease, agent, each family.
fn node_text(sh: &Shown) -> String {
    let (node, own, fams, cni0, agent) = (sh.node, sh.node.own_lease(), sh.fams, sh.cni0, sh.agent);
    let mut s = format!("\nThis node ({}):\n", sh.a.subnet_file.display());
    match &node.env {
        None => s += "  subnet.env: not present (no flannel/netboot agent has run here)\n",
        Some(e) => {
            for (k, v) in &e.vars {
                s += &format!("  {k}={v}\n");
            }
            s += &format!(
                "  lease: {}\n",
                own.map_or("none found for this node's subnet".into(), |l| format!(
                    "{} ({})",
                    l.path,
                    match l.is_reservation() {
                        true => l.expiry_text(),
                        false => format!("expires in {}", l.expiry_text()),
                    }
                ))
            );
        }
    }
    s += &format!(
        "  agent: {}\n",
        match agent {
            Some((pid, sf)) => format!(
                "running (PID {pid}, subnet file {})",
                sf.as_deref().unwrap_or("unknown")
            ),
            None => "not running in this network namespace".to_string(),
        }
    );
    for f in fams {
        s += &format!(
            "  {}: {} {} of network {}\n",
            family_name(f.v6),
            subnet_var(f.v6),
            f.subnet.as_deref().unwrap_or("(none)"),
            f.network
                .clone()
                .or_else(|| node
                    .env
                    .as_ref()
                    .and_then(|e| e.get(network_var(f.v6)))
                    .map(str::to_string))
                .unwrap_or_else(|| "-".into())
        );
        for x in &f.findings {
            s += &finding_line(x);
        }
    }
    for x in cni0 {
        s += &finding_line(x).replacen("    ", "  ", 1);
    }
    s
}

/// Left-aligned columns, two spaces apart.
fn table<const N: usize>(head: [&str; N], rows: &[[String; N]]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect();
        format!("  {}\n", s.join("  ").trim_end())
    };
    let mut out = line(head.to_vec());
    for r in rows {
        out += &line(r.iter().map(String::as_str).collect());
    }
    out
}
