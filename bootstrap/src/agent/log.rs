//! The agent's voice in the log: plain-words lines, warnings told apart,
//! and the default level for flanneld's `-v N`.

/// Who is speaking in [`log`]: `netboot agent` unless set otherwise.
pub(super) static WHO: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// One plain-words line in the log (see the `logkit` crate): lines that
/// start with "warning" and failures ("cannot …", "lost etcd …", a broken
/// watch) at warn level, the rest at info.
pub fn log(msg: &str) {
    let who = WHO.get().copied().unwrap_or("netboot agent");
    if is_warning(msg) {
        tracing::warn!("{who}: {msg}");
    } else {
        tracing::info!("{who}: {msg}");
    }
}

/// The default log filter for flanneld's `-v N`: 0 → info, 1 and 2 →
/// netboot's own debug lines, 3 and more → its trace lines (libraries stay
/// at info: `RUST_LOG` opens them). `--log-level` and `RUST_LOG` override it.
pub fn verbosity_level(v: i32) -> &'static str {
    match v {
        ..=0 => "info",
        1..=2 => "info,netboot=debug",
        _ => "info,netboot=trace",
    }
}

/// A line for `-v 1` / `--log-level debug`: routine detail (each resync,
/// each list).
pub fn debug(msg: &str) {
    let who = WHO.get().copied().unwrap_or("netboot agent");
    tracing::debug!("{who}: {msg}");
}

fn is_warning(msg: &str) -> bool {
    [
        "warning",
        "cannot ",
        "lost etcd",
        "the lease watch broke",
        "our lease ",
    ]
    .iter()
    .any(|p| msg.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::verbosity_level;

    #[test]
    fn verbosity_raises_the_default_log_level() {
        assert_eq!(verbosity_level(0), "info");
        assert_eq!(verbosity_level(-1), "info");
        assert_eq!(verbosity_level(1), "info,netboot=debug");
        assert_eq!(verbosity_level(2), "info,netboot=debug");
        assert_eq!(verbosity_level(3), "info,netboot=trace");
        assert_eq!(verbosity_level(10), "info,netboot=trace");
    }
}
