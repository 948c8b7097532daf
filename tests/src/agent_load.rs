//! Support for agent load tests (`tests/tests/agent_churn.rs`): an etcd v3
//! client that runs inside the etcd member's network namespace, the vxlan
//! tables an agent programs on `flannel.<VNI>` read back from the kernel
//! (through netkit and, independently, through `ip -j` / `bridge -j`), and
//! CPU / memory samples of a process from `/proc`.
//!
//! The etcd client talks to a member that only exists inside the test's
//! namespaces: each call runs on a short-lived thread that has entered the
//! member's netns ([`netkit::Netns::run`]), with its own current-thread
//! tokio runtime and connection, so no socket is ever opened in the root
//! namespace and no thread is handed back in the wrong one.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use etcd_client::Client;
use serde_json::Value;

use crate::exec::{nsenter, run};

/// An etcd v3 endpoint reachable from inside the namespace at `netns`.
pub struct EtcdV3 {
    ns: netkit::Netns,
    endpoint: String,
}

impl EtcdV3 {
    /// `endpoint` (`http://IP:2379`) as seen from the namespace at `netns`.
    pub fn new(netns: &Path, endpoint: &str) -> EtcdV3 {
        let ns = netkit::Netns::open(netns)
            .unwrap_or_else(|e| panic!("open netns {}: {e}", netns.display()));
        EtcdV3 {
            ns,
            endpoint: endpoint.to_string(),
        }
    }

    /// Run `f` with a fresh client connected from inside the namespace.
    /// Errors (connecting or from `f`) come back as text naming the
    /// endpoint.
    pub fn call<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        T: Send,
        F: FnOnce(Client) -> Fut + Send,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let ep = self.endpoint.clone();
        let res = self.ns.run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            rt.block_on(async {
                let opts = etcd_client::ConnectOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(15));
                let c = Client::connect([ep.as_str()], Some(opts))
                    .await
                    .map_err(|e| format!("connect to etcd at {ep}: {e}"))?;
                f(c).await.map_err(|e| format!("etcd at {ep}: {e}"))
            })
        });
        match res {
            Ok(r) => r,
            Err(e) => Err(format!("enter the etcd netns: {e}")),
        }
    }

    /// Like [`EtcdV3::call`], panicking with `what` on error.
    #[track_caller]
    pub fn must<T, F, Fut>(&self, what: &str, f: F) -> T
    where
        T: Send,
        F: FnOnce(Client) -> Fut + Send,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(f).unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// Every key under `prefix` with its value, and the store revision.
    #[track_caller]
    pub fn list(&self, prefix: &str) -> (BTreeMap<String, String>, i64) {
        let p = prefix.to_string();
        self.must("list keys", |mut c| async move {
            let r = c
                .get(p, Some(etcd_client::GetOptions::new().with_prefix()))
                .await?;
            let rev = r.header().map_or(0, |h| h.revision());
            let kvs = r
                .kvs()
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        String::from_utf8_lossy(kv.value()).into_owned(),
                    )
                })
                .collect();
            Ok((kvs, rev))
        })
    }
}

/// What an agent has programmed on its vxlan device, each table sorted and
/// rendered as text so that duplicates and differences print plainly:
/// routes `DST via GW onlink`, permanent ARP entries `IP MAC`, FDB entries
/// `MAC dst IP`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanTables {
    pub routes: Vec<String>,
    pub neigh: Vec<String>,
    pub fdb: Vec<String>,
}

impl VxlanTables {
    /// The tables a flannel vxlan node must hold for remote leases
    /// `(subnet network address, prefix length, public IP, VtepMAC)`.
    pub fn expected<'a>(
        remotes: impl IntoIterator<Item = (&'a str, u8, &'a str, &'a str)>,
    ) -> VxlanTables {
        let mut t = VxlanTables::default();
        for (net, len, ip, mac) in remotes {
            let mac = mac.to_ascii_lowercase();
            t.routes
                .push(route_text(&format!("{net}/{len}"), net, true));
            t.neigh.push(format!("{net} {mac}"));
            t.fdb.push(format!("{mac} dst {ip}"));
        }
        t.sort();
        t
    }

    fn sort(&mut self) {
        self.routes.sort();
        self.neigh.sort();
        self.fdb.sort();
        // One FDB entry serves every lease with the same VtepMAC and IP.
        self.fdb.dedup();
    }

    /// `missing …; extra …` per table (empty when equal). Duplicates in
    /// `self` show up as extra.
    pub fn diff(&self, want: &VxlanTables) -> String {
        let mut out = Vec::new();
        for (name, have, want) in [
            ("route", &self.routes, &want.routes),
            ("arp", &self.neigh, &want.neigh),
            ("fdb", &self.fdb, &want.fdb),
        ] {
            let (missing, extra) = multiset_diff(have, want);
            if !missing.is_empty() {
                out.push(format!("{name} missing {missing:?}"));
            }
            if !extra.is_empty() {
                out.push(format!("{name} extra {extra:?}"));
            }
        }
        out.join("; ")
    }
}

fn route_text(dst: &str, gw: &str, onlink: bool) -> String {
    format!("{dst} via {gw}{}", if onlink { " onlink" } else { "" })
}

/// Entries of `want` not in `have`, and of `have` not in `want`, counting
/// repeats.
fn multiset_diff(have: &[String], want: &[String]) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for h in have {
        *count.entry(h).or_default() += 1;
    }
    for w in want {
        *count.entry(w).or_default() -= 1;
    }
    let (mut missing, mut extra) = (Vec::new(), Vec::new());
    for (k, n) in count {
        for _ in 0..n.unsigned_abs() {
            if n < 0 {
                missing.push(k.to_string());
            } else {
                extra.push(k.to_string());
            }
        }
    }
    (missing, extra)
}

