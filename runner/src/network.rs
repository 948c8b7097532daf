//! The pod's CNI attachment, driven through the conflist chain the way
//! libcni's `AddNetworkList`/`DelNetworkList`/`CheckNetworkList`/
//! `GCNetworkList` do, with libcni's result cache so that CHECK and DEL
//! (ours or another libcni tool's) see what ADD returned.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use cni::args::split_path;
use cni::invoke::{delegate, Exec, ExecEnv, RuntimeArgs};
use cni::{CniResult, Command, NetConfList, Version};
use serde_json::{json, Map, Value};

/// The pod's interface name, as in Kubernetes.
pub const IFNAME: &str = "eth0";

/// Removes the temp files of `path` (`state::write_atomic`'s
/// `.<name>.tmp-<pid>`, and `<name>.tmp<pid>` of earlier podruns): what a
/// podrun killed while writing it left. Only called under the pod's lock,
/// so no live writer owns one.
fn sweep_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let legacy = format!("{name}.tmp");
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(Result::ok) {
        let file = e.file_name().to_string_lossy().into_owned();
        let ours = atomicfile::parse_temp(&file).is_some_and(|(target, _)| target == name);
        if ours || file.starts_with(&legacy) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Where a network lives and how to call its plugins.
pub struct Network {
    /// The conflist.
    pub list: NetConfList,
    /// CNI_PATH entries.
    pub paths: Vec<PathBuf>,
    /// libcni cache root (`/var/lib/cni`); results go to `<root>/results`.
    pub cache_root: PathBuf,
}

/// One attachment: the pause container's ID and netns, plus the pod's
/// identity for CNI_ARGS and its port mappings and bandwidth limits for
/// `runtimeConfig`.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    pub netns: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub port_mappings: Vec<Value>,
    /// The `bandwidth` capability's value ([`bandwidth_arg`]).
    pub bandwidth: Option<Value>,
}

/// The `bandwidth` capability as containerd's CRI sends it for a pod's
/// bandwidth annotations (`toCNIBandWidth`): go-cni's `BandWidth`, whose
/// fields have no json tags (so Go's names), a rate in bits/s and a burst
/// of math.MaxUint32 bits for each direction that is limited, zeros for
/// the other (the reference plugin reads zero as "not limited").
pub fn bandwidth_arg(bw: &crate::spec::Bandwidth) -> Value {
    let burst = |rate: Option<u64>| rate.map_or(0, |_| u64::from(u32::MAX));
    json!({
        "IngressRate": bw.ingress_rate.unwrap_or(0),
        "IngressBurst": burst(bw.ingress_rate),
        "EgressRate": bw.egress_rate.unwrap_or(0),
        "EgressBurst": burst(bw.egress_rate),
    })
}

impl Attachment {
    /// CNI_ARGS as containerd's CRI plugin passes them.
    fn cni_args(&self) -> Vec<(String, String)> {
        vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), self.pod_namespace.clone()),
            ("K8S_POD_NAME".into(), self.pod_name.clone()),
            (
                "K8S_POD_INFRA_CONTAINER_ID".into(),
                self.container_id.clone(),
            ),
        ]
    }

    /// Capability args; each plugin gets only those it declares.
    fn capability_args(&self) -> Map<String, Value> {
        let mut m = Map::new();
        if !self.port_mappings.is_empty() {
            m.insert(
                "portMappings".into(),
                Value::Array(self.port_mappings.clone()),
            );
        }
        if let Some(bw) = &self.bandwidth {
            m.insert("bandwidth".into(), bw.clone());
        }
        m
    }
}

