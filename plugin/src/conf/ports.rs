//! Port mappings and `portmap` options, refused up front when the chained
//! portmap plugin would refuse them.

use super::fields::invalid;
use super::PluginConf;
use cni::error::CniError;
use serde_json::Value;

impl PluginConf {
    /// Refuses (code 7) port mappings and `portmap` options that the
    /// chained portmap plugin would reject while parsing its config
    /// (plugins/meta/portmap `parseConfig`: ports > 0, markMasqBit 0-31,
    /// not together with externalSetMarkChain). portmap rejects such a
    /// config on DEL as well, so letting it through would leave an
    /// attachment that neither rollback nor any later DEL can remove.
    pub fn check_port_mappings(&self) -> Result<(), CniError> {
        match self.net.runtime_arg("portMappings") {
            None | Some(Value::Null) | Some(Value::Array(_)) => {}
            Some(other) => {
                return Err(invalid(
                    "runtimeConfig.portMappings",
                    format!("must be a list, got {other}"),
                ))
            }
        }
        let mappings = self.port_mappings();
        if mappings.is_empty() {
            return Ok(());
        }
        for (i, m) in mappings.iter().enumerate() {
            let field = |k: &str| format!("runtimeConfig.portMappings[{i}].{k}");
            for port in ["hostPort", "containerPort"] {
                match m.get(port).and_then(Value::as_u64) {
                    Some(p) if (1..=65535).contains(&p) => {}
                    _ => {
                        return Err(invalid(
                            &field(port),
                            format!("{} is not a port number in 1-65535", m[port]),
                        ))
                    }
                }
            }
            for key in ["protocol", "hostIP"] {
                if !matches!(
                    m.get(key),
                    None | Some(Value::Null) | Some(Value::String(_))
                ) {
                    return Err(invalid(&field(key), "must be a string"));
                }
            }
            // portmap reads a hostIP that is no IP literal as "IPv6" and
            // silently publishes nothing for an IPv4 pod (net.ParseIP
            // yields nil, portmap_iptables.go fillDnatRules); a typo must
            // not pass unnoticed.
            if let Some(ip) = m.get("hostIP").and_then(Value::as_str) {
                if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
                    return Err(invalid(
                        &field("hostIP"),
                        format!("{ip:?} is not an IP address"),
                    ));
                }
            }
        }
        if let Some(bit) = self.portmap.get("markMasqBit") {
            if bit.as_u64().is_none_or(|b| b > 31) {
                return Err(invalid(
                    "portmap.markMasqBit",
                    format!("{bit} is not in 0-31"),
                ));
            }
            if self.portmap.contains_key("externalSetMarkChain") {
                return Err(invalid(
                    "portmap.markMasqBit",
                    "cannot be combined with externalSetMarkChain",
                ));
            }
        }
        Ok(())
    }
}
