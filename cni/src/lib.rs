//! The CNI contract, shared by the netboot plugin, the bootstrapper and the
//! pod runner: network configs and conflists, results of every spec version
//! and the conversions between them, the error object, the invocation
//! environment, and running plugins the way Go's libcni does.
//!
//! Section names in the docs refer to containernetworking/cni `SPEC.md`
//! (spec 1.1.0); function names in backticks refer to libcni.

pub mod args;
pub mod conf;
pub mod error;
pub mod invoke;
pub mod result;
mod validate;
pub mod version;

pub use args::{CmdArgs, Command};
pub use conf::{Dns, NetConf, NetConfList};
pub use error::{codes, CniError};
pub use result::{CniResult, Interface, IpConfig, Route};
pub use version::{require_version, Version};
