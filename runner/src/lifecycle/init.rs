//! Init containers, and what `run` does as each container starts.
//!
//! `run` creates every container through one code path (pod.rs
//! `create`), init containers first; this module gives the order
//! ([`steps`]) and what follows each start ([`started`]): an init
//! container is waited for, its exit recorded, and its task, container
//! and snapshot deleted (its logs stay in the pod's log dir, for `podrun
//! logs POD NAME`); an app container's start time is recorded ([`Starts`]).
//!
//! A failing init container fails `run`, whatever `spec.restartPolicy`
//! says: the kubelet retries it under `Always`/`OnFailure`, podrun does
//! not (the supervisor restarts app containers only; see the docs).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};

use super::backoff;
use super::status::{now_ms, ContainerLife};
use crate::ctx::Ctx;
use crate::image::ImageInfo;
use crate::spec::{ContainerSpec, PodSpec, RestartPolicy};
use crate::state::PodRecord;

/// One container to create, in order.
pub struct Step<'a> {
    /// containerd ID.
    pub id: String,
    /// Its path in the spec: `initContainers[0]`, `containers[1]`.
    pub at: String,
    pub spec: ContainerSpec,
    pub image: &'a ImageInfo,
    /// Run to completion before the next step.
    pub init: bool,
}

/// The init containers in spec order, then the app containers.
pub fn steps<'a>(
    rec: &PodRecord,
    images: &'a [ImageInfo],
    init_images: &'a [ImageInfo],
) -> Vec<Step<'a>> {
    let mut steps = Vec::new();
    let lists = [
        (
            "initContainers",
            &rec.spec.init_containers,
            &rec.init_container_ids,
            init_images,
            true,
        ),
        (
            "containers",
            &rec.spec.containers,
            &rec.container_ids,
            images,
            false,
        ),
    ];
    for (field, specs, ids, images, init) in lists {
        for (i, ((c, id), image)) in specs.iter().zip(ids).zip(images).enumerate() {
            steps.push(Step {
                id: id.clone(),
                at: format!("{field}[{i}]"),
                spec: c.clone(),
                image,
                init,
            });
        }
    }
    steps
}

/// What `run` learns as the containers start: their start times and
/// the init containers' exits, put into the record once all started.
#[derive(Debug, Default)]
pub struct Starts(BTreeMap<String, ContainerLife>);

impl Starts {
    /// After `step`'s task was started (asked to start at `at`, Unix
    /// ms: a process may exit before the request returns): records the
    /// start; for an init container, waits for its exit and removes it,
    /// failing on a non-zero exit.
    pub async fn started(
        &mut self,
        ctx: &Ctx,
        pod: &PodSpec,
        step: &Step<'_>,
        at: u64,
    ) -> Result<()> {
        let name = &step.spec.name;
        let life = self.0.entry(name.clone()).or_default();
        life.started_at = Some(at);
        if !step.init {
            return Ok(());
        }
        let (status, exited_at) = ctx.ctrd.wait(&step.id).await?;
        // The shim closes the container's IO on delete and waits for the
        // log driver to drain it: the log files are complete after this.
        let code = ctx.ctrd.delete_task(&step.id).await?.unwrap_or(status);
        life.exit = Some(code);
        life.finished_at = Some(exited_at.unwrap_or_else(now_ms));
        ctx.ctrd.delete_container(&step.id).await?;
        ctx.ctrd.remove_snapshot(&step.id).await?;
        if code != 0 {
            let stderr = ctx.store.log_path(&pod.name, name, "stderr");
            bail!(
                "init container {name:?} exited with code {code}{}{}",
                tail(&stderr),
                policy_note(backoff::policy(pod))
            );
        }
        Ok(())
    }

    /// Into the record (saved by `run`).
    pub fn record(self, rec: &mut PodRecord) {
        rec.lifecycle.containers.extend(self.0);
    }
}

/// Why a failed init container is not retried, when the policy would
/// have the kubelet retry it.
fn policy_note(p: RestartPolicy) -> String {
    match p {
        RestartPolicy::Never => String::new(),
        p => format!(
            " (podrun runs init containers once: spec.restartPolicy {p:?} restarts \
             the containers, not the init containers)"
        ),
    }
}

/// The last lines of a log file, quoted for an error message: the pod's
/// logs go with the pod when `run` rolls back.
fn tail(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines[lines.len().saturating_sub(3)..].join(" | ");
    if last.is_empty() {
        return String::new();
    }
    let cut: String = last.chars().take(300).collect();
    format!("; its stderr ends: {cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_quotes_the_end_of_stderr() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.stderr");
        assert_eq!(tail(&p), "");
        std::fs::write(&p, "a\nb\n\nc\nd\n").unwrap();
        assert_eq!(tail(&p), "; its stderr ends: \"b | c | d\"");
        assert_eq!(policy_note(RestartPolicy::Never), "");
        assert!(policy_note(RestartPolicy::Always).contains("spec.restartPolicy Always"));
    }
}
