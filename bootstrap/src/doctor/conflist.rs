//! The CNI config runtimes use (the first in the directory), the
//! netboot-cni or flannel entry of its chain and where that keeps its
//! records, and where plugin binaries are looked for.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The first CNI config in the directory (what runtimes use by default).
pub enum Loaded {
    None(String),
    Broken(PathBuf, String),
    Ok(PathBuf, cni::NetConfList),
}

pub fn load_conflist(dir: &Path) -> Loaded {
    let files = match cni::conf::conf_files(dir) {
        Ok(f) => f,
        Err(e) => return Loaded::None(format!("cannot read {}: {e}", dir.display())),
    };
    let Some(first) = files.first() else {
        return Loaded::None(format!("no CNI config in {}", dir.display()));
    };
    match cni::NetConfList::load_file(first) {
        Ok(l) => Loaded::Ok(first.clone(), l),
        Err(e) => Loaded::Broken(first.clone(), e.to_string()),
    }
}

const FLANNEL_TYPES: &[&str] = &["netboot-cni", "flannel"];
const DEFAULT_DATA_DIR: &str = "/var/lib/cni/flannel";
/// The netboot-cni or flannel entry of the chain.
pub fn main_plugin(list: &cni::NetConfList) -> Option<&Value> {
    list.plugins.iter().find(|p| {
        p["type"]
            .as_str()
            .is_some_and(|t| FLANNEL_TYPES.contains(&t))
    })
}

/// netboot-cni's record directory, `<dataDir>/.netboot`.
pub fn records_dir(main: &Value) -> PathBuf {
    Path::new(str_or(main, "dataDir", DEFAULT_DATA_DIR)).join(".netboot")
}

pub fn str_or<'a>(v: &'a Value, key: &str, default: &'a str) -> &'a str {
    v[key].as_str().unwrap_or(default)
}

/// Where plugins are looked for: the bin dir, then $CNI_PATH.
pub fn plugin_dirs(bin_dir: &std::path::Path) -> Vec<PathBuf> {
    let mut dirs = vec![bin_dir.to_path_buf()];
    if let Some(p) = std::env::var_os("CNI_PATH") {
        dirs.extend(std::env::split_paths(&p).filter(|d| !d.as_os_str().is_empty()));
    }
    dirs
}
