//! Walking a manifest as a JSON value while tracking the field path, so
//! every field is either taken (mapped) or reported as unsupported.

use serde_json::{Map, Value};

use super::quantity::Quantity;
use crate::spec::SpecError;

/// Collects refusals: errors, or warnings with `ignore_unsupported`.
#[derive(Debug, Default)]
pub struct Report {
    pub ignore_unsupported: bool,
    pub warnings: Vec<SpecError>,
}

impl Report {
    /// A field podrun cannot honour: an error, or a warning when told to
    /// ignore unsupported fields.
    pub fn unsupported(&mut self, path: &str, what: &str) -> Result<(), SpecError> {
        let e = SpecError::new(path, format!("{what} is not supported by podrun"));
        if self.ignore_unsupported {
            self.warnings.push(e);
            Ok(())
        } else {
            Err(e)
        }
    }
}

/// A JSON object being consumed field by field.
pub struct Obj<'a> {
    pub path: String,
    map: &'a Map<String, Value>,
    taken: Vec<&'a str>,
}

/// `parent.key`, or `key` at the root.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl<'a> Obj<'a> {
    /// `v` as an object, or an error at `path`.
    pub fn new(path: impl Into<String>, v: &'a Value) -> Result<Obj<'a>, SpecError> {
        let path = path.into();
        match v {
            Value::Object(map) => Ok(Obj {
                path,
                map,
                taken: Vec::new(),
            }),
            other => Err(SpecError::new(
                path,
                format!("expected an object, found {}", kind(other)),
            )),
        }
    }

    /// True when the object has no fields.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The path of a field of this object.
    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Takes a field; `null` counts as absent, as in Kubernetes.
    pub fn take(&mut self, key: &'a str) -> Option<&'a Value> {
        self.taken.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// Takes an object field.
    pub fn obj(&mut self, key: &'a str) -> Result<Option<Obj<'a>>, SpecError> {
        let path = self.at(key);
        self.take(key).map(|v| Obj::new(path, v)).transpose()
    }

    /// Takes a list field, each element with its path.
    pub fn list(&mut self, key: &'a str) -> Result<Vec<(String, &'a Value)>, SpecError> {
        let path = self.at(key);
        match self.take(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{path}[{i}]"), v))
                .collect()),
            Some(other) => Err(SpecError::new(
                path,
                format!("expected a list, found {}", kind(other)),
            )),
        }
    }

    /// Takes a string field.
    pub fn str(&mut self, key: &'a str) -> Result<Option<String>, SpecError> {
        let path = self.at(key);
        self.take(key).map(|v| string(&path, v)).transpose()
    }

    /// Takes a required string field.
    pub fn req_str(&mut self, key: &'a str) -> Result<String, SpecError> {
        let path = self.at(key);
        self.str(key)?
            .ok_or_else(|| SpecError::new(path, "is required"))
    }

    /// Takes a list of strings.
    pub fn strings(&mut self, key: &'a str) -> Result<Option<Vec<String>>, SpecError> {
        if self.map.get(key).is_none_or(Value::is_null) {
            self.taken.push(key);
            return Ok(None);
        }
        let items = self.list(key)?;
        items
            .iter()
            .map(|(p, v)| string(p, v))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Takes a boolean field.
    pub fn bool(&mut self, key: &'a str) -> Result<Option<bool>, SpecError> {
        let path = self.at(key);
        match self.take(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(SpecError::new(
                path,
                format!("expected a boolean, found {}", kind(other)),
            )),
        }
    }

    /// Takes an integer field within `T`'s range.
    pub fn int<T: TryFrom<i64>>(&mut self, key: &'a str) -> Result<Option<T>, SpecError> {
        let path = self.at(key);
        match self.take(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .and_then(|n| T::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| SpecError::new(path, format!("{v} is not an integer in range"))),
        }
    }

    /// Takes a map of strings (labels, annotations).
    pub fn string_map(&mut self, key: &'a str) -> Result<Vec<(String, String)>, SpecError> {
        let Some(mut m) = self.obj(key)? else {
            return Ok(Vec::new());
        };
        let keys: Vec<&'a String> = m.map.keys().collect();
        let mut out = Vec::new();
        for k in keys {
            let path = m.at(k);
            let v = m.take(k).map(|v| string(&path, v)).transpose()?;
            out.push((k.clone(), v.unwrap_or_default()));
        }
        Ok(out)
    }

    /// Reports every field not taken as unsupported, in document order.
    pub fn finish(self, report: &mut Report) -> Result<(), SpecError> {
        for (key, v) in self.map {
            // `null` is absent, as in Kubernetes (`creationTimestamp: null`
            // in `kubectl create --dry-run -o yaml` output).
            if !v.is_null() && !self.taken.contains(&key.as_str()) {
                report.unsupported(&self.at(key), &format!("field {key:?}"))?;
            }
        }
        Ok(())
    }
}

/// A string, or an error naming what was found instead.
pub fn string(path: &str, v: &Value) -> Result<String, SpecError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(SpecError::new(
            path,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

/// A quantity written as a string or a bare number (`cpu: 0.5`).
pub fn quantity_text(path: &str, v: &Value) -> Result<String, SpecError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(SpecError::new(
            path,
            format!("expected a quantity, found {}", kind(other)),
        )),
    }
}

/// A quantity field, parsed, with its path.
pub fn quantity(o: &mut Obj, key: &'static str) -> Result<Option<(String, Quantity)>, SpecError> {
    let p = o.at(key);
    let Some(v) = o.take(key) else {
        return Ok(None);
    };
    let text = quantity_text(&p, v)?;
    let q = Quantity::parse(&text).map_err(|e| SpecError::new(p.clone(), e))?;
    Ok(Some((p, q)))
}

/// A resource amount: not negative, in range.
pub fn nonneg(path: &str, q: &Quantity, v: Result<i64, String>) -> Result<i64, SpecError> {
    if q.is_negative() {
        return Err(SpecError::new(path, format!("{q} is negative")));
    }
    v.map_err(|e| SpecError::new(path, e))
}