/// Reads an agent node's vxlan tables over netlink (a socket opened once in
/// the node's namespace): cheap enough to poll every few milliseconds.
pub struct TableReader {
    nl: netkit::Netlink,
    dev: String,
}

impl TableReader {
    pub fn new(node_netns: &Path, dev: &str) -> TableReader {
        let nl = netkit::Netns::open(node_netns)
            .and_then(|ns| ns.netlink())
            .unwrap_or_else(|e| panic!("netlink in {}: {e}", node_netns.display()));
        TableReader {
            nl,
            dev: dev.to_string(),
        }
    }

    /// The tables now; `None` when the device does not exist.
    pub fn read(&mut self) -> Result<Option<VxlanTables>, String> {
        let e = |e: netkit::Error| e.to_string();
        let Some(link) = self.nl.link().by_name(&self.dev).map_err(e)? else {
            return Ok(None);
        };
        let idx = link.index;
        let mut t = VxlanTables::default();
        for r in self.nl.route().list(netkit::Family::V4).map_err(e)? {
            if r.oif == Some(idx) {
                let gw = r.gw.map_or("-".to_string(), |g| g.to_string());
                t.routes.push(route_text(&r.dst.to_string(), &gw, r.onlink));
            }
        }
        for n in self.nl.neigh().list(idx, false).map_err(e)? {
            if n.permanent {
                t.neigh
                    .push(format!("{} {}", ip_text(n.ip), mac_text(n.mac)));
            }
        }
        for f in self.nl.neigh().list_fdb(idx).map_err(e)? {
            t.fdb
                .push(format!("{} dst {}", mac_text(f.mac), ip_text(f.ip)));
        }
        t.routes.sort();
        t.neigh.sort();
        t.fdb.sort();
        Ok(Some(t))
    }
}

fn ip_text(ip: Option<std::net::IpAddr>) -> String {
    ip.map_or("-".into(), |i| i.to_string())
}

fn mac_text(mac: Option<[u8; 6]>) -> String {
    mac.map_or("-".into(), |m| netkit::fmt_mac(&m))
}

fn json_of(netns: &Path, argv: &[&str]) -> Value {
    let out = run(nsenter(netns, argv), None, Duration::from_secs(30)).expect_ok();
    if out.stdout.trim().is_empty() {
        return Value::Array(Vec::new());
    }
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON from `{}`: {e}\n{}", out.command, out.stdout))
}

/// The same tables read with iproute2 (`ip -j route/neigh`, `bridge -j
/// fdb`): an independent check of what [`TableReader`] saw.
pub fn tables_by_iproute2(node_netns: &Path, dev: &str) -> VxlanTables {
    let mut t = VxlanTables::default();
    let arr = |v: Value| v.as_array().cloned().unwrap_or_default();
    for r in arr(json_of(
        node_netns,
        &["ip", "-j", "route", "show", "dev", dev],
    )) {
        let onlink = r["flags"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "onlink"));
        let dst = r["dst"].as_str().unwrap_or("-");
        let gw = r["gateway"].as_str().unwrap_or("-");
        t.routes.push(route_text(dst, gw, onlink));
    }
    for n in arr(json_of(
        node_netns,
        &["ip", "-j", "-4", "neigh", "show", "dev", dev],
    )) {
        let permanent = n["state"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "PERMANENT"));
        if permanent {
            let ip = n["dst"].as_str().unwrap_or("-");
            let mac = n["lladdr"].as_str().unwrap_or("-");
            t.neigh.push(format!("{ip} {mac}"));
        }
    }
    for f in arr(json_of(
        node_netns,
        &["bridge", "-j", "fdb", "show", "dev", dev],
    )) {
        let mac = f["mac"].as_str().unwrap_or("-");
        let dst = f["dst"].as_str().unwrap_or("-");
        t.fdb.push(format!("{mac} dst {dst}"));
    }
    t.routes.sort();
    t.neigh.sort();
    t.fdb.sort();
    t
}

/// CPU time and memory of one process, from `/proc/<pid>/stat` and
/// `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime: children it waited for (`nft`, `iptables-save`).
    pub child_ticks: u64,
    /// CPU time of all its threads in ns (`/proc/<pid>/task/*/schedstat`,
    /// first field): exact, where the tick counts above are 10 ms steps.
    pub cpu_ns: u64,
    /// VmRSS, KiB.
    pub rss_kb: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kb: u64,
}

impl ProcSample {
    /// Sample `pid`; `None` when it is gone.
    pub fn of(pid: u32) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may contain spaces: fields start after the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // stat(5): utime, stime, cutime, cstime are fields 14-17; `rest`
        // starts at field 3.
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        let (utime, stime) = (num(11)?, num(12)?);
        let (cutime, cstime) = (num(13)?, num(14)?);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let mut cpu_ns = 0;
        for t in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let st = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            cpu_ns += st
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        Some(ProcSample {
            cpu_ticks: utime + stime,
            cpu_ns,
            child_ticks: cutime + cstime,
            rss_kb: kb("VmRSS:"),
            hwm_kb: kb("VmHWM:"),
        })
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> u64 {
    let out = crate::exec::run_argv(&["getconf", "CLK_TCK"]);
    out.stdout.trim().parse().unwrap_or(100)
}
