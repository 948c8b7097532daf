//! Reading flannel's `subnet.env`, the node agent's hand-off to the plugin.
//!
//! The file is written by flanneld (or `netboot agent`) once the node has a
//! subnet lease and its overlay device. The rules below follow the upstream
//! flannel CNI plugin exactly (`loadFlannelSubnetEnv` in flannel-io/cni-plugin
//! `flannel.go`), so a file that works there works here and vice versa:
//! - `FLANNEL_NETWORK` / `FLANNEL_IPV6_NETWORK` are comma lists, deduplicated;
//! - `FLANNEL_SUBNET` / `FLANNEL_IPV6_SUBNET` are CIDRs whose host bits are
//!   dropped (`10.2.1.1/24` means the range `10.2.1.0/24`);
//! - `FLANNEL_IPMASQ` is true only for the exact string `true`;
//! - unknown keys are ignored; a missing required key is an error that lists
//!   every missing key.

use ipnet::IpNet;
use std::fmt;
use std::path::{Path, PathBuf};

/// The parsed contents of a subnet.env file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetEnv {
    pub networks: Vec<IpNet>,
    /// The node's IPv4 pod range, host bits cleared.
    pub subnet: Option<IpNet>,
    /// The raw FLANNEL_SUBNET value (first usable IP / len), kept for messages.
    pub subnet_raw: Option<String>,
    pub ipv6_networks: Vec<IpNet>,
    pub ipv6_subnet: Option<IpNet>,
    pub mtu: u32,
    pub ipmasq: bool,
}

/// Why a subnet.env could not be used.
#[derive(Debug)]
pub enum SubnetEnvError {
    /// The file could not be read (most often: it does not exist yet because
    /// the node agent has not acquired a lease).
    Read { path: PathBuf, err: std::io::Error },
    /// A line could not be parsed.
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// Required keys are absent.
    Missing {
        path: PathBuf,
        keys: Vec<&'static str>,
    },
}

impl SubnetEnvError {
    /// True when the file simply does not exist (the agent is not up yet).
    pub fn is_absent(&self) -> bool {
        matches!(self, SubnetEnvError::Read { err, .. } if err.kind() == std::io::ErrorKind::NotFound)
    }
}

impl fmt::Display for SubnetEnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubnetEnvError::Read { path, err } => {
                write!(f, "cannot read {}: {err}", path.display())
            }
            SubnetEnvError::Parse { path, line, msg } => {
                write!(f, "{} line {line}: {msg}", path.display())
            }
            SubnetEnvError::Missing { path, keys } => {
                write!(f, "{} is missing {}", path.display(), keys.join(", "))
            }
        }
    }
}

impl std::error::Error for SubnetEnvError {}

impl SubnetEnv {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<SubnetEnv, SubnetEnvError> {
        let text = std::fs::read_to_string(path).map_err(|err| SubnetEnvError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        SubnetEnv::parse(&text, path)
    }

    /// Parses subnet.env text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<SubnetEnv, SubnetEnvError> {
        let mut raw = RawEnv::default();
        for (i, line) in text.lines().enumerate() {
            raw.apply(line).map_err(|msg| SubnetEnvError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                msg,
            })?;
        }
        raw.finish(path)
    }
}

#[derive(Default)]
struct RawEnv {
    networks: Vec<IpNet>,
    subnet: Option<(IpNet, String)>,
    ipv6_networks: Vec<IpNet>,
    ipv6_subnet: Option<IpNet>,
    mtu: Option<u32>,
    ipmasq: Option<bool>,
}

impl RawEnv {
    fn apply(&mut self, line: &str) -> Result<(), String> {
        let (key, value) = match line.split_once('=') {
            Some(kv) => kv,
            None => return Ok(()),
        };
        match key {
            "FLANNEL_NETWORK" => self.networks = parse_cidr_list(key, value)?,
            "FLANNEL_SUBNET" => self.subnet = Some((parse_cidr(key, value)?, value.to_string())),
            "FLANNEL_IPV6_NETWORK" => self.ipv6_networks = parse_cidr_list(key, value)?,
            "FLANNEL_IPV6_SUBNET" => self.ipv6_subnet = Some(parse_cidr(key, value)?),
            "FLANNEL_MTU" => {
                let mtu = value
                    .parse::<u32>()
                    .map_err(|e| format!("FLANNEL_MTU={value:?} is not a number: {e}"))?;
                self.mtu = Some(mtu);
            }
            "FLANNEL_IPMASQ" => self.ipmasq = Some(value == "true"),
            _ => {}
        }
        Ok(())
    }

