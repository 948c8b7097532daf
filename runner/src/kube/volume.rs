//! `spec.volumes[]` (hostPath, emptyDir) and `volumeMounts[]`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::walk::{nonneg, quantity, Obj, Report};
use crate::spec::{
    EmptyDirSource, HostPathSource, HostPathType, MemorySize, SpecError, Volume, VolumeMount,
};

/// A pod's volumes by name.
#[derive(Debug, Default)]
pub struct Volumes {
    pub by_name: BTreeMap<String, Volume>,
    /// Volumes of an unsupported source, skipped under `ignore_unsupported`.
    pub skipped: Vec<String>,
}

/// Reads `spec.volumes`.
pub fn volumes(spec: &mut Obj, report: &mut Report) -> Result<Volumes, SpecError> {
    let mut out = Volumes::default();
    for (p, v) in spec.list("volumes")? {
        let mut o = Obj::new(p, v)?;
        let name = o.req_str("name")?;
        let host = o.obj("hostPath")?;
        let empty = o.obj("emptyDir")?;
        let vol = match (host, empty) {
            (Some(h), None) => Some(Volume {
                name: name.clone(),
                host_path: Some(host_path(h, report)?),
                empty_dir: None,
            }),
            (None, Some(e)) => Some(Volume {
                name: name.clone(),
                host_path: None,
                empty_dir: Some(empty_dir(e, report)?),
            }),
            (Some(_), Some(_)) => {
                return Err(SpecError::new(o.path, "has more than one volume source"));
            }
            // Any other source (configMap, secret, ...) is left untaken and
            // reported by `finish`; the volume is then unknown to mounts.
            (None, None) => {
                out.skipped.push(name.clone());
                None
            }
        };
        let at = o.at("name");
        o.finish(report)?;
        if let Some(vol) = vol {
            if out.by_name.insert(name.clone(), vol).is_some() {
                return Err(SpecError::new(
                    at,
                    format!("volume {name:?} is defined twice"),
                ));
            }
        }
    }
    Ok(out)
}

fn host_path(mut h: Obj, report: &mut Report) -> Result<HostPathSource, SpecError> {
    let at = h.at("path");
    let path = PathBuf::from(h.req_str("path")?);
    check_abs(&at, &path)?;
    let at = h.at("type");
    let kind = match h.str("type")?.as_deref() {
        None | Some("") => None,
        Some("DirectoryOrCreate") => Some(HostPathType::DirectoryOrCreate),
        Some("Directory") => Some(HostPathType::Directory),
        Some("FileOrCreate") => Some(HostPathType::FileOrCreate),
        Some("File") => Some(HostPathType::File),
        Some("Socket") => Some(HostPathType::Socket),
        Some("CharDevice") => Some(HostPathType::CharDevice),
        Some("BlockDevice") => Some(HostPathType::BlockDevice),
        Some(other) => {
            return Err(SpecError::new(
                at,
                format!("{other:?} is not a hostPath type"),
            ));
        }
    };
    h.finish(report)?;
    Ok(HostPathSource { path, kind })
}

fn empty_dir(mut e: Obj, report: &mut Report) -> Result<EmptyDirSource, SpecError> {
    let at = e.at("medium");
    let memory = match e.str("medium")?.as_deref() {
        None | Some("") => false,
        Some("Memory") => true,
        Some(other) => {
            report.unsupported(&at, &format!("medium {other:?}"))?;
            false
        }
    };
    let size_limit = match quantity(&mut e, "sizeLimit")? {
        Some((p, q)) => {
            let size = MemorySize(nonneg(&p, &q, q.value())? as u64);
            if memory {
                Some(size)
            } else {
                // The kubelet enforces it by eviction; podrun has no quota
                // on node disk to keep it with.
                report.unsupported(
                    &p,
                    "sizeLimit of an emptyDir on node disk (podrun enforces it only \
                     with medium: Memory)",
                )?;
                None
            }
        }
        None => None,
    };
    e.finish(report)?;
    Ok(EmptyDirSource {
        medium: memory.then(|| "Memory".to_string()),
        size_limit,
    })
}

/// One `volumeMounts[]` entry, checked against the pod's volumes.
pub fn mount(
    path: &str,
    v: &Value,
    vols: &Volumes,
    mounts: &mut Vec<VolumeMount>,
    report: &mut Report,
) -> Result<(), SpecError> {
    let mut o = Obj::new(path, v)?;
    let at_name = o.at("name");
    let name = o.req_str("name")?;
    let at = o.at("mountPath");
    let container_path = PathBuf::from(o.req_str("mountPath")?);
    check_abs(&at, &container_path)?;
    let read_only = o.bool("readOnly")?.unwrap_or(false);
    let at = o.at("subPath");
    let sub_path = o.str("subPath")?.filter(|s| !s.is_empty());
    if let Some(s) = &sub_path {
        check_sub_path(&at, s)?;
    }
    o.finish(report)?;
    match vols.by_name.get(&name) {
        Some(_) => mounts.push(VolumeMount {
            name,
            mount_path: container_path,
            sub_path,
            read_only,
        }),
        None if vols.skipped.contains(&name) => {
            // Its volume was an unsupported source, already warned about.
            report.unsupported(&at_name, &format!("a mount of volume {name:?}"))?;
        }
        None => return Err(SpecError::new(at_name, format!("no volume named {name:?}"))),
    }
    Ok(())
}

fn check_abs(path: &str, p: &Path) -> Result<(), SpecError> {
    if !p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::new(
            path,
            format!(
                "{:?} is not an absolute path without '..'",
                p.display().to_string()
            ),
        ));
    }
    Ok(())
}

/// Kubernetes: a relative path that does not climb out of the volume.
fn check_sub_path(path: &str, s: &str) -> Result<(), SpecError> {
    let p = Path::new(s);
    if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::new(
            path,
            format!("{s:?} must be relative, without '..'"),
        ));
    }
    Ok(())
}
