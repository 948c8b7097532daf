//! What the pod record (`pod.json`, key `lifecycle`) keeps about the
//! lives of a pod's containers: when each started and ended, its
//! restarts, and the supervisor process keeping `restartPolicy`. A leaf
//! module (types and time formatting only): `state` embeds it.
//!
//! Times are Unix milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How many restarts a container's `recentRestarts` keeps.
pub const RECENT_RESTARTS: usize = 10;

/// The lifecycle part of a pod record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// The process restarting the containers, when the policy asks for
    /// one (`podrun supervise`, or `podrun run --attach` itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<ProcRef>,
    /// The first restart back-off (`run --restart-backoff`), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_backoff_ms: Option<u64>,
    /// The log rotation the containers were started with, so that a
    /// restarted container logs the same way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_rotate: Option<LogRotate>,
    /// By container name (init containers included).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub containers: BTreeMap<String, ContainerLife>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        *self == Lifecycle::default()
    }
}

/// `run --log-max-size` and `--log-max-files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRotate {
    pub max_size: u64,
    pub max_files: u32,
}

/// One process, told apart from any later process with the same PID by
/// its start time (clock ticks after boot, `/proc/PID/stat` field 22)
/// and the boot it started in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcRef {
    pub pid: u32,
    pub start_time: u64,
    pub boot_id: String,
}

/// One container's life so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLife {
    /// Times the supervisor started it again.
    #[serde(default)]
    pub restarts: u32,
    /// Its current (or last) run began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<u64>,
    /// Its last run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<u64>,
    /// Its last exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<u32>,
    /// Restarts since the back-off was last reset: the next delay is the
    /// initial one doubled this many times.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub backoff_step: u32,
    /// When the supervisor will start it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_at: Option<u64>,
    /// The last [`RECENT_RESTARTS`] restarts, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_restarts: Vec<Restart>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One restart: the exit it followed, and when the back-off after it
/// was over and the restart began (creating the new task takes a moment
/// more: the container's `startedAt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Restart {
    pub exit: u32,
    pub finished_at: u64,
    pub restarted_at: u64,
}

impl ContainerLife {
    /// Notes a restart after the exit recorded last: begun at `began`
    /// (the back-off over), the new run started at `started`.
    pub fn restarted(&mut self, began: u64, started: u64) {
        self.recent_restarts.push(Restart {
            exit: self.exit.unwrap_or_default(),
            finished_at: self.finished_at.unwrap_or(began),
            restarted_at: began,
        });
        let extra = self.recent_restarts.len().saturating_sub(RECENT_RESTARTS);
        self.recent_restarts.drain(..extra);
        self.restarts += 1;
        self.backoff_step = self.backoff_step.saturating_add(1);
        self.started_at = Some(started);
        self.next_restart_at = None;
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds: `2026-01-02T03:04:05.678Z`.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_utc_with_milliseconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        // `date -u -d @951782400` (a leap day) and one ms before 2001.
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(978_307_199_999), "2000-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(1_796_613_642_000), "2026-12-07T03:20:42.000Z");
    }

    #[test]
    fn restarts_keep_the_last_ten() {
        let mut l = ContainerLife::default();
        for i in 0..12u64 {
            l.exit = Some(i as u32);
            l.finished_at = Some(i * 100);
            l.restarted(i * 100 + 10, i * 100 + 20);
        }
        assert_eq!(l.restarts, 12);
        assert_eq!(l.backoff_step, 12);
        assert_eq!(l.recent_restarts.len(), RECENT_RESTARTS);
        assert_eq!(l.recent_restarts[0].exit, 2);
        assert_eq!(l.recent_restarts[9].restarted_at, 1110);
        assert_eq!(l.started_at, Some(1120));
    }
}
