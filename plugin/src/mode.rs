//! Choosing how an attachment is made: the upstream flannel binary, the
//! bridge chain driven by us, or (issue: native mode) pure netlink.

use crate::conf::{Mode, PluginConf};
use crate::delegate::Delegator;
use cni::error::{codes, CniError};
use serde_json::Value;

/// The delegate and IPAM plugin types bridge mode will exec.
pub fn bridge_types(conf: &PluginConf) -> (String, String) {
    let delegate = conf
        .delegate
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("bridge");
    let ipam = conf
        .ipam
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("host-local");
    (delegate.to_string(), ipam.to_string())
}

/// Turns `auto` into a concrete mode by looking at CNI_PATH: `flannel` if
/// its binary is there, else `bridge` if the delegate and IPAM plugins are,
/// else native.
pub fn resolve(conf: &PluginConf, d: &Delegator) -> Result<Mode, CniError> {
    match conf.mode {
        Mode::Auto => {
            if d.available("flannel") {
                return Ok(Mode::Flannel);
            }
            let (delegate, ipam) = bridge_types(conf);
            if d.available(&delegate) && d.available(&ipam) {
                return Ok(Mode::Bridge);
            }
            Err(native_unavailable(conf, d))
        }
        Mode::Native => Err(native_unavailable(conf, d)),
        m => Ok(m),
    }
}

/// Native mode is the next step of netboot-cni; until it exists, say
/// exactly which binaries would have let the other modes work.
fn native_unavailable(conf: &PluginConf, d: &Delegator) -> CniError {
    let (delegate, ipam) = bridge_types(conf);
    let missing: Vec<String> = ["flannel", delegate.as_str(), ipam.as_str()]
        .iter()
        .filter(|p| !d.available(p))
        .map(|p| format!("{p:?}"))
        .collect();
    let path: Vec<String> = d
        .search_path()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    CniError::new(
        codes::NOT_AVAILABLE,
        format!(
            "mode {}: native mode is not available in this build, and CNI_PATH [{}] lacks {}; \
             install the reference plugins there or set \"mode\" to one whose binaries exist",
            conf.mode.as_str(),
            path.join(" "),
            missing.join(", ")
        ),
    )
}
