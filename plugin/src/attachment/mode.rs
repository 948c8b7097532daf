//! Choosing how an attachment is made: the upstream flannel binary, the
//! bridge chain driven by us, or (issue: native mode) pure netlink.

use crate::conf::{Mode, PluginConf};
use crate::delegate::Delegator;
use crate::flannel::bridge_types;
use cni::error::CniError;

/// Turns `auto` into a concrete mode by looking at CNI_PATH: `flannel` if
/// its binary is there, else `bridge` if the delegate and IPAM plugins (and
/// `portmap` / `bandwidth`, when the runtime asked for port mappings /
/// shaping) are, else native, which needs no other binary.
pub fn resolve(conf: &PluginConf, d: &Delegator) -> Result<Mode, CniError> {
    match conf.mode {
        Mode::Auto => {
            if d.available("flannel") {
                return Ok(Mode::Flannel);
            }
            let (delegate, ipam) = bridge_types(conf);
            let ports_ok = conf.port_mappings().is_empty() || d.available("portmap");
            let shaping_ok = !shaping(conf) || d.available("bandwidth");
            if d.available(&delegate) && d.available(&ipam) && ports_ok && shaping_ok {
                return Ok(Mode::Bridge);
            }
            Ok(Mode::Native)
        }
        m => Ok(m),
    }
}

/// The binaries a mode execs, for STATUS and error messages.
pub fn required_binaries(conf: &PluginConf, mode: Mode) -> Vec<String> {
    let (delegate, ipam) = bridge_types(conf);
    let mut out = match mode {
        Mode::Flannel => vec!["flannel".to_string()],
        Mode::Bridge => vec![delegate, ipam],
        Mode::Auto | Mode::Native => Vec::new(),
    };
    if mode != Mode::Native && !conf.port_mappings().is_empty() {
        out.push("portmap".into());
    }
    if mode != Mode::Native && shaping(conf) {
        out.push("bandwidth".into());
    }
    out
}

/// Whether the runtime asked for (valid) bandwidth shaping.
fn shaping(conf: &PluginConf) -> bool {
    matches!(conf.bandwidth(), Ok(Some(_)))
}
