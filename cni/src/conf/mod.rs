//! Network configuration: one plugin's config (what a plugin reads on stdin)
//! and the conflist a runtime reads from `/etc/cni/net.d`.
//!
//! SPEC.md "Section 1: Network configuration format". Plugins define their
//! own keys, so every field we do not model is kept, in order, in `extra`
//! and written back unchanged.

mod list;
mod load;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::gojson::{self, schemas, Shape, Struct};
use crate::result::CniResult;
pub use crate::result::Dns;
use crate::validate::validate_network_name;

pub use list::NetConfList;
pub use load::conf_files;

/// GC input key listing the attachments to keep (SPEC.md "GC").
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";
/// Older spelling libcni also sends (containernetworking/cni#1101).
pub const LEGACY_ATTACHMENTS_KEY: &str = "cni.dev/attachments";

/// One plugin's configuration, as a plugin receives it on stdin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetConf {
    /// Spec version of this config and of the result expected back.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Network name; unique per host.
    #[serde(default)]
    pub name: String,
    /// Plugin binary name, looked up on CNI_PATH.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// Capabilities the plugin declares (`{"portMappings": true}`).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub capabilities: Map<String, Value>,
    /// IPAM plugin config, passed to the IPAM delegate as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Value>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Capability arguments injected by the runtime.
    #[serde(
        rename = "runtimeConfig",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub runtime_config: Option<Value>,
    /// The previous plugin's result in a chain (and the ADD result on DEL/CHECK).
    #[serde(
        rename = "prevResult",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prev_result: Option<Value>,
    /// Every other field, in input order.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl NetConf {
    /// Parses a plugin's stdin. Like libcni's skel (`validateConfig`), the
    /// network name must be present and valid (code 7); bad JSON is code 6.
    /// `capabilities` values must be booleans, as Go's `map[string]bool`
    /// insists.
    ///
    /// Keys are read the way a Go plugin reads them ([`crate::gojson`]):
    /// `"Name"` is `name`, `runtimeConfig.portMappings[0].HostPort` (as
    /// containerd sends it) is `hostPort`, the last of two wins; every
    /// field is then held under its canonical name.
    pub fn parse(bytes: &[u8]) -> Result<NetConf, CniError> {
        Self::parse_as(bytes, &schemas::NET_CONF)
    }

    /// [`NetConf::parse`] for a plugin whose config type is `schema` (which
    /// should embed [`schemas::NET_CONF`]): its own keys are canonicalised
    /// too and land in `extra`.
    pub fn parse_as(bytes: &[u8], schema: &'static Struct) -> Result<NetConf, CniError> {
        let v = gojson::parse_canonical(bytes, &Shape::Struct(schema))
            .map_err(|e| CniError::from(e).context("error parsing network config"))?;
        Self::from_canonical(v)
    }

    /// Like [`NetConf::parse`], from an already-decoded value.
    pub fn from_value(v: Value) -> Result<NetConf, CniError> {
        Self::from_value_as(v, &schemas::NET_CONF)
    }

    /// Like [`NetConf::parse_as`], from an already-decoded value.
    pub fn from_value_as(v: Value, schema: &'static Struct) -> Result<NetConf, CniError> {
        Self::from_canonical(gojson::canonical(v.into(), &Shape::Struct(schema)))
    }

    fn from_canonical(v: Value) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_value(v)
            .map_err(|e| CniError::from(e).context("error parsing network config"))?;
        validate_network_name(&conf.name)?;
        conf.check_capabilities()?;
        Ok(conf)
    }

    fn check_capabilities(&self) -> Result<(), CniError> {
        // Go leaves a bool unset on null, so null passes (as false).
        match self
            .capabilities
            .iter()
            .find(|(_, v)| !v.is_boolean() && !v.is_null())
        {
            Some((k, v)) => Err(CniError::decode(format!(
                "capabilities.{k}: expected a boolean, got {v}"
            ))),
            None => Ok(()),
        }
    }

    /// The config as JSON: modelled fields first, then `extra` in order.
    pub fn to_value(&self) -> Value {
        // Serializing plain strings, maps and values cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Whether the plugin declares `cap` true in `capabilities`.
    pub fn has_capability(&self, cap: &str) -> bool {
        self.capabilities
            .get(cap)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// `runtimeConfig.<key>`, if the runtime sent it.
    pub fn runtime_arg(&self, key: &str) -> Option<&Value> {
        self.runtime_config.as_ref()?.get(key)
    }

    /// Decodes `prevResult` into the result model. libcni
    /// (`version.ParsePrevResult`) reads it at the config's version when the
    /// result carries none, so `cni_version` is the default here.
    pub fn parsed_prev_result(&self) -> Result<Option<CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(v) => CniResult::from_value(v, &self.cni_version)
                .map(Some)
                .map_err(|e| e.context("prevResult")),
        }
    }
}

/// The attachments a GC call says to keep, as `(containerID, ifname)` pairs
/// (SPEC.md "GC"). Reads `cni.dev/valid-attachments`, falling back to the
/// legacy `cni.dev/attachments`. `None` when neither is present: then the
/// plugin cannot tell what is stale and must not delete anything.
pub fn valid_attachments(conf: &NetConf) -> Result<Option<Vec<(String, String)>>, CniError> {
    let (key, raw) = match conf.extra.get(VALID_ATTACHMENTS_KEY) {
        Some(v) => (VALID_ATTACHMENTS_KEY, v),
        None => match conf.extra.get(LEGACY_ATTACHMENTS_KEY) {
            Some(v) => (LEGACY_ATTACHMENTS_KEY, v),
            None => return Ok(None),
        },
    };
    let list = raw
        .as_array()
        .ok_or_else(|| CniError::decode(format!("{key}: expected a list, got {raw}")))?;
    list.iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |f: &str| {
                item.get(f)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        CniError::decode(format!("{key}[{i}]: missing string {f:?} in {item}"))
                    })
            };
            Ok((field("containerID")?, field("ifname")?))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod gojson_tests;
#[cfg(test)]
mod tests;
