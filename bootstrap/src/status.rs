//! `netboot status`: the config, every subnet lease (flanneld's or a netboot
//! agent's), and this node's subnet.env, devices and plugin binaries.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Result;
use ipnet::{IpNet, Ipv4Net};
use serde_json::{json, Value};

use crate::cli::StatusArgs;
use crate::etcd::{Etcd, Kv};
use crate::netconfig::{NetConfig, DEFAULT_VNI};
use crate::show::{read_config, ConfigReport};
use cni::gojson::{self, GoValue};

/// Plugins worth knowing about on a flannel node.
const PLUGINS: &[&str] = &[
    "netboot-cni",
    "flannel",
    "bridge",
    "host-local",
    "portmap",
    "loopback",
];

/// One `<prefix>/subnets/<ip>-<len>[&<ip6>-<len>]` key and its value
/// (`pkg/lease` LeaseAttrs, decoded case-insensitively like Go does).
#[derive(Debug, Clone)]
pub struct Lease {
    pub key: String,
    pub subnet: String,
    pub ipv6_subnet: Option<String>,
    pub public_ip: Option<String>,
    pub public_ipv6: Option<String>,
    pub backend: Option<String>,
    pub vtep_mac: Option<String>,
    pub vni: Option<i64>,
    /// etcd lease id (0: none) and seconds left (None: none or expired).
    pub lease_id: i64,
    pub ttl: Option<i64>,
    pub problem: Option<String>,
}

fn string_field(m: &gojson::Members, f: &str) -> Option<String> {
    match m.field(f)? {
        GoValue::Scalar(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

impl Lease {
    fn from_kv(kv: &Kv, subnets_prefix: &str) -> Lease {
        let name = kv.key.strip_prefix(subnets_prefix).unwrap_or(&kv.key);
        let (v4, v6) = match name.split_once('&') {
            Some((a, b)) => (a, Some(b)),
            None => (name, None),
        };
        // The key spells the CIDR with '-' (MakeSubnetKey).
        let cidr = |s: &str| match s.rsplit_once('-') {
            Some((ip, len)) => format!("{ip}/{len}"),
            None => s.to_string(),
        };
        let mut l = Lease {
            key: kv.key.clone(),
            subnet: cidr(v4),
            ipv6_subnet: v6.map(cidr),
            public_ip: None,
            public_ipv6: None,
            backend: None,
            vtep_mac: None,
            vni: None,
            lease_id: kv.lease,
            ttl: None,
            problem: None,
        };
        match gojson::parse_object(&kv.value) {
            Err(e) => l.problem = Some(format!("value is not a lease: {e}")),
            Ok(m) => {
                l.public_ip = string_field(&m, "PublicIP");
                l.public_ipv6 = string_field(&m, "PublicIPv6");
                l.backend = string_field(&m, "BackendType");
                if let Some(GoValue::Object(bd)) = m.field("BackendData") {
                    l.vtep_mac = string_field(bd, "VtepMAC");
                    if let Some(GoValue::Scalar(Value::Number(n))) = bd.field("VNI") {
                        l.vni = n.as_i64();
                    }
                }
            }
        }
        l
    }

    fn expiry_text(&self) -> String {
        match (self.lease_id, self.ttl) {
            (0, _) => "no lease".into(),
            (_, None) => "expired".into(),
            (_, Some(t)) => format!("{}h{:02}m{:02}s", t / 3600, t / 60 % 60, t % 60),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "key": self.key, "subnet": self.subnet, "ipv6Subnet": self.ipv6_subnet,
            "publicIP": self.public_ip, "publicIPv6": self.public_ipv6,
            "backendType": self.backend, "vtepMAC": self.vtep_mac, "vni": self.vni,
            "etcdLease": (self.lease_id != 0).then(|| format!("{:x}", self.lease_id)),
            "ttlSeconds": self.ttl, "expiresIn": self.expiry_text(), "problem": self.problem,
        })
    }
}

/// A device check: present, matching the lease, and why not.
struct DeviceCheck {
    name: String,
    present: bool,
    ok: bool,
    detail: String,
}

/// `KEY=VALUE` lines of flannel's subnet.env.
fn read_subnet_env(path: &Path) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
    )
}

