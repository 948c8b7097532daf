//! The value model: JSON objects that keep every member, and Go's rule for
//! matching a key to a struct field.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// A JSON value whose objects keep every member, in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum GoValue {
    Object(Members),
    Array(Vec<GoValue>),
    Scalar(Value),
}

/// An object's members in document order, duplicates kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Members(pub Vec<(String, GoValue)>);

impl GoValue {
    /// The plain `serde_json` value; duplicate keys collapse to the last one,
    /// as Go does when it decodes into a map.
    pub fn to_value(&self) -> Value {
        match self {
            GoValue::Scalar(v) => v.clone(),
            GoValue::Array(a) => Value::Array(a.iter().map(GoValue::to_value).collect()),
            GoValue::Object(m) => {
                let mut out = Map::new();
                for (k, v) in &m.0 {
                    out.shift_remove(k);
                    out.insert(k.clone(), v.to_value());
                }
                Value::Object(out)
            }
        }
    }
}

impl GoValue {
    /// Like [`GoValue::to_value`], consuming `self` (no copy of the text).
    pub fn into_value(self) -> Value {
        match self {
            GoValue::Scalar(v) => v,
            GoValue::Array(a) => Value::Array(a.into_iter().map(GoValue::into_value).collect()),
            GoValue::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m.0 {
                    out.shift_remove(&k);
                    out.insert(k, v.into_value());
                }
                Value::Object(out)
            }
        }
    }
}

/// An already-decoded value (its duplicate keys already collapsed).
impl From<Value> for GoValue {
    fn from(v: Value) -> GoValue {
        match v {
            Value::Array(a) => GoValue::Array(a.into_iter().map(GoValue::from).collect()),
            Value::Object(m) => {
                GoValue::Object(Members(m.into_iter().map(|(k, v)| (k, v.into())).collect()))
            }
            v => GoValue::Scalar(v),
        }
    }
}

/// Go's `foldName` for one character: ASCII upper-cased; K (U+212A) and ſ
/// (U+017F) fold to K and S like in `unicode.SimpleFold`.
fn fold_char(c: char) -> char {
    match c {
        '\u{212A}' => 'K',
        '\u{017F}' => 'S',
        c => c.to_ascii_uppercase(),
    }
}

/// True when `key` names the Go field `field` (exactly or case-folded).
pub fn key_matches(key: &str, field: &str) -> bool {
    key == field || key.chars().map(fold_char).eq(field.chars().map(fold_char))
}

impl Members {
    /// The value Go would store in field `field`: the last member whose key
    /// matches it.
    pub fn field(&self, field: &str) -> Option<&GoValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| key_matches(k, field))
            .map(|(_, v)| v)
    }

    /// Members that match none of `fields` (Go ignores them), last-wins.
    pub fn unknown(&self, fields: &[&str]) -> Vec<(String, Value)> {
        let mut out: Vec<(String, Value)> = Vec::new();
        for (k, v) in &self.0 {
            if fields.iter().any(|f| key_matches(k, f)) {
                continue;
            }
            out.retain(|(seen, _)| seen != k);
            out.push((k.clone(), v.to_value()));
        }
        out
    }
}

/// The value Go would store in struct field `field` from an object already
/// decoded into a `serde_json::Map` (whose duplicate keys are collapsed):
/// the last member whose key matches.
pub fn field_of<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.iter()
        .rev()
        .find(|(k, _)| key_matches(k, field))
        .map(|(_, v)| v)
}

/// Parse a JSON document that must be an object (like unmarshalling into a
/// Go struct: anything else is an error).
pub fn parse_object(text: &[u8]) -> Result<Members, String> {
    match serde_json::from_slice::<GoValue>(text) {
        Ok(GoValue::Object(m)) => Ok(m),
        Ok(other) => Err(format!(
            "expected a JSON object, found {}",
            kind_of(&other.to_value())
        )),
        Err(e) => Err(format!("not valid JSON: {e}")),
    }
}

/// "a string", "a number", ... for messages.
pub fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'de> Deserialize<'de> for GoValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(GoVisitor)
    }
}

struct GoVisitor;

impl<'de> Visitor<'de> for GoVisitor {
    type Value = GoValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::Null))
    }
    fn visit_none<E>(self) -> Result<GoValue, E> {
        Ok(GoValue::Scalar(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoValue, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(GoValue::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoValue, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, GoValue>()? {
            out.push((k, v));
        }
        Ok(GoValue::Object(Members(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_and_last_wins() {
        let m =
            parse_object(br#"{"network":"a","NetWork":"b","SubnetLen":1,"network":"c"}"#).unwrap();
        assert_eq!(m.field("Network"), Some(&GoValue::Scalar("c".into())));
        assert_eq!(m.field("SUBNETLEN"), Some(&GoValue::Scalar(1.into())));
        assert!(m.field("SubnetMin").is_none());
    }

    #[test]
    fn go_special_folds() {
        assert!(key_matches("bac\u{212A}end", "Backend"));
        assert!(key_matches("\u{017F}ubnetLen", "SubnetLen"));
        assert!(!key_matches("Sub_netLen", "SubnetLen"));
    }

    #[test]
    fn non_object_is_an_error() {
        assert!(parse_object(b"[1]").unwrap_err().contains("an array"));
        assert!(parse_object(b"{").unwrap_err().contains("not valid JSON"));
    }
}
