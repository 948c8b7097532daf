//! The CNI contract, shared by the netboot plugin, the bootstrapper and the
//! pod runner: network configs and conflists, results of every spec version
//! and the conversions between them, the error object, the invocation
//! environment, and running plugins the way Go's libcni does.
//!
//! Everything a runtime or a plugin hands over is read with Go's
//! `encoding/json` key rule ([`gojson`]), as libcni and the Go plugins read
//! it, and held under canonical key names.
//!
//! Section names in the docs refer to containernetworking/cni `SPEC.md`
//! (spec 1.1.0); function names in backticks refer to libcni.
//!
//! ```
//! use cni::{CniResult, NetConfList};
//!
//! // A runtime builds each plugin's stdin from the conflist...
//! let list = NetConfList::parse(br#"{"cniVersion":"1.0.0","name":"cbr0",
//!     "plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#)?;
//! let mut runtime = serde_json::Map::new();
//! runtime.insert("portMappings".into(), serde_json::json!([{"hostPort": 80, "containerPort": 8080}]));
//! let conf = list.plugin_config(1, None, &runtime)?;
//! assert_eq!(conf["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
//!
//! // ...and reads results of any version into one model.
//! let r = CniResult::parse(br#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.244.0.5/24"}]}"#, "")?;
//! assert_eq!(r.to_json("1.0.0")?, r#"{"cniVersion":"1.0.0","ips":[{"address":"10.244.0.5/24"}]}"#);
//! # Ok::<(), cni::CniError>(())
//! ```

pub mod args;
pub mod conf;
pub mod error;
pub mod gojson;
pub mod invoke;
pub mod result;
mod validate;
pub mod version;

pub use args::{CmdArgs, Command};
pub use conf::{Dns, NetConf, NetConfList};
pub use error::{codes, CniError};
pub use result::{CniResult, Interface, IpConfig, Route};
pub use version::{require_version, Version};