impl Network {
    /// The conflist named `name` in `conf_dir`, or the first one there.
    pub fn load(
        conf_dir: &Path,
        name: Option<&str>,
        bin_dirs: &str,
        cache_root: &Path,
    ) -> Result<Network> {
        let list = match name {
            Some(n) => NetConfList::load_named(conf_dir, n),
            None => NetConfList::load_dir(conf_dir),
        }
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("network config in {}", conf_dir.display()))?;
        Ok(Network {
            list,
            paths: split_path(bin_dirs),
            cache_root: cache_root.to_owned(),
        })
    }

    /// A network from a conflist value (saved at `run` time).
    pub fn from_value(conf: &Value, bin_dirs: &str, cache_root: &Path) -> Result<Network> {
        let list = NetConfList::from_value(conf.clone())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("saved network config")?;
        Ok(Network {
            list,
            paths: split_path(bin_dirs),
            cache_root: cache_root.to_owned(),
        })
    }

    /// The conflist ADD used for `container_id` on network `name`, from
    /// libcni's cache entry (its base64 `config`), if there is one.
    pub fn cached_config(cache_root: &Path, name: &str, container_id: &str) -> Option<Value> {
        let path = cache_root
            .join("results")
            .join(format!("{name}-{container_id}-{IFNAME}"));
        let info: Value = serde_json::from_slice(&fs::read(path).ok()?).ok()?;
        let b64 = info.get("config")?.as_str()?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Fails unless every plugin of the chain is on CNI_PATH.
    /// Whether a plugin of the list declares capability `cap` (so that
    /// the runtime's value for it reaches a plugin at all).
    pub fn declares(&self, cap: &str) -> bool {
        self.list.plugins.iter().any(|p| {
            p.as_object()
                .and_then(|o| cni::gojson::field_of(o, "capabilities"))
                .and_then(|c| c.get(cap))
                .and_then(Value::as_bool)
                == Some(true)
        })
    }

    pub fn check_plugins(&self) -> Result<()> {
        for i in 0..self.list.plugins.len() {
            let t = self.list.plugin_type(i).unwrap_or_default();
            cni::invoke::find_in_path(t, &self.paths)
                .map_err(|e| anyhow::anyhow!("network {:?}: {}", self.list.name, e.msg))?;
        }
        Ok(())
    }

    fn env(&self, a: &Attachment) -> ExecEnv {
        ExecEnv::for_runtime(&RuntimeArgs {
            container_id: a.container_id.clone(),
            netns: a.netns.clone(),
            ifname: IFNAME.into(),
            args: a.cni_args(),
            path: self.paths.clone(),
        })
    }

    /// libcni's cache file for this attachment.
    pub fn cache_path(&self, container_id: &str) -> PathBuf {
        self.cache_root
            .join("results")
            .join(format!("{}-{container_id}-{IFNAME}", self.list.name))
    }

    fn run(
        &self,
        cmd: Command,
        i: usize,
        conf: &Value,
        a: &Attachment,
    ) -> Result<Option<CniResult>> {
        let t = self.list.plugin_type(i).unwrap_or_default().to_string();
        let bytes = serde_json::to_vec(conf)?;
        delegate(cmd, &t, &bytes, &self.paths, &self.env(a), &Exec::default())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("CNI {cmd} of plugin {t:?} in network {:?}", self.list.name))
    }

    /// ADD through the chain; the last result is cached and returned.
    pub fn add(&self, a: &Attachment) -> Result<CniResult> {
        let version = self.list.effective_version();
        let caps = a.capability_args();
        let mut prev: Option<Value> = None;
        let mut last = None;
        for i in 0..self.list.plugins.len() {
            let conf = self.list.plugin_config(i, prev.as_ref(), &caps)?;
            let r = self
                .run(Command::Add, i, &conf, a)?
                .context("plugin returned no result")?;
            prev = Some(r.to_value(&version)?);
            last = Some(r);
        }
        let result = last.context("empty plugin chain")?;
        self.write_cache(a, &result.to_value(&version)?)?;
        Ok(result)
    }

    /// DEL through the chain in reverse, with the cached result as
    /// `prevResult` (0.4.0+), then drop the cache. Keeps going past a
    /// failing plugin and reports the first error.
    pub fn del(&self, a: &Attachment) -> Result<()> {
        let caps = a.capability_args();
        let cached = self.read_cache(&a.container_id)?;
        let prev = cached.and_then(|c| c.get("result").cloned());
        let prev = prev.filter(|_| self.version_at_least("0.4.0"));
        let mut first_err = None;
        for i in (0..self.list.plugins.len()).rev() {
            let conf = self.list.plugin_config(i, prev.as_ref(), &caps)?;
            if let Err(e) = self.run(Command::Del, i, &conf, a) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        let path = self.cache_path(&a.container_id);
        sweep_temps(&path);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// CHECK through the chain with the cached result (needs 0.4.0+).
    pub fn check(&self, a: &Attachment) -> Result<()> {
        if !self.version_at_least("0.4.0") {
            bail!(
                "configuration version {:?} does not support the CHECK command",
                self.list.effective_version()
            );
        }
        if self.list.disable_check {
            return Ok(());
        }
        let cached = self
            .read_cache(&a.container_id)?
            .with_context(|| format!("no cached result for {}", a.container_id))?;
        let prev = cached
            .get("result")
            .cloned()
            .context("cache has no result")?;
        for i in 0..self.list.plugins.len() {
            let conf = self
                .list
                .plugin_config(i, Some(&prev), &a.capability_args())?;
            self.run(Command::Check, i, &conf, a)?;
        }
        Ok(())
    }

    /// GC (1.1.0+) with the `(container ID, ifname)` attachments that
    /// must be kept.
    pub fn gc(&self, keep: &[(String, String)]) -> Result<()> {
        if !self.version_at_least("1.1.0") || self.list.disable_gc {
            return Ok(());
        }
        let valid: Vec<Value> = keep
            .iter()
            .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
            .collect();
        for i in 0..self.list.plugins.len() {
            let mut conf = self.list.plugin_config(i, None, &Map::new())?;
            conf["cni.dev/valid-attachments"] = Value::Array(valid.clone());
            let t = self.list.plugin_type(i).unwrap_or_default().to_string();
            let bytes = serde_json::to_vec(&conf)?;
            let env = ExecEnv::inherited().with(
                "CNI_PATH",
                self.paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":"),
            );
            delegate(Command::Gc, &t, &bytes, &self.paths, &env, &Exec::default())
                .map_err(|e| anyhow::anyhow!("CNI GC of plugin {t:?}: {e}"))?;
        }
        Ok(())
    }

    fn version_at_least(&self, v: &str) -> bool {
        match (
            Version::parse(&self.list.effective_version()),
            Version::parse(v),
        ) {
            (Ok(have), Ok(want)) => have >= want,
            _ => false,
        }
    }

    /// libcni `cachedInfo` (kind `cniCacheV1`), byte-compatible so cnitool
    /// and CRI can read it.
    fn write_cache(&self, a: &Attachment, result: &Value) -> Result<()> {
        let conf = serde_json::to_vec(&self.list.to_value())?;
        let args: Vec<[String; 2]> = a.cni_args().into_iter().map(|(k, v)| [k, v]).collect();
        let mut info = json!({
            "kind": "cniCacheV1",
            "containerId": a.container_id,
            "config": base64::engine::general_purpose::STANDARD.encode(conf),
            "ifName": IFNAME,
            "networkName": self.list.name,
            "netns": a.netns,
            "cniArgs": args,
            "result": result,
        });
        let caps = a.capability_args();
        if !caps.is_empty() {
            info["capabilityArgs"] = Value::Object(caps);
        }
        let path = self.cache_path(&a.container_id);
        let dir = path.parent().context("cache path")?;
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        crate::state::write_atomic(&path, &serde_json::to_vec(&info)?, 0o600)
    }

    fn read_cache(&self, container_id: &str) -> Result<Option<Value>> {
        let path = self.cache_path(container_id);
        match fs::read(&path) {
            Ok(b) => Ok(serde_json::from_slice(&b).ok()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }
}
