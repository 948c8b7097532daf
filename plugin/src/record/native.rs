//! What native mode did for an attachment (the `native` field of a
//! record): the serde shape of records on disk, read back by DEL, CHECK
//! and GC whatever mode the node is in now.

use netkit::firewall;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::PathBuf;

/// What native ADD did, as recorded for DEL / CHECK / GC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NativeState {
    /// The rendered bridge + host-local config the attachment was made from.
    pub conf: Value,
    pub bridge: String,
    pub host_veth: String,
    pub ipam_dir: PathBuf,
    #[serde(default)]
    pub port_mappings: Vec<Value>,
    #[serde(default)]
    pub snat: bool,
    /// DEL without a record: the port mappings are unknown, so any rules
    /// tagged with this container are removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sweep_ports: bool,
    /// The nftables layout the port mappings were made in: `maps` for
    /// every attachment this version makes; absent (`portmap`) in records
    /// of earlier versions, whose DEL must still find their rules.
    #[serde(default)]
    pub port_layout: PortLayout,
    /// Portmap layout only: the rules ADD created, by handle, so that DEL
    /// deletes exactly them instead of listing the table. Empty when
    /// unknown: DEL then lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_rules: Vec<PortRule>,
    /// The shaping ADD applies (`runtimeConfig.bandwidth`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<crate::bandwidth::Bandwidth>,
    /// The ifb device egress shaping uses: recorded before it is created,
    /// so DEL and GC remove it even after a crash or with the netns gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifb: Option<String>,
}

/// Which nftables layout an attachment's port mappings were made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortLayout {
    /// Upstream portmap's rules in `ip`/`ip6 cni_hostport`: records of
    /// netboot versions before the maps (which have no `portLayout`).
    #[default]
    Portmap,
    /// Elements of the maps in `inet netboot`.
    Maps,
}

/// One nftables rule of a port mapping in portmap's layout
/// (`firewall::RuleRef`), as older records hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRule {
    /// `ip` or `ip6` (the `cni_hostport` table of that family).
    pub family: String,
    pub chain: String,
    pub handle: u64,
}

impl PortRule {
    pub fn to_ref(&self) -> Option<firewall::RuleRef> {
        let v6 = match self.family.as_str() {
            "ip" => false,
            "ip6" => true,
            _ => return None,
        };
        Some(firewall::RuleRef {
            v6,
            chain: self.chain.clone(),
            handle: self.handle,
        })
    }
}
