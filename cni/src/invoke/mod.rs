//! Running plugins the way libcni's `pkg/invoke` does: find the binary on
//! CNI_PATH, hand it the config on stdin and the CNI_* variables in its
//! environment, read a result or an error from its stdout.
//!
//! Used by the runtime side (the pod runner walking a conflist) and by
//! plugins delegating to others (SPEC.md "Section 4: Plugin Delegation").

mod env;
mod exec;

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::args::Command;
use crate::error::{codes, CniError};
use crate::gojson::{schemas, Shape};
use crate::result::CniResult;

pub use env::{ExecEnv, RuntimeArgs};
pub use exec::{Exec, DEFAULT_TIMEOUT};

/// Go's `%s` of a `[]string`: `[/a /b]`, the shape runtimes log.
fn go_list(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    format!("[{}]", items.join(" "))
}

/// The first `<dir>/<plugin>` that is a regular file (symlinks followed),
/// searching `paths` in order (libcni `FindInPath`).
///
/// A name containing `/` is refused so that a config's `type` can never
/// point outside CNI_PATH. A missing plugin is code 50 (not available): for
/// STATUS that is the exact meaning of 50, "cannot service ADD", and for
/// ADD it tells the runtime the node is not ready rather than that the
/// config is wrong. Bad names are code 7 (the config is wrong).
pub fn find_in_path(plugin: &str, paths: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin.is_empty() {
        return Err(CniError::invalid_config("no plugin name provided"));
    }
    if plugin.contains('/') {
        return Err(CniError::invalid_config(format!(
            "invalid plugin name: {plugin}"
        )));
    }
    for dir in paths {
        let full = dir.join(plugin);
        if fs::metadata(&full).is_ok_and(|m| m.is_file()) {
            return Ok(full);
        }
    }
    Err(CniError::new(
        codes::NOT_AVAILABLE,
        format!(
            "failed to find plugin {plugin:?} in path {}",
            go_list(paths)
        ),
    ))
}

/// The `cniVersion` of a config, or "" if it has none or is not JSON.
fn conf_version(conf: &[u8]) -> String {
    serde_json::from_slice::<Value>(conf)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Finds `plugin_type` on `paths` and runs `command` with `conf` on stdin
/// (libcni `DelegateAdd`/`DelegateDel`/...). ADD returns the parsed result,
/// read at the config's version when it names none; every other command
/// succeeds with `None` and its stdout is ignored (SPEC.md: DEL, CHECK,
/// STATUS and GC print nothing on success).
pub fn delegate(
    command: Command,
    plugin_type: &str,
    conf: &[u8],
    paths: &[PathBuf],
    env: &ExecEnv,
    exec: &Exec,
) -> Result<Option<CniResult>, CniError> {
    let plugin = find_in_path(plugin_type, paths)?;
    let out = exec.run(&plugin, command, conf, env)?;
    if command != Command::Add {
        return Ok(None);
    }
    CniResult::parse(&out, &conf_version(conf))
        .map(Some)
        .map_err(|e| e.context(format!("plugin {plugin_type:?} returned an invalid result")))
}

const PLUGIN_INFO: Shape = Shape::Struct(&schemas::PLUGIN_INFO);

/// Asks a plugin which spec versions it supports (VERSION command; libcni
/// `GetVersionInfo`). A plugin predating VERSION output is not handled.
pub fn version_info(plugin: &Path, env: &ExecEnv, exec: &Exec) -> Result<Vec<String>, CniError> {
    let stdin = serde_json::json!({ "cniVersion": crate::version::CURRENT_VERSION }).to_string();
    let out = exec.run(plugin, Command::Version, stdin.as_bytes(), env)?;
    let v = crate::gojson::parse_canonical(&out, &PLUGIN_INFO).map_err(|e| {
        CniError::from(e).context(format!("VERSION output of {}", plugin.display()))
    })?;
    let list = v
        .get("supportedVersions")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            CniError::decode(format!(
                "VERSION output of {} has no supportedVersions",
                plugin.display()
            ))
        })?;
    Ok(list
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests;
