//! The schema-driven canonicaliser: describe a Go type as a [`Shape`], and
//! [`canonical`] decodes input the way `json.Unmarshal` would fill that type,
//! writing every struct field under its canonical JSON name.
//!
//! What Go does, and so what this does (Go `encoding/json/decode.go`):
//! - a struct field takes a key that equals its name, or else one that
//!   equals it after case folding; when two fields fold alike, the exact
//!   name wins (`fields.byExactName` before `byFoldedName`);
//! - members apply in document order, so the last key naming a field wins;
//!   an object decoded into a struct (or a map) already filled by an
//!   earlier key merges into it, while arrays start afresh;
//! - `null` leaves a bool, number, string or struct value as it was, and
//!   clears a pointer, slice, map or interface;
//! - map keys are kept as written.
//!
//! Unlike Go, values of the wrong type are kept as given (not refused):
//! the reader of the canonical value checks them and names the field by
//! its canonical path. Unknown keys of a struct are kept when the struct
//! says so ([`Struct::keep_unknown`]): netboot passes such objects on to
//! delegates, which may know keys we do not.

use serde_json::{Map, Value};

use super::value::{key_matches, GoValue, Members};

/// The Go type a JSON value is decoded into.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A bool, number or string value: `null` leaves it unset.
    Scalar,
    /// `interface{}`, `json.RawMessage` or a pointer to a scalar: kept as
    /// written (duplicate keys collapse, last wins); `null` clears it.
    Any,
    /// A struct value: `null` leaves it unset; objects merge.
    Struct(&'static Struct),
    /// A pointer to a struct: like [`Shape::Struct`], but `null` clears it.
    PtrStruct(&'static Struct),
    /// A slice of the inner shape; `null` clears it.
    Slice(&'static Shape),
    /// A map with string keys, kept as written, and values of the inner
    /// shape; objects merge key by key; `null` clears it.
    Map(&'static Shape),
}

/// A Go struct: its JSON fields and the structs it embeds.
#[derive(Debug)]
pub struct Struct {
    /// Fields declared by this struct, each under its canonical name (the
    /// `json` tag, or the Go field name when untagged).
    pub fields: &'static [Field],
    /// Embedded structs whose fields are promoted; this struct's own
    /// fields hide theirs (Go's dominance rule: shallower wins).
    pub embeds: &'static [&'static Struct],
    /// Keep members that name no field (as written) instead of dropping
    /// them as Go does.
    pub keep_unknown: bool,
}

/// One struct field.
#[derive(Debug)]
pub struct Field {
    /// The canonical JSON name.
    pub name: &'static str,
    /// Its type.
    pub shape: Shape,
}

impl Field {
    /// A field of `shape` named `name`.
    pub const fn new(name: &'static str, shape: Shape) -> Field {
        Field { name, shape }
    }
}

impl Struct {
    /// The field `key` names: an exact match anywhere first, else the
    /// first case-folded match; own fields before embedded ones.
    pub fn lookup(&self, key: &str) -> Option<&'static Field> {
        self.find(&|f: &Field| f.name == key)
            .or_else(|| self.find(&|f: &Field| key_matches(key, f.name)))
    }

    fn find(&self, pred: &dyn Fn(&Field) -> bool) -> Option<&'static Field> {
        self.fields
            .iter()
            .find(|f| pred(f))
            .or_else(|| self.embeds.iter().find_map(|e| e.find(pred)))
    }
}

/// `v` decoded into `shape`, with canonical field names.
pub fn canonical(v: GoValue, shape: &Shape) -> Value {
    let mut slot = Value::Null;
    merge(&mut slot, v, shape);
    slot
}

/// Parses `bytes` (keeping duplicate keys) and canonicalises it.
pub fn parse_canonical(bytes: &[u8], shape: &Shape) -> Result<Value, serde_json::Error> {
    let v: GoValue = serde_json::from_slice(bytes)?;
    Ok(canonical(v, shape))
}

impl Shape {
    /// Go leaves a value-typed field alone when it meets `null`.
    fn null_keeps(&self) -> bool {
        matches!(self, Shape::Scalar | Shape::Struct(_))
    }
}

/// Decodes `v` into `slot`, as Go decodes into an already-set value.
fn merge(slot: &mut Value, v: GoValue, shape: &Shape) {
    match (shape, v) {
        (Shape::Struct(s) | Shape::PtrStruct(s), GoValue::Object(m)) => {
            merge_struct(object_slot(slot), m, s)
        }
        (Shape::Map(inner), GoValue::Object(m)) => {
            let out = object_slot(slot);
            for (k, v) in m.0 {
                // Go decodes each map element into a fresh value.
                out.insert(k, canonical(v, inner));
            }
        }
        (Shape::Slice(inner), GoValue::Array(items)) => {
            *slot = Value::Array(items.into_iter().map(|e| canonical(e, inner)).collect())
        }
        (_, v) => *slot = v.into_value(),
    }
}

