//! Loading configs from a directory such as `/etc/cni/net.d`, the way libcni
//! (`ConfFiles`, `LoadConfList`) and the runtimes built on it do.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::NetConfList;
use crate::error::{codes, CniError};

/// Extensions a runtime considers, as containerd and CRI-O do.
pub const CONF_EXTENSIONS: &[&str] = &["conf", "conflist", "json"];

/// Config files in `dir` (not descending), sorted by file name: the order
/// runtimes use to pick the default network, hence the `10-` prefixes.
/// A missing directory is no files, as in libcni `ConfFiles`.
pub fn conf_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(dir, &e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let path = entry.path();
        let ext_ok = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CONF_EXTENSIONS.contains(&e));
        if ext_ok && !path.is_dir() {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn io_error(path: &Path, e: &std::io::Error) -> CniError {
    CniError::new(codes::IO, format!("error reading {}: {e}", path.display()))
}

impl NetConfList {
    /// Loads one file. A `.conflist` is a list; a `.conf`/`.json` holding a
    /// single plugin config is wrapped into a one-plugin list (libcni
    /// `ConfListFromConf`). A `.conf`/`.json` that has a `plugins` key is
    /// read as a list, since that is plainly what its author meant.
    pub fn load_file(path: &Path) -> Result<NetConfList, CniError> {
        let bytes = fs::read(path).map_err(|e| io_error(path, &e))?;
        let at = |e: CniError| e.context(path.display());
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| at(CniError::from(e)))?;
        let is_list =
            path.extension().is_some_and(|e| e == "conflist") || v.get("plugins").is_some();
        if is_list {
            return NetConfList::from_value(v).map_err(at);
        }
        if v.get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(at(CniError::invalid_config(
                "error parsing configuration: missing 'type'",
            )));
        }
        NetConfList::from_single_conf(v).map_err(at)
    }

    /// The runtime's default network: the first file of [`conf_files`] that
    /// loads. Unloadable files are skipped (as kubelet did), but if none
    /// loads the error lists every file's problem.
    pub fn load_dir(dir: &Path) -> Result<NetConfList, CniError> {
        let files = conf_files(dir)?;
        if files.is_empty() {
            return Err(CniError::invalid_config(format!(
                "no net configurations found in {}",
                dir.display()
            )));
        }
        let mut problems = Vec::new();
        for f in &files {
            match NetConfList::load_file(f) {
                Ok(list) => return Ok(list),
                Err(e) => problems.push(e.to_string()),
            }
        }
        Err(
            CniError::invalid_config(format!("no valid net configuration in {}", dir.display()))
                .with_details(problems.join("\n")),
        )
    }

    /// The network called `name` in `dir` (libcni `LoadConfList`): lists
    /// first, then single-plugin files, each in name order. Unlike
    /// [`NetConfList::load_dir`], a broken file is an error, as in libcni.
    pub fn load_named(dir: &Path, name: &str) -> Result<NetConfList, CniError> {
        let files = conf_files(dir)?;
        let (lists, singles): (Vec<_>, Vec<_>) = files
            .iter()
            .partition(|p| p.extension().is_some_and(|e| e == "conflist"));
        for f in lists.iter().chain(singles.iter()) {
            let list = NetConfList::load_file(f)?;
            if list.name == name {
                return Ok(list);
            }
        }
        Err(CniError::invalid_config(format!(
            "no net configuration with name {name:?} in {}",
            dir.display()
        )))
    }
}
