//! The log of netboot's binaries (`netboot`, `podrun`): `tracing` events
//! written to stderr by `tracing-subscriber`, with an RFC 3339 timestamp
//! and a level, as text or JSON lines (`--log-format`), filtered by
//! `--log-level` or `RUST_LOG`. Command output stays on stdout, untouched.
//!
//! ```ignore
//! #[derive(clap::Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     log: logkit::LogArgs,
//! }
//! cli.log.init("info")?; // before anything logs
//! ```

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// `--log-level` and `--log-format`, global options of every subcommand.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Least severe log level shown: error, warn, info, debug or trace (or
    /// an `RUST_LOG`-style filter). Default: `RUST_LOG`, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log line format on stderr: `text` (timestamp, level, message) or
    /// `json` (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogArgs {
    /// Installs the subscriber once, before any command runs. The filter
    /// is `--log-level`, else `RUST_LOG`, else `default` (a level such as
    /// `info`, which a binary may raise from its own flags).
    pub fn init(&self, default: &str) -> anyhow::Result<()> {
        let filter = match &self.log_level {
            Some(l) => EnvFilter::try_new(l)
                .map_err(|e| anyhow::anyhow!("--log-level {l:?} is not a level or filter: {e}"))?,
            None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        };
        let b = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_ansi(false);
        let res = match self.log_format {
            LogFormat::Text => b.try_init(),
            LogFormat::Json => b.json().flatten_event(true).try_init(),
        };
        res.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
    }
}
