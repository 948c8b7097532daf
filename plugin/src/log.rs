//! Plugin logging. stdout belongs to the CNI protocol, so log lines go to
//! `logFile` (appended) or, without one, to stderr, which runtimes capture.

use crate::conf::LogLevel;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Logger {
    level: LogLevel,
    sink: Mutex<Box<dyn Write + Send>>,
    prefix: String,
}

impl Logger {
    /// A logger for one invocation; `prefix` names the command and attachment.
    /// An unopenable log file falls back to stderr rather than failing the
    /// runtime's request over a diagnostic.
    pub fn new(file: Option<&Path>, level: LogLevel, prefix: String) -> Logger {
        let sink: Box<dyn Write + Send> = match file {
            Some(path) => match OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
            {
                Ok(f) => Box::new(f),
                Err(e) => {
                    eprintln!(
                        "netboot-cni: cannot open log file {}: {e}; logging to stderr",
                        path.display()
                    );
                    Box::new(std::io::stderr())
                }
            },
            None => Box::new(std::io::stderr()),
        };
        Logger {
            level,
            sink: Mutex::new(sink),
            prefix,
        }
    }

    /// A logger that drops everything below `Error` to stderr (before the
    /// config, and so the log settings, are known).
    pub fn stderr() -> Logger {
        Logger::new(None, LogLevel::Error, "netboot-cni".into())
    }

    fn write(&self, level: LogLevel, tag: &str, msg: &str) {
        if level > self.level {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let line = format!(
            "{} {tag} [{}] {}: {msg}\n",
            rfc3339(now.as_secs(), now.subsec_millis()),
            std::process::id(),
            self.prefix
        );
        if let Ok(mut sink) = self.sink.lock() {
            let _ = sink.write_all(line.as_bytes());
        }
    }

    pub fn error(&self, msg: &str) {
        self.write(LogLevel::Error, "ERROR", msg);
    }
    pub fn info(&self, msg: &str) {
        self.write(LogLevel::Info, "INFO", msg);
    }
    pub fn debug(&self, msg: &str) {
        self.write(LogLevel::Debug, "DEBUG", msg);
    }
}

/// UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` (RFC 3339) for seconds since the epoch.
fn rfc3339(secs: u64, millis: u32) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(secs)
        + std::time::Duration::from_millis(u64::from(millis));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::{rfc3339, Logger};
    use crate::conf::LogLevel;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_709_251_199, 999), "2024-02-29T23:59:59.999Z");
    }

    #[test]
    fn log_file_lines_start_with_a_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cni.log");
        Logger::new(Some(&path), LogLevel::Info, "ADD x".into()).info("hello");
        let text = std::fs::read_to_string(&path).unwrap();
        let (ts, rest) = text.split_once(' ').unwrap();
        assert_eq!(ts.len(), 24, "{text}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{text}");
        assert!(rest.starts_with("INFO ["), "{text}");
        assert!(rest.ends_with("ADD x: hello\n"), "{text}");
    }
}
