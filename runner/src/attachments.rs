//! The attachments that can be seen on the node, for `podrun gc` (see
//! [`crate::gc`]): libcni's result cache (`<cacheDir>/results/*`) and the
//! stores of the conflist's plugins in their upstream formats.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use crate::network::{Network, IFNAME};
use crate::state::Store;

/// `(container ID, ifname)`, as in `cni.dev/valid-attachments`.
pub type Pair = (String, String);

/// One entry of libcni's result cache (`cniCacheV1`).
#[derive(Debug, Clone)]
pub struct Cached {
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub netns: String,
    /// The conflist ADD used, decoded.
    pub config: Option<Value>,
    pub cni_args: Vec<(String, String)>,
    pub port_mappings: Vec<Value>,
    pub bandwidth: Option<Value>,
}

/// Every readable entry of libcni's cache under `cache_root`, checked as
/// libcni's `GetCachedAttachments` checks them (kind, non-empty ifname and
/// network); the names are not parsed, IDs may contain '-'.
pub fn cached_attachments(cache_root: &Path) -> Vec<Cached> {
    let Ok(rd) = fs::read_dir(cache_root.join("results")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in rd.filter_map(Result::ok) {
        let Some(v) = fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        if s("kind") != "cniCacheV1" || s("ifName").is_empty() || s("networkName").is_empty() {
            continue;
        }
        let config = v
            .get("config")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| serde_json::from_slice(&b).ok());
        let cni_args = v
            .get("cniArgs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv[0].as_str()?.into(), kv[1].as_str()?.into())))
            .collect();
        let port_mappings = v
            .pointer("/capabilityArgs/portMappings")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let bandwidth = v.pointer("/capabilityArgs/bandwidth").cloned();
        out.push(Cached {
            container_id: s("containerId"),
            ifname: s("ifName"),
            network: s("networkName"),
            netns: s("netns"),
            config,
            cni_args,
            port_mappings,
            bandwidth,
        });
    }
    out
}

/// host-local's default store root and flannel's default dataDir.
const HOST_LOCAL_DEFAULT: &str = "/var/lib/cni/networks";
const FLANNEL_DEFAULT: &str = "/var/lib/cni/flannel";

/// The store directories the conflist's plugins keep attachments in:
/// `(host-local dirs, flannel/netboot-cni dataDirs)`. Extra directories
/// only make gc keep more, so every plausible one is listed.
fn plugin_stores(net: &Network) -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>) {
    let name = &net.list.name;
    let mut ipam = BTreeSet::from([Path::new(HOST_LOCAL_DEFAULT).join(name)]);
    let mut data = BTreeSet::new();
    for p in &net.list.plugins {
        for conf in [Some(p), p.get("delegate")].into_iter().flatten() {
            if let Some(d) = conf.pointer("/ipam/dataDir").and_then(Value::as_str) {
                ipam.insert(Path::new(d).join(name));
            }
        }
        let t = p.get("type").and_then(Value::as_str).unwrap_or("");
        match p.get("dataDir").and_then(Value::as_str) {
            Some(d) => {
                data.insert(PathBuf::from(d));
            }
            None if t == "flannel" || t == "netboot-cni" => {
                data.insert(PathBuf::from(FLANNEL_DEFAULT));
            }
            None => {}
        }
    }
    (ipam, data)
}

/// Attachments found in host-local stores: files named by an IP holding
/// `<id>\r\n<ifname>` (older ones only the ID: host-local's GC then keys
/// on the ID alone, so any ifname keeps it).
fn host_local_attachments(dir: &Path, out: &mut Vec<Pair>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        if name
            .to_str()
            .and_then(|n| n.parse::<std::net::IpAddr>().ok())
            .is_none()
        {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let mut lines = text.lines().map(str::trim);
        let id = lines.next().unwrap_or("");
        if id.is_empty() {
            continue;
        }
        let ifname = lines.next().filter(|i| !i.is_empty()).unwrap_or(IFNAME);
        out.push((id.to_string(), ifname.to_string()));
    }
}

