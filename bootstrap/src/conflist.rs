//! The node's CNI config (`10-flannel.conflist`) and plugin installation.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// File name in the CNI conf dir; `10-` sorts it before most others.
pub const CONFLIST_NAME: &str = "10-flannel.conflist";
/// The plugin binary netboot ships.
pub const PLUGIN_NAME: &str = "netboot-cni";
/// Network name, the same as flannel's kube-flannel.yml ("cbr0").
const NETWORK_NAME: &str = "cbr0";
/// The runtime capabilities netboot-cni serves, declared so that libcni
/// (and containerd's CRI through it) passes them: hostPorts, kubelet's
/// bandwidth annotations, and host-local's range override.
pub const CAPABILITIES: [&str; 3] = ["portMappings", "bandwidth", "ipRanges"];

/// The conflist `init` writes. Default: netboot-cni in `auto` mode with
/// the capabilities it serves in every mode, [`CAPABILITIES`]
/// (conf/10-flannel.conflist); `upstream`: the
/// classic flannel + portmap chain (conf/10-flannel-upstream.conflist).
/// `cni_version` defaults to 1.0.0 (netboot) / 0.3.1 (upstream, what old
/// flannel binaries know).
#[cfg(test)]
pub fn conflist(upstream: bool, cni_version: Option<&str>) -> Result<String> {
    conflist_for(upstream, cni_version, &NodeDirs::default())
}

/// Where a node keeps the files the plugin reads and writes, when not at
/// the standard paths (a second agent on one machine, a node in a netns).
#[derive(Debug, Clone, Default)]
pub struct NodeDirs {
    /// flannel's subnet.env (the plugin's `subnetFile`).
    pub subnet_file: Option<PathBuf>,
    /// Root of the plugin's state: `dataDir` = `<dir>/flannel` and
    /// `ipam.dataDir` = `<dir>/networks` (the standard layout under
    /// /var/lib/cni).
    pub data_dir: Option<PathBuf>,
}

/// [`conflist`] with the plugin pointed at `dirs`.
pub fn conflist_for(upstream: bool, cni_version: Option<&str>, dirs: &NodeDirs) -> Result<String> {
    let default_version = if upstream { "0.3.1" } else { "1.0.0" };
    let version = cni_version.unwrap_or(default_version);
    if !cni::version::SUPPORTED_VERSIONS.contains(&version) {
        bail!(
            "--cni-version {version:?} is not a CNI spec version netboot supports: use one of {}",
            cni::version::SUPPORTED_VERSIONS.join(", ")
        );
    }
    if cni::Version::parse(version).map_err(|e| anyhow::anyhow!("{e}"))? < cni::Version(0, 3, 0) {
        bail!("--cni-version {version}: conflists (a \"plugins\" list) need CNI 0.3.0 or later");
    }
    let delegate = json!({ "hairpinMode": true, "isDefaultGateway": true });
    let plugins: Vec<Value> = if upstream {
        vec![
            json!({ "type": "flannel", "delegate": delegate }),
            json!({ "type": "portmap", "capabilities": { "portMappings": true } }),
        ]
    } else {
        vec![json!({
            "type": PLUGIN_NAME,
            "mode": "auto",
            "delegate": delegate,
            "capabilities": CAPABILITIES.iter().map(|c| (c.to_string(), json!(true))).collect::<serde_json::Map<_, _>>(),
        })]
    };
    let mut plugins = plugins;
    let main = &mut plugins[0];
    if let Some(f) = &dirs.subnet_file {
        if !f.is_absolute() {
            bail!("--subnet-file {} must be an absolute path", f.display());
        }
        main["subnetFile"] = json!(f);
    }
    if let Some(d) = &dirs.data_dir {
        if !d.is_absolute() {
            bail!("--cni-data-dir {} must be an absolute path", d.display());
        }
        main["dataDir"] = json!(d.join("flannel"));
        main["ipam"] = json!({ "dataDir": d.join("networks") });
    }
    let mut v = json!({ "name": NETWORK_NAME, "cniVersion": version, "plugins": plugins });
    // netboot-cni implements 1.1.0 (GC, STATUS), but runtimes on libcni
    // before 1.2 refuse a conflist whose `cniVersion` they do not know.
    // `cniVersions` (spec 1.1) lets newer runtimes pick 1.1.0 while older
    // ones ignore it and keep 1.0.0. Only with the default version and only
    // for our own plugin: the upstream chain's flannel and portmap stop at
    // 1.0.0, and an explicit --cni-version means exactly that version.
    if !upstream && cni_version.is_none() {
        v["cniVersions"] = json!([version, cni::version::CURRENT_VERSION]);
    }
    let text = serde_json::to_string_pretty(&v)? + "\n";
    // What a runtime would read: refuse to write anything libcni rejects.
    cni::NetConfList::parse(text.as_bytes())
        .map_err(|e| anyhow::anyhow!("generated conflist does not parse: {e}"))?;
    Ok(text)
}

/// Write `contents` to `path` atomically: a temp file in the same directory,
/// fsync, rename over the old file, fsync the directory. Readers see the old
/// file or the new one, never a partial one. Returns whether it changed.
pub fn write_atomic(path: &Path, contents: &str) -> Result<bool> {
    if fs::read(path).ok().as_deref() == Some(contents.as_bytes()) {
        return Ok(false);
    }
    let dir = path.parent().context("conflist path has no directory")?;
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    // The temp's leading dot and its suffix (not .conf/.conflist/.json):
    // libcni ignores it while it exists.
    atomicfile::Options::new()
        .durable(true)
        .mode(0o644)
        .replace(path, contents.as_bytes())?;
    Ok(true)
}

