//! The etcd connection options every command that talks to etcd takes
//! (`--etcd`, TLS, auth, `--etcd-timeout`), with flanneld's names as
//! aliases, and their [`EtcdOpts`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{ArgAction, Args};

use super::EtcdOpts;

/// flanneld's `-etcd-prefix` default.
pub const DEFAULT_PREFIX: &str = "/coreos.com/network";
/// flanneld's `-etcd-endpoints` default.
pub const DEFAULT_ENDPOINTS: &str = "http://127.0.0.1:4001,http://127.0.0.1:2379";

/// Options of the commands that talk to etcd. Each is also read from
/// `NETBOOT_<OPTION>` (`--password` from NETBOOT_ETCD_PASSWORD), and takes
/// flanneld's name too (`--etcd-endpoints`, `--etcd-cafile`, …), so a
/// flanneld environment keeps working.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// etcd endpoints, comma-separated (http://HOST:2379 or https://...).
    /// Default as flanneld's.
    #[arg(
        long = "etcd",
        visible_alias = "etcd-endpoints",
        env = "NETBOOT_ETCD",
        value_delimiter = ',',
        // One list, the last given wins, as flanneld's string flag.
        action = ArgAction::Set,
        default_value = DEFAULT_ENDPOINTS,
        value_name = "URL[,URL...]"
    )]
    pub endpoints: Vec<String>,
    /// Key prefix (flanneld's -etcd-prefix).
    #[arg(long, visible_alias = "etcd-prefix", env = "NETBOOT_PREFIX", default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// CA certificate (PEM) to verify etcd's server certificate.
    #[arg(
        long,
        visible_alias = "etcd-cafile",
        env = "NETBOOT_CACERT",
        value_name = "FILE"
    )]
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM) for etcd client-cert authentication.
    #[arg(
        long,
        visible_alias = "etcd-certfile",
        env = "NETBOOT_CERT",
        value_name = "FILE"
    )]
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for --cert.
    #[arg(
        long,
        visible_alias = "etcd-keyfile",
        env = "NETBOOT_KEY",
        value_name = "FILE"
    )]
    pub key: Option<PathBuf>,
    /// etcd user name (auth).
    #[arg(long, visible_alias = "etcd-username", env = "NETBOOT_USER")]
    pub user: Option<String>,
    /// etcd password; prefer --password-file or NETBOOT_ETCD_PASSWORD, since
    /// command lines are visible to every local user.
    #[arg(
        long,
        visible_alias = "etcd-password",
        env = "NETBOOT_ETCD_PASSWORD",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// File whose first line is the etcd password.
    #[arg(
        long,
        env = "NETBOOT_PASSWORD_FILE",
        value_name = "FILE",
        conflicts_with = "password"
    )]
    pub password_file: Option<PathBuf>,
    /// Bound, in seconds, on connecting (all endpoints and retries) and on
    /// each request.
    #[arg(
        long,
        env = "NETBOOT_ETCD_TIMEOUT",
        default_value_t = 10,
        value_name = "SECONDS"
    )]
    pub etcd_timeout: u64,
}

impl EtcdArgs {
    pub fn opts(&self) -> Result<EtcdOpts> {
        let password = match (&self.password, &self.password_file) {
            (_, Some(f)) => {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("read --password-file {}", f.display()))?;
                Some(text.lines().next().unwrap_or("").to_string())
            }
            (p, None) => p.clone(),
        };
        if self.etcd_timeout == 0 {
            bail!("--etcd-timeout must be at least 1 second");
        }
        Ok(EtcdOpts {
            endpoints: self.endpoints.clone(),
            cacert: self.cacert.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            user: self.user.clone(),
            password,
            timeout: Duration::from_secs(self.etcd_timeout),
        })
    }

    /// `<prefix>/<rest>` with exactly one slash between.
    pub fn key(&self, rest: &str) -> String {
        format!("{}/{rest}", self.prefix.trim_end_matches('/'))
    }
}
