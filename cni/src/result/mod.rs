//! Plugin results (SPEC.md "Section 5: Result Types").
//!
//! One in-memory model, shaped like the 1.x result, read from and written to
//! every spec version. The conversions follow libcni's registered converters
//! (`pkg/types/{020,040,100}`): 0.1/0.2 ⇄ 0.3/0.4 ⇄ 1.x, so a chain of mixed
//! plugins sees exactly what Go plugins would show it.

mod legacy;
mod types;

use serde_json::Value;

use crate::error::{codes, CniError};
use crate::gojson::{self, schemas};
pub use types::{CniResult, Dns, Interface, IpConfig, Route};

const RESULT_SHAPE: gojson::Shape = gojson::Shape::PtrStruct(&schemas::RESULT);

/// The result shapes, by spec version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// 0.1.0, 0.2.0: `ip4`/`ip6` objects.
    V02,
    /// 0.3.0, 0.3.1, 0.4.0: `ips[]` with a `version` field.
    V04,
    /// 1.0.0, 1.1.0.
    V1,
}

/// Like libcni's converter registry, versions match exactly.
fn shape_of(version: &str) -> Result<Shape, CniError> {
    match version {
        "0.1.0" | "0.2.0" => Ok(Shape::V02),
        "0.3.0" | "0.3.1" | "0.4.0" => Ok(Shape::V04),
        "1.0.0" | "1.1.0" => Ok(Shape::V1),
        _ => Err(CniError::new(
            codes::INCOMPATIBLE_VERSION,
            format!("unsupported CNI result version {version:?}"),
        )),
    }
}

impl CniResult {
    /// Parses a result. Its own `cniVersion` decides the shape; when absent
    /// or empty `default_version` is used (libcni `fixupResultVersion`
    /// fills in the config's version), and failing that "0.1.0"
    /// (libcni `create`).
    /// Keys are matched as Go's decoder matches them into libcni's result
    /// types ([`crate::gojson`]): `"IPs"` is `ips`, the last of two wins.
    pub fn parse(bytes: &[u8], default_version: &str) -> Result<CniResult, CniError> {
        let v = gojson::parse_canonical(bytes, &RESULT_SHAPE)?;
        Self::from_canonical(&v, default_version)
    }

    /// [`CniResult::parse`] for an already-decoded value (e.g. `prevResult`).
    pub fn from_value(v: &Value, default_version: &str) -> Result<CniResult, CniError> {
        let v = gojson::canonical(v.clone().into(), &RESULT_SHAPE);
        Self::from_canonical(&v, default_version)
    }

    fn from_canonical(v: &Value, default_version: &str) -> Result<CniResult, CniError> {
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::decode(format!("result must be a JSON object, got {v}")))?;
        let version = match obj.get("cniVersion") {
            None | Some(Value::Null) => "",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(CniError::decode(format!(
                    "cniVersion must be a string, got {other}"
                )))
            }
        };
        let version = [version, default_version, "0.1.0"]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("0.1.0");
        let mut result = match shape_of(version)? {
            Shape::V02 => legacy::from_v02(v)?,
            // 0.3/0.4 parse with the 1.x model: `ips[].version` is ignored
            // and the fields 1.x added are simply absent.
            Shape::V04 | Shape::V1 => serde_json::from_value(v.clone())?,
        };
        result.cni_version = version.to_string();
        Ok(result)
    }

    /// The result as JSON at `version`, with `cniVersion` set to it.
    /// 0.3.x/0.4.0 add `ips[].version` and drop 1.1-only fields; 0.1/0.2 use
    /// `ip4`/`ip6` (first address of each family) and fail without an IP.
    pub fn to_value(&self, version: &str) -> Result<Value, CniError> {
        match shape_of(version)? {
            Shape::V02 => legacy::to_v02(self, version),
            Shape::V04 => Ok(legacy::to_v04(self, version)),
            Shape::V1 => {
                let mut r = self.clone();
                r.cni_version = version.to_string();
                serde_json::to_value(&r)
                    .map_err(|e| CniError::internal(format!("encoding result: {e}")))
            }
        }
    }

    /// [`CniResult::to_value`] as JSON text, for a plugin's stdout.
    pub fn to_json(&self, version: &str) -> Result<String, CniError> {
        Ok(self.to_value(version)?.to_string())
    }

    /// The interface an address points at, if the index is valid.
    pub fn interface_of(&self, ip: &IpConfig) -> Option<&Interface> {
        self.interfaces.get(ip.interface?)
    }
}

#[cfg(test)]
mod tests;