/// What happened to the plugin binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    AlreadyThere(PathBuf),
    Copied {
        from: PathBuf,
        to: PathBuf,
    },
    /// Not found next to `netboot`; the message says how to install it.
    Missing(String),
    /// Dry run: would copy.
    WouldCopy {
        from: PathBuf,
        to: PathBuf,
    },
}

/// Where a `netboot-cni` next to the running `netboot` would be.
fn bundled_plugin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(PLUGIN_NAME);
    p.is_file().then_some(p)
}

/// Make sure `<bin_dir>/netboot-cni` exists: copy it (atomically, 0755)
/// from beside the running `netboot` when it is missing.
pub fn install_plugin(bin_dir: &Path, dry_run: bool) -> Result<Install> {
    let dest = bin_dir.join(PLUGIN_NAME);
    if dest.is_file() {
        return Ok(Install::AlreadyThere(dest));
    }
    let Some(src) = bundled_plugin() else {
        return Ok(Install::Missing(format!(
            "{PLUGIN_NAME} is not in {} and no {PLUGIN_NAME} sits next to this netboot binary; \
             install it with: install -D -m 0755 target/release/{PLUGIN_NAME} {}",
            bin_dir.display(),
            dest.display()
        )));
    };
    if dry_run {
        return Ok(Install::WouldCopy {
            from: src,
            to: dest,
        });
    }
    fs::create_dir_all(bin_dir).with_context(|| format!("create {}", bin_dir.display()))?;
    let mut from = fs::File::open(&src).with_context(|| format!("open {}", src.display()))?;
    atomicfile::Options::new()
        .durable(true)
        .mode(0o755)
        .replace_with(&dest, |to| io::copy(&mut from, to).map(|_| ()))
        .with_context(|| format!("copy {} to {}", src.display(), dest.display()))?;
    Ok(Install::Copied {
        from: src,
        to: dest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_matches_the_shipped_example() {
        let ours: Value = serde_json::from_str(&conflist(false, None).unwrap()).unwrap();
        let shipped: Value =
            serde_json::from_str(include_str!("../../conf/10-flannel.conflist")).unwrap();
        assert_eq!(ours, shipped);
        let ours: Value = serde_json::from_str(&conflist(true, None).unwrap()).unwrap();
        let shipped: Value =
            serde_json::from_str(include_str!("../../conf/10-flannel-upstream.conflist")).unwrap();
        assert_eq!(ours, shipped);
    }

    #[test]
    fn default_declares_every_capability_netboot_cni_serves() {
        let ours: Value = serde_json::from_str(&conflist(false, None).unwrap()).unwrap();
        let caps = &ours["plugins"][0]["capabilities"];
        for cap in ["portMappings", "bandwidth", "ipRanges"] {
            assert_eq!(caps[cap], true, "{cap}: {caps}");
        }
        assert_eq!(caps.as_object().unwrap().len(), CAPABILITIES.len());
    }

    #[test]
    fn default_offers_1_1_0_to_runtimes_that_read_cni_versions() {
        let text = conflist(false, None).unwrap();
        let list = cni::NetConfList::parse(text.as_bytes()).unwrap();
        // A spec-1.1 runtime (libcni >= 1.2, podrun) picks 1.1.0 and so
        // sends GC and STATUS; an older one reads cniVersion 1.0.0.
        let offered = list.cni_versions.clone().expect("cniVersions written");
        assert_eq!(
            cni::version::pick_highest(&offered).as_deref(),
            Some("1.1.0")
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        // Not with an explicit version, nor for the upstream chain, whose
        // flannel and portmap binaries stop at 1.0.0.
        for text in [
            conflist(false, Some("1.0.0")).unwrap(),
            conflist(true, None).unwrap(),
        ] {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert!(v.get("cniVersions").is_none(), "{text}");
        }
    }

    #[test]
    fn cni_version_is_validated() {
        assert!(conflist(false, Some("1.1.0"))
            .unwrap()
            .contains("\"1.1.0\""));
        let e = conflist(false, Some("2.0.0")).unwrap_err().to_string();
        assert!(e.contains("\"2.0.0\" is not a CNI spec version"), "{e}");
        assert!(conflist(false, Some("0.2.0")).is_err());
    }

    #[test]
    fn node_dirs_point_the_plugin_elsewhere() {
        let dirs = NodeDirs {
            subnet_file: Some("/tmp/n1/run/flannel/subnet.env".into()),
            data_dir: Some("/tmp/n1/cni".into()),
        };
        let v: Value = serde_json::from_str(&conflist_for(false, None, &dirs).unwrap()).unwrap();
        let p = &v["plugins"][0];
        assert_eq!(p["subnetFile"], "/tmp/n1/run/flannel/subnet.env");
        assert_eq!(p["dataDir"], "/tmp/n1/cni/flannel");
        assert_eq!(p["ipam"]["dataDir"], "/tmp/n1/cni/networks");
        let rel = NodeDirs {
            subnet_file: Some("run/subnet.env".into()),
            data_dir: None,
        };
        assert!(conflist_for(false, None, &rel).is_err());
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(CONFLIST_NAME);
        fs::write(&p, "old").unwrap();
        assert!(write_atomic(&p, "new\n").unwrap());
        assert!(!write_atomic(&p, "new\n").unwrap());
        assert_eq!(fs::read_to_string(&p).unwrap(), "new\n");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CONFLIST_NAME)]);
    }
}