/// `slot` as an object, replacing whatever else it held.
fn object_slot(slot: &mut Value) -> &mut Map<String, Value> {
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

fn merge_struct(out: &mut Map<String, Value>, members: Members, s: &Struct) {
    for (key, v) in members.0 {
        match s.lookup(&key) {
            Some(f) => {
                if matches!(v, GoValue::Scalar(Value::Null)) && f.shape.null_keeps() {
                    continue;
                }
                let slot = out.entry(f.name).or_insert(Value::Null);
                merge(slot, v, &f.shape);
            }
            None if s.keep_unknown => {
                out.insert(key, v.into_value());
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static INNER: Struct = Struct {
        fields: &[
            Field::new("hostPort", Shape::Scalar),
            Field::new("protocol", Shape::Scalar),
        ],
        embeds: &[],
        keep_unknown: false,
    };
    static BASE: Struct = Struct {
        fields: &[
            Field::new("name", Shape::Scalar),
            Field::new("dns", Shape::Struct(&INNER)),
        ],
        embeds: &[],
        keep_unknown: false,
    };
    static OUTER: Struct = Struct {
        fields: &[
            // Two fields that fold alike: exact spelling decides.
            Field::new("a", Shape::Scalar),
            Field::new("A", Shape::Scalar),
            Field::new("maps", Shape::Map(&Shape::Struct(&INNER))),
            Field::new("list", Shape::Slice(&Shape::Struct(&INNER))),
            Field::new("ptr", Shape::PtrStruct(&INNER)),
            Field::new("raw", Shape::Any),
            // Hides BASE's "name".
            Field::new("Name", Shape::Scalar),
        ],
        embeds: &[&BASE],
        keep_unknown: true,
    };
    const TOP: Shape = Shape::Struct(&OUTER);

    fn canon(text: &str) -> Value {
        parse_canonical(text.as_bytes(), &TOP).unwrap()
    }

    #[test]
    fn folds_go_field_names_and_mixed_case() {
        let v = canon(r#"{"list":[{"HostPort":1,"PROTOCOL":"tcp"},{"hOSTpORT":2}]}"#);
        assert_eq!(
            v["list"],
            json!([{"hostPort":1,"protocol":"tcp"},{"hostPort":2}])
        );
        // Embedded fields are promoted; unknown members of a Go struct go.
        let v = canon(r#"{"DNS":{"hostport":3,"junk":1},"NAME":"n"}"#);
        assert_eq!(v["dns"], json!({"hostPort":3}));
        assert_eq!(v["Name"], "n", "own field hides the embedded one");
    }

    #[test]
    fn last_wins_and_objects_merge() {
        let v = canon(
            r#"{"ptr":{"hostPort":1,"protocol":"udp"},"Ptr":{"HostPort":2},"PTR":{"hostport":3}}"#,
        );
        assert_eq!(v["ptr"], json!({"hostPort":3,"protocol":"udp"}));
        let v = canon(r#"{"list":[{"hostPort":1}],"LIST":[{"protocol":"x"}]}"#);
        assert_eq!(v["list"], json!([{"protocol":"x"}]), "arrays start afresh");
        let v = canon(r#"{"raw":{"K":1,"k":2,"K":3},"Raw":{"z":0}}"#);
        assert_eq!(v["raw"], json!({"z":0}), "interface{{}} is replaced");
    }

    #[test]
    fn exact_match_before_fold() {
        let v = canon(r#"{"A":1,"a":2}"#);
        assert_eq!((v["a"].clone(), v["A"].clone()), (json!(2), json!(1)));
        let v = canon(r#"{"a":1,"A":2,"a":3}"#);
        assert_eq!((v["a"].clone(), v["A"].clone()), (json!(3), json!(2)));
    }

    #[test]
    fn null_follows_the_go_type() {
        let v = canon(r#"{"dns":{"hostPort":1},"DNS":null,"ptr":{"hostPort":1},"PTR":null}"#);
        assert_eq!(v["dns"], json!({"hostPort":1}), "struct value: no effect");
        assert_eq!(v["ptr"], Value::Null, "pointer: cleared");
        let v = canon(r#"{"list":[{"hostPort":1,"HostPort":null}]}"#);
        assert_eq!(v["list"][0]["hostPort"], 1, "int: no effect");
    }

    #[test]
    fn maps_keep_keys_and_unknown_keys_are_kept_where_asked() {
        let v = canon(r#"{"maps":{"Key":{"HOSTPORT":7}},"Extra":{"X":1},"extra":2}"#);
        assert_eq!(v["maps"], json!({"Key":{"hostPort":7}}));
        assert_eq!(v["Extra"], json!({"X":1}));
        assert_eq!(v["extra"], 2);
    }

    #[test]
    fn wrong_types_are_kept_for_the_reader_to_refuse() {
        let v = canon(r#"{"list":"x","ptr":[1],"name":{"a":1}}"#);
        assert_eq!(v["list"], "x");
        assert_eq!(v["ptr"], json!([1]));
        assert_eq!(v["name"], json!({"a":1}));
        assert_eq!(canonical(GoValue::from(json!([1])), &TOP), json!([1]));
    }
}
