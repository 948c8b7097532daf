//! Checks of volumes, the containers' mounts of them, and their security
//! settings: names resolve, paths are absolute, no mount target twice.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use super::types::{ContainerSpec, PodSpec, SpecError};
use super::validate::{check_abs, check_label};

impl PodSpec {
    /// `("containers", i, c)` then `("initContainers", i, c)`.
    pub fn all_containers(&self) -> impl Iterator<Item = (&'static str, usize, &ContainerSpec)> {
        let main = self.containers.iter().enumerate();
        let init = self.init_containers.iter().enumerate();
        main.map(|(i, c)| ("containers", i, c))
            .chain(init.map(|(i, c)| ("initContainers", i, c)))
    }

    pub(super) fn validate_volumes(&self) -> Result<(), SpecError> {
        let mut by_name = HashMap::new();
        for (i, v) in self.volumes.iter().enumerate() {
            let at = format!("volumes[{i}]");
            check_label(&format!("{at}.name"), &v.name, 63)?;
            if by_name.insert(v.name.as_str(), v).is_some() {
                return Err(SpecError::new(
                    format!("{at}.name"),
                    format!("volume {:?} is defined twice", v.name),
                ));
            }
            match (&v.host_path, &v.empty_dir) {
                (Some(h), None) => check_abs(&format!("{at}.hostPath.path"), &h.path)?,
                (None, Some(e)) => {
                    let memory = e.medium.as_deref() == Some("Memory");
                    if e.size_limit.is_some() && !memory {
                        // Node disk has no per-directory quota podrun could
                        // set; a limit that is not enforced is not kept.
                        return Err(SpecError::new(
                            format!("{at}.emptyDir.sizeLimit"),
                            "cannot be enforced on node disk: podrun enforces it only \
                             with medium: Memory (a tmpfs of that size)",
                        ));
                    }
                    if !matches!(e.medium.as_deref(), None | Some("") | Some("Memory")) {
                        return Err(SpecError::new(
                            format!("{at}.emptyDir.medium"),
                            format!(
                                "{:?} is not \"\" or \"Memory\"",
                                e.medium.as_deref().unwrap_or("")
                            ),
                        ));
                    }
                }
                _ => {
                    return Err(SpecError::new(
                        at,
                        "needs exactly one source: hostPath or emptyDir",
                    ))
                }
            }
        }
        for (list, i, c) in self.all_containers() {
            let at = format!("{list}[{i}]");
            let mut targets: HashSet<&Path> = c
                .mounts
                .iter()
                .map(|m| m.container_path.as_path())
                .collect();
            for (j, m) in c.volume_mounts.iter().enumerate() {
                let mat = format!("{at}.volumeMounts[{j}]");
                if !by_name.contains_key(m.name.as_str()) {
                    return Err(SpecError::new(
                        format!("{mat}.name"),
                        format!("no volume named {:?}", m.name),
                    ));
                }
                check_abs(&format!("{mat}.mountPath"), &m.mount_path)?;
                if m.mount_path == Path::new("/") || !targets.insert(&m.mount_path) {
                    return Err(SpecError::new(
                        format!("{mat}.mountPath"),
                        "mounted twice, or over /",
                    ));
                }
                if let Some(s) = &m.sub_path {
                    let p = Path::new(s);
                    if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
                        return Err(SpecError::new(
                            format!("{mat}.subPath"),
                            format!("{s:?} must be relative, without '..'"),
                        ));
                    }
                }
            }
            for (j, name) in c.pod_ip_env.iter().enumerate() {
                if !c.env.0.iter().any(|(k, _)| k == name) {
                    return Err(SpecError::new(
                        format!("{at}.podIPEnv[{j}]"),
                        format!("{name:?} is not in env"),
                    ));
                }
            }
        }
        Ok(())
    }
}
