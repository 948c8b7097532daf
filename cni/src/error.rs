//! The CNI error object and its well-known codes.
//!
//! SPEC.md "Error" section: a failing plugin prints
//! `{"cniVersion", "code", "msg", "details"}` and exits non-zero. libcni's
//! `RawExec` and `skel` read and write it on **stdout** (not stderr, despite
//! an older sentence in the spec), so that is what we do too.

use std::fmt;

use serde_json::{Map, Value};

/// Well-known error codes (SPEC.md "Error" table; libcni `pkg/types`).
/// Codes 0-99 are reserved by the spec; plugins may use 100 and above.
pub mod codes {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist; the runtime need not call DEL.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (CNI_COMMAND, CNI_IFNAME...).
    pub const INVALID_ENV: u32 = 4;
    /// I/O failure (e.g. reading stdin).
    pub const IO: u32 = 5;
    /// Failed to decode content (bad JSON, bad version string).
    pub const DECODE: u32 = 6;
    /// Invalid network config.
    pub const INVALID_CONFIG: u32 = 7;
    /// Invalid network namespace (libcni only).
    pub const INVALID_NETNS: u32 = 8;
    /// Transient condition; the runtime should retry later.
    pub const TRY_AGAIN: u32 = 11;
    /// STATUS: the plugin cannot service ADD requests.
    pub const NOT_AVAILABLE: u32 = 50;
    /// STATUS: not available, existing containers may have limited connectivity.
    pub const LIMITED_CONNECTIVITY: u32 = 51;
    /// Catch-all used by libcni's skel for errors that carry no code.
    pub const INTERNAL: u32 = 999;
}

/// A CNI error: what a plugin prints on failure and what a runtime reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// One of [`codes`] or a plugin-specific code >= 100.
    pub code: u32,
    /// Short human-readable message.
    pub msg: String,
    /// Longer explanation; omitted from the JSON when empty.
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg` and no details.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Replaces the details text.
    pub fn with_details(mut self, d: impl Into<String>) -> Self {
        self.details = d.into();
        self
    }

    /// Prefixes the message with where the problem was found
    /// (`"prevResult: "`, `"plugins[1]: "`), keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// Shorthand for a [`codes::DECODE`] error.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(codes::DECODE, msg)
    }

    /// Shorthand for a [`codes::INVALID_CONFIG`] error.
    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_CONFIG, msg)
    }

    /// Shorthand for a [`codes::INVALID_ENV`] error.
    pub fn invalid_env(msg: impl Into<String>) -> Self {
        Self::new(codes::INVALID_ENV, msg)
    }

    /// Shorthand for a [`codes::INTERNAL`] error.
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, msg)
    }

    /// The error object as a JSON value, with `cniVersion` first.
    pub fn to_value(&self, cni_version: &str) -> Value {
        let mut m = Map::new();
        m.insert("cniVersion".into(), Value::from(cni_version));
        m.insert("code".into(), Value::from(self.code));
        m.insert("msg".into(), Value::from(self.msg.as_str()));
        if !self.details.is_empty() {
            m.insert("details".into(), Value::from(self.details.as_str()));
        }
        Value::Object(m)
    }

    /// The error object as JSON text (SPEC.md "Error"), ready for stdout.
    pub fn to_json(&self, cni_version: &str) -> String {
        self.to_value(cni_version).to_string()
    }

    /// Reads an error object printed by a plugin. `None` unless the text is a
    /// JSON object with an unsigned integer `code`; `msg`/`details` default
    /// to empty like Go's decoder does.
    pub fn from_json(bytes: &[u8]) -> Option<CniError> {
        // Go plugins' errors are read by libcni into `types.Error`.
        let shape = crate::gojson::Shape::Struct(&crate::gojson::schemas::ERROR);
        let v = crate::gojson::parse_canonical(bytes, &shape).ok()?;
        let obj = v.as_object()?;
        let code = u32::try_from(obj.get("code")?.as_u64()?).ok()?;
        let text = |k: &str| {
            obj.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Some(CniError {
            code,
            msg: text("msg"),
            details: text("details"),
        })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.details.is_empty() {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{}; {}", self.msg, self.details)
        }
    }
}

impl std::error::Error for CniError {}

/// JSON that does not decode is a decode failure (code 6); serde's message
/// carries the line and column.
impl From<serde_json::Error> for CniError {
    fn from(e: serde_json::Error) -> Self {
        CniError::decode(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_omits_empty_details() {
        let e = CniError::new(codes::INVALID_CONFIG, "bad");
        assert_eq!(
            e.to_json("1.1.0"),
            r#"{"cniVersion":"1.1.0","code":7,"msg":"bad"}"#
        );
        let e = e.with_details("more");
        assert_eq!(
            e.to_json("0.4.0"),
            r#"{"cniVersion":"0.4.0","code":7,"msg":"bad","details":"more"}"#
        );
    }

    #[test]
    fn display_joins_details() {
        let e = CniError::new(1, "incompatible CNI versions").with_details("config is \"9.0.0\"");
        assert_eq!(
            e.to_string(),
            "incompatible CNI versions; config is \"9.0.0\""
        );
        assert_eq!(CniError::new(5, "io").to_string(), "io");
    }

    #[test]
    fn context_prefixes_message() {
        let e = CniError::decode("expected value").context("prevResult");
        assert_eq!(e.msg, "prevResult: expected value");
        assert_eq!(e.code, codes::DECODE);
    }

    #[test]
    fn serde_errors_are_decode_with_position() {
        let err: CniError = serde_json::from_str::<Value>("{\n  \"a\": }")
            .map_err(CniError::from)
            .unwrap_err();
        assert_eq!(err.code, codes::DECODE);
        assert!(err.msg.contains("line 2"), "{}", err.msg);
    }

    #[test]
    fn from_json_reads_plugin_errors() {
        let e =
            CniError::from_json(br#"{"cniVersion":"1.0.0","code":11,"msg":"busy","details":"d"}"#);
        assert_eq!(e, Some(CniError::new(11, "busy").with_details("d")));
        let e = CniError::from_json(br#"{"code":100}"#);
        assert_eq!(e, Some(CniError::new(100, "")));
        assert_eq!(CniError::from_json(b"not json"), None);
        assert_eq!(CniError::from_json(br#"{"msg":"no code"}"#), None);
        assert_eq!(CniError::from_json(br#"{"code":-1}"#), None);
        assert_eq!(CniError::from_json(br#"[1]"#), None);
    }

    #[test]
    fn roundtrip_through_json() {
        let e = CniError::new(51, "degraded").with_details("x");
        assert_eq!(CniError::from_json(e.to_json("1.1.0").as_bytes()), Some(e));
    }
}
