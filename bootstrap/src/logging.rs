//! The process's log output: `tracing` events written to stderr by
//! `tracing-subscriber`, with an RFC 3339 timestamp and a level, as text or
//! JSON lines (`--log-format`), filtered by `--log-level` or `RUST_LOG`.
//! The agent's plain-words lines ([`crate::agent::log`]) go through here;
//! command output (status, doctor) stays on stdout untouched.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Install the subscriber once, before any command runs. `level` is
/// `--log-level`; without it `RUST_LOG` applies, else `info`.
pub fn init(level: Option<&str>, format: LogFormat) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => EnvFilter::try_new(l)
            .map_err(|e| anyhow::anyhow!("--log-level {l:?} is not a level or filter: {e}"))?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    let res = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().flatten_event(true).try_init(),
    };
    res.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
