//! `podrun run -f`: a file (or `-` for stdin) holding either podrun's own
//! pod spec or Kubernetes `v1` Pod manifests, told apart by content: a
//! document with `apiVersion` or `kind` is a manifest.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::kube;
use crate::spec::{PodSpec, SpecError};

/// Every pod in `file`, validated, in document order. Unsupported
/// manifest fields are errors, or warnings (logged) when
/// `ignore_unsupported`.
pub fn load(file: &Path, ignore_unsupported: bool) -> Result<Vec<PodSpec>> {
    let stdin = file == Path::new("-");
    let text = if stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the pod spec from stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {}", file.display()))?
    };
    let json = !stdin && file.extension().is_some_and(|e| e == "json");
    let opts = kube::Options { ignore_unsupported };
    let pods = if is_manifest(&text, json) {
        let pods = if json {
            kube::from_json(&text, opts)
        } else {
            kube::from_yaml(&text, opts)
        };
        let pods = pods.map_err(|e| located(file, e))?;
        let mut out = Vec::new();
        for p in pods {
            for w in &p.warnings {
                tracing::warn!("podrun: warning: {}: {w} (ignored)", shown(file));
            }
            out.push(p.spec);
        }
        out
    } else {
        let spec = if json {
            PodSpec::from_json(&text)
        } else {
            PodSpec::from_yaml(&text)
        };
        vec![spec.map_err(|e| located(file, e))?]
    };
    Ok(pods)
}

/// The error with the file it is in: `pod.yaml: spec.containers[0]...`.
fn located(file: &Path, e: SpecError) -> anyhow::Error {
    anyhow::Error::new(e).context(shown(file))
}

/// The file as messages name it.
fn shown(file: &Path) -> String {
    if file == Path::new("-") {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    }
}

/// True when the first non-empty document names an `apiVersion` or a
/// `kind`. A document that does not parse is left to the strict reader,
/// whose error names the problem.
fn is_manifest(text: &str, json: bool) -> bool {
    let first = if json {
        serde_json::from_str::<Value>(text).ok()
    } else {
        serde_norway::Deserializer::from_str(text)
            .map(Value::deserialize)
            .find(|v| !matches!(v, Ok(Value::Null)))
            .and_then(Result::ok)
    };
    first
        .as_ref()
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("apiVersion") || m.contains_key("kind"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_told_from_podrun_specs_by_content() {
        assert!(is_manifest("apiVersion: v1\nkind: Pod\n", false));
        assert!(is_manifest("---\n---\nkind: Pod\n", false));
        assert!(is_manifest(r#"{"apiVersion":"v1"}"#, true));
        assert!(!is_manifest("name: p\ncontainers: []\n", false));
        assert!(!is_manifest(r#"{"name":"p"}"#, true));
        assert!(!is_manifest("{{not yaml", false));
    }

    #[test]
    fn errors_name_the_file_then_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pod.yaml");
        std::fs::write(
            &f,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  \
             - {name: a, image: i, livenessProbe: {}}\n",
        )
        .unwrap();
        let e = format!("{:#}", load(&f, false).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "{}: spec.containers[0].livenessProbe",
                f.display()
            )),
            "{e}"
        );
        let pods = load(&f, true).unwrap();
        assert_eq!(pods[0].kube.as_ref().unwrap().namespace, "default");
        std::fs::write(&f, "name: p\ncontainers: [{name: a, image: i}]\n").unwrap();
        assert!(load(&f, false).unwrap()[0].kube.is_none());
    }
}
