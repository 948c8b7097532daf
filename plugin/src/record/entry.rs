//! The record of one attachment and the calls it replays.

use super::native::NativeState;
use crate::conf::Mode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::net::IpAddr;

/// A plugin call netboot-cni made, replayable on DEL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    #[serde(rename = "type")]
    pub type_: String,
    pub conf: Value,
}

/// netboot's record of one attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
    pub network: String,
    pub mode: Mode,
    /// The main delegate (bridge, or the flannel binary).
    pub delegate: Option<Call>,
    /// The chained portmap call, when port mappings were requested.
    pub portmap: Option<Call>,
    /// The chained reference `bandwidth` call (bridge and flannel modes),
    /// when the runtime asked for shaping. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Call>,
    /// The final ADD result, once ADD succeeded.
    pub result: Option<Value>,
    /// What native mode did (native mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native: Option<NativeState>,
    /// The kernel boot id of the ADD (`/proc/sys/kernel/random/boot_id`):
    /// an attachment of an earlier boot cannot exist any more (see
    /// `ghost`). Absent in records of older netboot versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// Its ADD left the sibling mark when the container had another
    /// attachment (see `record::siblings`), so DEL may trust the mark's
    /// absence. Absent (false) in records of older versions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sibling_mark: bool,
}

impl Record {
    /// The record of an attachment before its ADD planned anything: no
    /// calls, no result, no native state, no boot id, no sibling mark.
    pub fn new(container_id: &str, ifname: &str, network: &str, mode: Mode) -> Record {
        Record {
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            network: network.to_string(),
            mode,
            delegate: None,
            portmap: None,
            bandwidth: None,
            result: None,
            native: None,
            boot_id: None,
            sibling_mark: false,
        }
    }

    /// The IPs the recorded ADD result names (none before ADD finished).
    pub fn result_ips(&self) -> Vec<IpAddr> {
        result_ips(self.result.as_ref())
    }
}

/// The IPs of a result in any version: `ips[].address` (0.3.0 and
/// later), or `ip4.ip` / `ip6.ip` (0.1.0, 0.2.0).
pub fn result_ips(result: Option<&Value>) -> Vec<IpAddr> {
    let Some(r) = result else {
        return Vec::new();
    };
    let addresses = r
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address"))
        .chain(["ip4", "ip6"].iter().filter_map(|k| r.get(*k)?.get("ip")));
    addresses
        .filter_map(Value::as_str)
        .filter_map(|a| a.parse::<ipnet::IpNet>().ok())
        .map(|n| n.addr())
        .collect()
}
