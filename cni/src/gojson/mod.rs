//! Reading JSON the way Go's `encoding/json` fills a struct: the one home
//! of that rule for every crate (flannel's etcd config in the bootstrapper,
//! and everything a runtime or a delegate hands the plugin).
//!
//! `json.Unmarshal` into a struct matches an object key to a field name
//! exactly or, failing that, case-insensitively (Go's `foldName`: ASCII
//! case, plus the two non-ASCII letters that fold to ASCII ones, KELVIN
//! SIGN → `k` and LONG S → `s`). Keys are applied in document order, so
//! when several keys name the same field (exactly or by case, e.g.
//! `"network"` then `"Network"`), **the last one wins**; unknown keys are
//! ignored. Go *maps* keep their keys as written. `serde_json::Map` keeps
//! only one of two equal keys (in the first one's position), so objects are
//! parsed into [`Members`], which keeps every member in order, duplicates
//! included.
//!
//! Real clients rely on this: containerd's CRI (go-cni) sends capability
//! args from Go structs without JSON tags (`{"HostPort":80,...}`), which Go
//! plugins accept. [`canonical`] turns such input into the spelling the
//! plugin's Rust code reads, driven by a [`Shape`] that mirrors the Go type
//! ([`schemas`] holds the upstream ones). No crate on crates.io implements
//! Go's matching rule, hence this module.

pub mod schemas;
mod shape;
mod value;

pub use shape::{canonical, parse_canonical, Field, Shape, Struct};
pub use value::{field_of, key_matches, kind_of, parse_object, GoValue, Members};