    fn finish(self, path: &Path) -> Result<SubnetEnv, SubnetEnvError> {
        let mut missing = Vec::new();
        if self.networks.is_empty() && self.ipv6_networks.is_empty() {
            missing.extend(["FLANNEL_NETWORK", "FLANNEL_IPV6_NETWORK"]);
        }
        if self.subnet.is_none() && self.ipv6_subnet.is_none() {
            missing.extend(["FLANNEL_SUBNET", "FLANNEL_IPV6_SUBNET"]);
        }
        if self.mtu.is_none() {
            missing.push("FLANNEL_MTU");
        }
        if self.ipmasq.is_none() {
            missing.push("FLANNEL_IPMASQ");
        }
        match (self.mtu, self.ipmasq) {
            (Some(mtu), Some(ipmasq)) if missing.is_empty() => Ok(SubnetEnv {
                networks: self.networks,
                subnet_raw: self.subnet.as_ref().map(|s| s.1.clone()),
                subnet: self.subnet.map(|s| s.0),
                ipv6_networks: self.ipv6_networks,
                ipv6_subnet: self.ipv6_subnet,
                mtu,
                ipmasq,
            }),
            _ => Err(SubnetEnvError::Missing {
                path: path.to_path_buf(),
                keys: missing,
            }),
        }
    }
}

/// Parses a CIDR and clears its host bits, as Go's `net.ParseCIDR` network does.
fn parse_cidr(key: &str, value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| format!("{key}={value:?} is not a CIDR (want e.g. 10.2.1.1/24)"))
}

fn parse_cidr_list(key: &str, value: &str) -> Result<Vec<IpNet>, String> {
    let mut out: Vec<IpNet> = Vec::new();
    for part in value.split(',') {
        let net = parse_cidr(key, part)?;
        if !out.contains(&net) {
            out.push(net);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SubnetEnv, SubnetEnvError> {
        SubnetEnv::parse(text, Path::new("/run/flannel/subnet.env"))
    }

    #[test]
    fn parses_a_flanneld_file() {
        let env = parse(
            "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n",
        )
        .unwrap();
        assert_eq!(env.networks, vec!["10.2.0.0/16".parse::<IpNet>().unwrap()]);
        assert_eq!(env.subnet, Some("10.2.3.0/24".parse().unwrap()));
        assert_eq!(env.subnet_raw.as_deref(), Some("10.2.3.1/24"));
        assert_eq!(env.mtu, 1450);
        assert!(env.ipmasq);
    }

    #[test]
    fn dual_stack_and_dedup() {
        let env = parse(
            "FLANNEL_NETWORK=10.2.0.0/16,10.2.0.0/16,10.9.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\n\
             FLANNEL_IPV6_NETWORK=fd00::/56\nFLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64\n\
             FLANNEL_MTU=1400\nFLANNEL_IPMASQ=false\nFLANNEL_OTHER=x\n",
        )
        .unwrap();
        assert_eq!(env.networks.len(), 2);
        assert_eq!(env.ipv6_subnet, Some("fd00:0:0:3::/64".parse().unwrap()));
        assert!(!env.ipmasq);
    }

    #[test]
    fn only_exact_true_enables_ipmasq() {
        let env = parse("FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=TRUE\n").unwrap();
        assert!(!env.ipmasq);
    }

    #[test]
    fn lists_every_missing_key() {
        let err = parse("FLANNEL_NETWORK=10.2.0.0/16\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/run/flannel/subnet.env is missing FLANNEL_SUBNET, FLANNEL_IPV6_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ"
        );
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=banana\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("FLANNEL_SUBNET=\"banana\""), "{msg}");
        let err = parse("FLANNEL_MTU=-1\n").unwrap_err();
        assert!(err.to_string().contains("FLANNEL_MTU"));
    }

    #[test]
    fn absent_file_is_recognised() {
        let err = SubnetEnv::load(Path::new("/nonexistent/netboot/subnet.env")).unwrap_err();
        assert!(err.is_absent());
    }
}