fn check_devices(
    env: Option<&BTreeMap<String, String>>,
    own: Option<&Lease>,
    vni: u32,
) -> Vec<DeviceCheck> {
    let mut out = Vec::new();
    let mut nl = match netkit::Netlink::open() {
        Ok(nl) => nl,
        Err(e) => {
            out.push(DeviceCheck {
                name: "netlink".into(),
                present: false,
                ok: false,
                detail: format!("cannot open netlink: {e}"),
            });
            return out;
        }
    };
    let flannel_subnet: Option<IpNet> = env
        .and_then(|e| e.get("FLANNEL_SUBNET"))
        .and_then(|s| s.parse().ok());
    let lease_net: Option<Ipv4Net> = own.and_then(|l| l.subnet.parse().ok());
    let mut check = |name: String,
                     want_addr: Option<IpNet>,
                     want_kind: Option<&str>,
                     want_mac: Option<&str>| {
        let link = nl.link_by_name(&name).ok().flatten();
        let Some(link) = link else {
            out.push(DeviceCheck {
                name,
                present: false,
                ok: false,
                detail: "missing".into(),
            });
            return;
        };
        let mut why = Vec::new();
        if let (Some(k), got) = (want_kind, link.kind.as_deref()) {
            if got != Some(k) {
                why.push(format!("is {} not {k}", got.unwrap_or("a physical device")));
            }
        }
        let addrs: Vec<IpNet> = nl
            .addrs(Some(link.index))
            .map(|a| a.into_iter().map(|a| a.addr).collect())
            .unwrap_or_default();
        if let Some(want) = want_addr {
            if !addrs.contains(&want) {
                let have: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
                why.push(format!("has [{}], lease wants {want}", have.join(", ")));
            }
        }
        if let (Some(want), Some(mac)) = (want_mac, link.mac) {
            if !netkit::fmt_mac(&mac).eq_ignore_ascii_case(want) {
                why.push(format!(
                    "MAC {} differs from the lease's VtepMAC {want}",
                    netkit::fmt_mac(&mac)
                ));
            }
        }
        let ok = why.is_empty();
        let detail = if ok {
            "matches the lease".into()
        } else {
            why.join("; ")
        };
        out.push(DeviceCheck {
            name,
            present: true,
            ok,
            detail,
        });
    };
    check("cni0".into(), flannel_subnet, Some("bridge"), None);
    let vtep_addr =
        lease_net.map(|n| IpNet::from(Ipv4Net::new(n.network(), 32).expect("/32 is valid")));
    check(
        format!("flannel.{vni}"),
        vtep_addr,
        Some("vxlan"),
        own.and_then(|l| l.vtep_mac.as_deref()),
    );
    out
}

