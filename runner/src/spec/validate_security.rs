//! Checks of the pod's and the containers' security settings: IDs runc
//! can take, capability names it knows, no contradictions.

use super::caps;
use super::security::{PodSecurityContext, SecurityContext};
use super::types::{PodSpec, SpecError};

/// runc takes IDs up to 2^31-1 (as Kubernetes' validation does).
const MAX_ID: u32 = i32::MAX as u32;

fn check_id(path: String, id: Option<u32>) -> Result<(), SpecError> {
    match id {
        Some(v) if v > MAX_ID => Err(SpecError::new(
            path,
            format!("{v} is out of range (0-{MAX_ID})"),
        )),
        _ => Ok(()),
    }
}

fn check_pod(sc: &PodSecurityContext) -> Result<(), SpecError> {
    let at = |f: &str| format!("securityContext.{f}");
    check_id(at("runAsUser"), sc.run_as_user)?;
    check_id(at("runAsGroup"), sc.run_as_group)?;
    check_id(at("fsGroup"), sc.fs_group)?;
    for (i, g) in sc.supplemental_groups.iter().enumerate() {
        check_id(at(&format!("supplementalGroups[{i}]")), Some(*g))?;
    }
    Ok(())
}

fn check_container(at: &str, sc: &SecurityContext) -> Result<(), SpecError> {
    let at = |f: &str| format!("{at}.securityContext.{f}");
    check_id(at("runAsUser"), sc.run_as_user)?;
    check_id(at("runAsGroup"), sc.run_as_group)?;
    if sc.privileged == Some(true) && sc.allow_privilege_escalation == Some(false) {
        return Err(SpecError::new(
            at("allowPrivilegeEscalation"),
            "cannot be false when privileged is true",
        ));
    }
    if let Some(c) = &sc.capabilities {
        for (list, names) in [("add", &c.add), ("drop", &c.drop)] {
            for (j, name) in names.iter().enumerate() {
                if caps::parse(name).is_none() {
                    return Err(SpecError::new(
                        at(&format!("capabilities.{list}[{j}]")),
                        format!("{name:?} is not a Linux capability (e.g. NET_ADMIN, or ALL)"),
                    ));
                }
            }
        }
    }
    Ok(())
}

impl PodSpec {
    pub(super) fn validate_security(&self) -> Result<(), SpecError> {
        if let Some(sc) = &self.security_context {
            check_pod(sc)?;
        }
        for (list, i, c) in self.all_containers() {
            if let Some(sc) = &c.security_context {
                check_container(&format!("{list}[{i}]"), sc)?;
            }
        }
        Ok(())
    }
}
