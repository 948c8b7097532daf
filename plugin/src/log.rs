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
            "{}.{:03} {tag} [{}] {}: {msg}\n",
            now.as_secs(),
            now.subsec_millis(),
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
