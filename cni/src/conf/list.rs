//! The network configuration list (SPEC.md "Configuration format"): what a
//! runtime reads from disk and turns into one config per plugin.

use serde_json::{Map, Value};

use crate::error::CniError;
use crate::gojson::field_of;
use crate::validate::validate_network_name;
use crate::version::{pick_highest, Version};

/// A conflist. Plugin entries stay raw JSON: their keys belong to each
/// plugin. libcni reads the list itself as a Go map (exact keys) and each
/// entry's `type` and `capabilities` through `types.NetConf` (Go's
/// case-insensitive match, [`crate::gojson`]), and so does this.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetConfList {
    /// `cniVersion` as written.
    pub cni_version: String,
    /// `cniVersions` as written, if present (spec 1.1).
    pub cni_versions: Option<Vec<String>>,
    /// Network name.
    pub name: String,
    /// `disableCheck`: the runtime must not call CHECK.
    pub disable_check: bool,
    /// `disableGC`: the runtime must not call GC.
    pub disable_gc: bool,
    /// Plugin configs, in chain order; each an object with a `type`.
    pub plugins: Vec<Value>,
    /// Every other top-level field, in order.
    pub extra: Map<String, Value>,
}

fn bad(msg: impl std::fmt::Display) -> CniError {
    CniError::invalid_config(format!("error parsing configuration list: {msg}"))
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, CniError> {
    match obj.remove(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(bad(format!("{key} must be a string, got {other}"))),
    }
}

/// libcni reads `disableCheck`/`disableGC` as a JSON bool or the strings
/// "true"/"false" in any case.
fn take_bool(obj: &mut Map<String, Value>, key: &str) -> Result<bool, CniError> {
    match obj.remove(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(other) => Err(bad(format!("invalid value {other} for {key}"))),
    }
}

/// `cniVersions` must be a list of version strings; like libcni, an entry
/// that does not parse is an error even though newer ones are just skipped.
fn take_versions(obj: &mut Map<String, Value>) -> Result<Option<Vec<String>>, CniError> {
    let Some(raw) = obj.remove("cniVersions") else {
        return Ok(None);
    };
    let Value::Array(items) = raw else {
        return Err(bad(format!("cniVersions must be a list, got {raw}")));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::String(s) = item else {
            return Err(bad(format!(
                "cniVersions[{i}] must be a string, got {item}"
            )));
        };
        Version::parse(&s).map_err(|e| bad(format!("cniVersions[{i}]: {}", e.msg)))?;
        out.push(s);
    }
    Ok(Some(out))
}

fn check_plugin(i: usize, p: &Value) -> Result<(), CniError> {
    let Some(obj) = p.as_object() else {
        return Err(bad(format!("plugins[{i}] must be an object, got {p}")));
    };
    match field_of(obj, "type") {
        Some(Value::String(t)) if !t.is_empty() => Ok(()),
        _ => Err(bad(format!("plugins[{i}]: missing 'type'"))),
    }
}

impl NetConfList {
    /// Parses and validates a conflist: `name` present and a valid network
    /// name, `plugins` a non-empty list of objects each with a `type`
    /// (libcni `ConfListFromBytes`). Bad JSON is code 6, the rest code 7.
    pub fn parse(bytes: &[u8]) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::from(e).context("error parsing configuration list"))?;
        Self::from_value(v)
    }

    /// Like [`NetConfList::parse`], from an already-decoded value.
    pub fn from_value(v: Value) -> Result<Self, CniError> {
        let Value::Object(mut obj) = v else {
            return Err(bad("expected a JSON object"));
        };
        let name = take_string(&mut obj, "name")?.ok_or_else(|| bad("no name"))?;
        validate_network_name(&name)?;
        let cni_version = take_string(&mut obj, "cniVersion")?.unwrap_or_default();
        let cni_versions = take_versions(&mut obj)?;
        let disable_check = take_bool(&mut obj, "disableCheck")?;
        let disable_gc = take_bool(&mut obj, "disableGC")?;
        let plugins = match obj.remove("plugins") {
            None => return Err(bad("no 'plugins' key")),
            Some(Value::Array(p)) if p.is_empty() => return Err(bad("no plugins in list")),
            Some(Value::Array(p)) => p,
            Some(other) => return Err(bad(format!("plugins must be a list, got {other}"))),
        };
        for (i, p) in plugins.iter().enumerate() {
            check_plugin(i, p)?;
        }
        Ok(NetConfList {
            cni_version,
            cni_versions,
            name,
            disable_check,
            disable_gc,
            plugins,
            extra: obj,
        })
    }

    /// Wraps a single-plugin `.conf` into a list, as libcni
    /// `ConfListFromConf` does: the list takes the conf's name and version.
    pub fn from_single_conf(conf: Value) -> Result<Self, CniError> {
        let text = |k: &str| {
            conf.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut obj = Map::new();
        obj.insert("cniVersion".into(), Value::String(text("cniVersion")));
        obj.insert("name".into(), Value::String(text("name")));
        obj.insert("plugins".into(), Value::Array(vec![conf]));
        Self::from_value(Value::Object(obj))
    }

    /// The version the runtime uses for every plugin: the highest supported
    /// entry among `cniVersions` and `cniVersion` (libcni includes both), or
    /// plain `cniVersion` when `cniVersions` is absent or yields nothing.
    pub fn effective_version(&self) -> String {
        let Some(list) = &self.cni_versions else {
            return self.cni_version.clone();
        };
        let mut all = list.clone();
        if !self.cni_version.is_empty() {
            all.push(self.cni_version.clone());
        }
        pick_highest(&all).unwrap_or_else(|| self.cni_version.clone())
    }

    /// The `type` of plugin `index`.
    pub fn plugin_type(&self, index: usize) -> Option<&str> {
        field_of(self.plugins.get(index)?.as_object()?, "type")?.as_str()
    }

    /// The stdin for plugin `index` (libcni `buildOneConfig`): the entry
    /// with the list's `name` and effective `cniVersion` injected, the
    /// previous result as `prevResult` when given, and `runtimeConfig`
    /// holding only the `runtime` capability args the plugin declares true in
    /// its `capabilities` (SPEC.md "Deriving runtimeConfig"). Like libcni,
    /// `runtimeConfig` is only replaced when at least one capability matched.
    pub fn plugin_config(
        &self,
        index: usize,
        prev_result: Option<&Value>,
        runtime: &Map<String, Value>,
    ) -> Result<Value, CniError> {
        let Some(Value::Object(orig)) = self.plugins.get(index) else {
            return Err(CniError::invalid_config(format!(
                "no plugin at index {index} in network {:?} ({} plugins)",
                self.name,
                self.plugins.len()
            )));
        };
        let mut conf = orig.clone();
        conf.insert("name".into(), Value::String(self.name.clone()));
        conf.insert("cniVersion".into(), Value::String(self.effective_version()));
        if let Some(prev) = prev_result {
            conf.insert("prevResult".into(), prev.clone());
        }
        let rc = runtime_config_for(field_of(orig, "capabilities"), runtime);
        if !rc.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(rc));
        }
        Ok(Value::Object(conf))
    }

    /// Back to JSON, in the conventional key order, for writing to net.d.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("cniVersion".into(), Value::String(self.cni_version.clone()));
        if let Some(vs) = &self.cni_versions {
            m.insert("cniVersions".into(), Value::from(vs.clone()));
        }
        m.insert("name".into(), Value::String(self.name.clone()));
        if self.disable_check {
            m.insert("disableCheck".into(), Value::Bool(true));
        }
        if self.disable_gc {
            m.insert("disableGC".into(), Value::Bool(true));
        }
        m.insert("plugins".into(), Value::Array(self.plugins.clone()));
        for (k, v) in &self.extra {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// The subset of `runtime` whose keys the plugin declares `true`.
fn runtime_config_for(caps: Option<&Value>, runtime: &Map<String, Value>) -> Map<String, Value> {
    let Some(Value::Object(caps)) = caps else {
        return Map::new();
    };
    caps.iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(k, _)| runtime.get(k).map(|v| (k.clone(), v.clone())))
        .collect()
}
