//! Kubernetes `v1` Pod manifests, mapped onto podrun's own [`PodSpec`].
//!
//! A manifest is read as it is written for a cluster (YAML or JSON, one or
//! more documents). Every field is either mapped, kept in [`PodExtra`] /
//! [`ContainerExtra`] for podrun to honour later, or refused with its path
//! (`spec.containers[1].livenessProbe`). [`Options::ignore_unsupported`]
//! turns refusals into warnings; nothing is dropped silently.

mod container;
mod pod;
pub mod quantity;
mod types;
mod volume;
mod walk;

#[cfg(test)]
mod net_tests;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::Value;

use crate::spec::SpecError;

pub use types::*;

/// Maps a JSON manifest: one Pod object.
pub fn from_json(text: &str, opts: Options) -> Result<Vec<KubePod>, SpecError> {
    let v: Value = serde_json::from_str(text).map_err(|e| SpecError::new(".", e.to_string()))?;
    map_documents(vec![v], opts)
}

/// Maps a YAML manifest of one or more documents; empty ones are skipped.
pub fn from_yaml(text: &str, opts: Options) -> Result<Vec<KubePod>, SpecError> {
    let mut docs = Vec::new();
    for (i, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de)
            .map_err(|e| SpecError::new(format!("documents[{i}]"), e.to_string()))?;
        docs.push(v);
    }
    map_documents(docs, opts)
}

fn map_documents(docs: Vec<Value>, opts: Options) -> Result<Vec<KubePod>, SpecError> {
    let many = docs.len() > 1;
    let mut pods = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let pod = pod::map(doc, opts).map_err(|e| {
            if many {
                SpecError::new(format!("documents[{i}].{}", e.path), e.msg)
            } else {
                e
            }
        })?;
        pods.push(pod);
    }
    if pods.is_empty() {
        return Err(SpecError::new(".", "no Pod in the manifest"));
    }
    let mut names = std::collections::HashSet::new();
    for p in &pods {
        if !names.insert(&p.spec.name) {
            return Err(SpecError::new(
                "metadata.name",
                format!("pod {:?} appears twice", p.spec.name),
            ));
        }
    }
    Ok(pods)
}