fn plugin_dirs(bin_dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![bin_dir.to_path_buf()];
    if let Some(p) = std::env::var_os("CNI_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}

pub fn status_cmd(a: &StatusArgs) -> Result<()> {
    let key = a.etcd.key("config");
    let mut etcd = Etcd::connect(&a.etcd.opts()?, &key)?;
    let cfg_kv = read_config(&mut etcd, &key)?;
    let report = ConfigReport::new(&cfg_kv);
    let cfg = NetConfig::parse(&cfg_kv.value).ok();
    let effective = cfg.as_ref().and_then(|c| c.check().ok());
    let subnets_prefix = a.etcd.key("subnets/");
    let mut leases: Vec<Lease> = etcd
        .get_prefix(&subnets_prefix)?
        .iter()
        .map(|kv| Lease::from_kv(kv, &subnets_prefix))
        .collect();
    for l in &mut leases {
        if l.lease_id != 0 {
            l.ttl = etcd.lease_ttl(l.lease_id)?;
        }
    }
    let env = read_subnet_env(&a.subnet_file);
    let own_ip: Option<Ipv4Addr> = env
        .as_ref()
        .and_then(|e| e.get("FLANNEL_SUBNET"))
        .and_then(|s| s.parse::<Ipv4Net>().ok())
        .map(|n| n.network());
    let own = own_ip.and_then(|ip| {
        leases
            .iter()
            .find(|l| l.subnet.parse::<Ipv4Net>().is_ok_and(|n| n.contains(&ip)))
    });
    let vni = effective
        .as_ref()
        .and_then(|e| e.vni)
        .unwrap_or(DEFAULT_VNI);
    let devices = check_devices(env.as_ref(), own, vni);
    // The agent of this network namespace, if one runs (its lock's holder).
    let agent = crate::agent::lock::holder().map(|(pid, text)| {
        let pid = crate::agent::lock::field(&text, "pid").map_or(pid.to_string(), str::to_string);
        let sf = crate::agent::lock::field(&text, "subnet_file").map(str::to_string);
        (pid, sf)
    });
    let agent_text = match &agent {
        Some((pid, sf)) => format!(
            "running (PID {pid}, subnet file {})",
            sf.as_deref().unwrap_or("unknown")
        ),
        None => "not running in this network namespace".to_string(),
    };
    let dirs = plugin_dirs(&a.cni_bin_dir);
    let plugins: Vec<(&str, Option<PathBuf>)> = PLUGINS
        .iter()
        .map(|p| (*p, dirs.iter().map(|d| d.join(p)).find(|f| f.is_file())))
        .collect();
    if a.json {
        let doc = json!({
            "etcd": etcd.endpoint(),
            "config": report.to_json(),
            "leases": leases.iter().map(Lease::to_json).collect::<Vec<_>>(),
            "node": {
                "subnetFile": a.subnet_file,
                "subnetEnv": env,
                "lease": own.map(|l| l.key.clone()),
                "leaseExpiresIn": own.map(Lease::expiry_text),
                "agent": {"running": agent.is_some(), "pid": agent.as_ref().map(|a| a.0.clone()), "subnetFile": agent.as_ref().and_then(|a| a.1.clone())},
                "devices": devices.iter().map(|d| json!({"name": d.name, "present": d.present, "matchesLease": d.ok, "detail": d.detail})).collect::<Vec<_>>(),
                "pluginDirs": dirs,
                "plugins": plugins.iter().map(|(n, p)| json!({"name": n, "path": p})).collect::<Vec<_>>(),
            },
        });
        crate::out::emitln(&serde_json::to_string_pretty(&doc)?)?;
        return Ok(());
    }
    let mut s = format!("etcd: {}\n{}\n", etcd.endpoint(), report.to_text());
    s += &format!("Subnet leases under {subnets_prefix} ({}):\n", leases.len());
    let rows: Vec<[String; 5]> = leases
        .iter()
        .map(|l| {
            let subnet = match &l.ipv6_subnet {
                Some(v6) => format!("{} & {v6}", l.subnet),
                None => l.subnet.clone(),
            };
            let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
            [
                subnet,
                dash(&l.public_ip),
                dash(&l.backend),
                dash(&l.vtep_mac),
                l.expiry_text(),
            ]
        })
        .collect();
    s += &table(
        ["SUBNET", "PUBLIC IP", "BACKEND", "VTEP MAC", "EXPIRES IN"],
        &rows,
    );
    for l in leases.iter().filter(|l| l.problem.is_some()) {
        s += &format!(
            "  PROBLEM in {}: {}\n",
            l.key,
            l.problem.as_deref().unwrap_or("")
        );
    }
    s += &format!("\nThis node ({}):\n", a.subnet_file.display());
    match &env {
        None => s += "  subnet.env: not present (no flannel/netboot agent has run here)\n",
        Some(e) => {
            for (k, v) in e {
                s += &format!("  {k}={v}\n");
            }
            s += &format!(
                "  lease: {}\n",
                own.map_or("none found for FLANNEL_SUBNET".into(), |l| format!(
                    "{} (expires in {})",
                    l.key,
                    l.expiry_text()
                ))
            );
        }
    }
    s += &format!("  agent: {agent_text}\n");
    for d in &devices {
        s += &format!("  {:<12} {}\n", d.name, d.detail);
    }
    s += &format!(
        "  plugins (in {}):\n",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    );
    for (n, p) in &plugins {
        s += &format!(
            "    {n:<12} {}\n",
            p.as_ref()
                .map_or("missing".into(), |p| p.display().to_string())
        );
    }
    crate::out::emit(&s)?;
    Ok(())
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