/// Attachments found in a flannel/netboot-cni dataDir: flannel's scratch
/// files `<id>` and netboot-cni's records `.netboot/<id>@<ifname>.json`.
fn data_dir_attachments(dir: &Path, out: &mut Vec<Pair>) {
    let files = |d: &Path| -> Vec<String> {
        fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    for id in files(dir).into_iter().filter(|n| !n.starts_with('.')) {
        out.push((id, IFNAME.to_string()));
    }
    for rec in files(&dir.join(".netboot")) {
        if let Some((id, ifname)) = rec.strip_suffix(".json").and_then(|r| r.split_once('@')) {
            out.push((id.to_string(), ifname.to_string()));
        }
    }
}

/// Every attachment seen on the node that is not this instance's.
pub fn foreign_attachments(store: &Store, net: &Network, cached: &[Cached]) -> Vec<Pair> {
    let mut seen: Vec<Pair> = cached
        .iter()
        .map(|c| (c.container_id.clone(), c.ifname.clone()))
        .collect();
    let (ipam, data) = plugin_stores(net);
    for d in &ipam {
        host_local_attachments(d, &mut seen);
    }
    for d in &data {
        data_dir_attachments(d, &mut seen);
    }
    seen.retain(|(id, _)| !store.owns(id));
    seen.sort();
    seen.dedup();
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// A node's stores in upstream formats: who holds what is read from
    /// each, this instance's IDs are left out, and unrelated files are
    /// ignored.
    #[test]
    fn foreign_attachments_come_from_every_store_but_never_own_ids() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::new(&d.path().join("state"), "netboot").unwrap();
        let mine = store.sandbox_id("web");
        let (ipam, data) = (d.path().join("ipam"), d.path().join("data"));
        let conf = json!({"cniVersion": "1.1.0", "name": "net", "plugins": [{
            "type": "netboot-cni",
            "dataDir": data,
            "ipam": {"dataDir": ipam},
        }]});
        let net = Network::from_value(&conf, "/nonexistent", d.path()).unwrap();
        let (i, dd) = plugin_stores(&net);
        assert!(i.contains(&ipam.join("net")), "{i:?}");
        assert!(
            i.contains(&Path::new(HOST_LOCAL_DEFAULT).join("net")),
            "{i:?}"
        );
        assert_eq!(dd, BTreeSet::from([data.clone()]));

        write(&ipam.join("net/10.0.0.2"), "crio-1\r\neth0");
        write(&ipam.join("net/10.0.0.3"), "old-id");
        write(&ipam.join("net/10.0.0.4"), &format!("{mine}\r\neth0"));
        write(&ipam.join("net/lock"), "");
        write(&ipam.join("net/last_reserved_ip.0"), "10.0.0.4");
        write(&data.join("flannel-1"), "{}");
        write(&data.join(".netboot/other-1@net1.json"), "{}");
        write(&data.join(format!(".netboot/{mine}@eth0.json")), "{}");
        let info = |id: &str, kind: &str| {
            let config = base64::engine::general_purpose::STANDARD.encode(conf.to_string());
            json!({"kind": kind, "containerId": id, "ifName": "eth1", "networkName": "other",
                   "config": config, "cniArgs": [["K8S_POD_NAME", "p"]],
                   "capabilityArgs": {"portMappings": [{"hostPort": 80}]}})
        };
        write(
            &d.path().join("results/other-cri-1-eth1"),
            &info("cri-1", "cniCacheV1").to_string(),
        );
        write(
            &d.path().join("results/x"),
            &info("bogus", "v0").to_string(),
        );
        write(&d.path().join("results/y"), "{not json");

        let cached = cached_attachments(d.path());
        assert_eq!(cached.len(), 1, "{cached:?}");
        let c = &cached[0];
        assert_eq!(
            (c.container_id.as_str(), c.network.as_str()),
            ("cri-1", "other")
        );
        assert_eq!(c.config.as_ref(), Some(&conf));
        assert_eq!(c.cni_args, vec![("K8S_POD_NAME".into(), "p".into())]);
        assert_eq!(c.port_mappings, vec![json!({"hostPort": 80})]);

        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        let got = foreign_attachments(&store, &net, &cached);
        for want in [
            pair("cri-1", "eth1"),
            pair("crio-1", "eth0"),
            pair("old-id", IFNAME),
            pair("flannel-1", IFNAME),
            pair("other-1", "net1"),
        ] {
            assert!(got.contains(&want), "{want:?} not in {got:?}");
        }
        assert!(
            got.iter().all(|(id, _)| *id != mine),
            "own ID kept: {got:?}"
        );
        assert!(got
            .iter()
            .all(|(id, _)| id != "lock" && !id.starts_with("last_")));
    }
}
