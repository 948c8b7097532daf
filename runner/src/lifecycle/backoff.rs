//! The rules of restarting, without any I/O: which exits `restartPolicy`
//! restarts, and how long to wait first. The numbers are the kubelet's
//! (Kubernetes docs, "Pod Lifecycle", container restarts): 10s, doubled
//! after every restart, at most 300s, back to 10s once a container has
//! run for 10 minutes.

use std::time::Duration;

use crate::spec::{PodSpec, RestartPolicy};

/// The kubelet's first restart delay (`run --restart-backoff` default).
pub const INITIAL: Duration = Duration::from_secs(10);
/// The kubelet's longest restart delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A run at least this long resets the delay to the initial one.
pub const RESET_AFTER: Duration = Duration::from_secs(600);
/// The shortest `--restart-backoff`: shorter ones would restart in a
/// tight loop.
pub const MIN_INITIAL: Duration = Duration::from_millis(100);

/// Kubernetes' default for a manifest is `Always`; podrun's own pod spec
/// keeps what podrun always did: `Never`.
pub fn policy(spec: &PodSpec) -> RestartPolicy {
    spec.restart_policy.unwrap_or(if spec.kube.is_some() {
        RestartPolicy::Always
    } else {
        RestartPolicy::Never
    })
}

/// Kubernetes' default grace period for a manifest is 30s; podrun's own
/// pod spec keeps podrun's 10s. `--grace` overrides both.
pub fn grace_secs(spec: &PodSpec, flag: Option<u64>) -> u64 {
    flag.or(spec.termination_grace_period_seconds)
        .unwrap_or(if spec.kube.is_some() { 30 } else { 10 })
}

/// Whether the policy starts a container again after it exited with
/// `code`.
pub fn restarts(policy: RestartPolicy, code: u32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}

/// Whether a pod needs a supervisor at all.
pub fn supervised(policy: RestartPolicy) -> bool {
    policy != RestartPolicy::Never
}

/// Exponential back-off from `initial` up to [`MAX`] (or `initial`, if
/// that is longer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
}

impl Backoff {
    /// The wait before a restart when `step` restarts happened since the
    /// last reset: `initial * 2^step`, capped.
    pub fn delay(&self, step: u32) -> Duration {
        let cap = MAX.max(self.initial);
        self.initial
            .checked_mul(1u32.checked_shl(step.min(31)).unwrap_or(u32::MAX))
            .map_or(cap, |d| d.min(cap))
    }

    /// The back-off step after a run of `ran`: a long run starts over.
    pub fn step_after_run(step: u32, ran: Duration) -> u32 {
        if ran >= RESET_AFTER {
            0
        } else {
            step
        }
    }
}

/// A duration for `--restart-backoff`: a number with `ms`, `s` or `m`
/// (`500ms`, `10s`, `2m`); a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (like 500ms, 10s, 2m)"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => return Err(format!("{s:?}: unit {unit:?} is not ms, s or m")),
    };
    if d < MIN_INITIAL {
        return Err(format!("{s:?} is below the minimum of 100ms"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_back_off_doubles_to_the_cap() {
        let b = Backoff { initial: INITIAL };
        let secs: Vec<u64> = (0..8).map(|s| b.delay(s).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(b.delay(u32::MAX), MAX);
        let short = Backoff {
            initial: Duration::from_millis(200),
        };
        assert_eq!(short.delay(0), Duration::from_millis(200));
        assert_eq!(short.delay(3), Duration::from_millis(1600));
        let long = Backoff {
            initial: Duration::from_secs(600),
        };
        assert_eq!(long.delay(4), Duration::from_secs(600), "cap is initial");
    }

    #[test]
    fn a_long_run_resets_the_back_off() {
        assert_eq!(Backoff::step_after_run(5, Duration::from_secs(599)), 5);
        assert_eq!(Backoff::step_after_run(5, RESET_AFTER), 0);
    }

    #[test]
    fn policies_restart_what_kubernetes_restarts() {
        use RestartPolicy::*;
        assert!(restarts(Always, 0) && restarts(Always, 1));
        assert!(!restarts(OnFailure, 0) && restarts(OnFailure, 137));
        assert!(!restarts(Never, 0) && !restarts(Never, 1));
        assert!(!supervised(Never) && supervised(OnFailure));
    }

    #[test]
    fn defaults_differ_for_manifests_and_podrun_specs() {
        let own = PodSpec::from_yaml("name: p\ncontainers: [{name: c, image: i}]\n").unwrap();
        assert_eq!(policy(&own), RestartPolicy::Never);
        assert_eq!(grace_secs(&own, None), 10);
        let mut kube = own.clone();
        kube.kube = Some(Default::default());
        assert_eq!(policy(&kube), RestartPolicy::Always);
        assert_eq!(grace_secs(&kube, None), 30);
        kube.termination_grace_period_seconds = Some(2);
        kube.restart_policy = Some(RestartPolicy::OnFailure);
        assert_eq!(policy(&kube), RestartPolicy::OnFailure);
        assert_eq!(grace_secs(&kube, None), 2);
        assert_eq!(grace_secs(&kube, Some(0)), 0);
    }

    /// A per-container restartPolicy (Kubernetes' sidecar init
    /// containers) is not kept: refused by its path.
    #[test]
    fn a_sidecar_restart_policy_is_refused_by_path() {
        let doc = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  \
                   initContainers: [{name: s, image: i, restartPolicy: Always}]\n  \
                   containers: [{name: c, image: i}]\n";
        let opts = crate::kube::Options {
            ignore_unsupported: false,
        };
        let e = crate::kube::from_yaml(doc, opts).unwrap_err();
        assert_eq!(e.path, "spec.initContainers[0].restartPolicy", "{e}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "10h", "1.5s", "-1s", "50ms"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
