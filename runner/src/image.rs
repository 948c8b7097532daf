//! Reading an image that is already in containerd's store: its config
//! (entrypoint, cmd, env, working dir) and the snapshot its layers were
//! unpacked to (named by the chain ID, OCI image-spec `config.md`).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ctrd::Ctrd;

/// What podrun uses from an image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    /// `User`: `uid`, `uid:gid`, or names (`""` for root).
    pub user: String,
    /// Chain ID of the top layer: the committed snapshot to build on.
    pub chain_id: String,
}

pub const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// GOARCH of this machine, as image platforms spell it.
pub fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// Chain ID: `ChainID(L0) = DiffID(L0)`,
/// `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))`.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut it = diff_ids.iter();
    let mut chain = it.next()?.clone();
    for d in it {
        let sum = Sha256::digest(format!("{chain} {d}").as_bytes());
        chain = format!(
            "sha256:{}",
            sum.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    Some(chain)
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses an image config blob.
pub fn parse_config(blob: &[u8]) -> Result<ImageInfo> {
    let v: Value = serde_json::from_slice(blob).context("image config is not JSON")?;
    let c = &v["config"];
    let diff_ids = strings(&v["rootfs"]["diff_ids"]);
    Ok(ImageInfo {
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        env: strings(&c["Env"]),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
        user: c["User"].as_str().unwrap_or_default().to_string(),
        chain_id: chain_id(&diff_ids).context("image has no layers")?,
    })
}

/// Picks this platform's manifest from an index.
fn pick_manifest(index: &Value) -> Option<String> {
    let list = index["manifests"].as_array()?;
    list.iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == goarch())
        .or_else(|| list.iter().find(|m| m["platform"].is_null()))
        .and_then(|m| m["digest"].as_str().map(str::to_string))
}

/// Resolves `name` in containerd's image store. `Ok(None)` if there is
/// no such image.
pub async fn resolve(c: &Ctrd, name: &str) -> Result<Option<ImageInfo>> {
    let Some((media, mut digest)) = c.image_target(name).await? else {
        return Ok(None);
    };
    if INDEX_TYPES.contains(&media.as_str()) {
        let index: Value = serde_json::from_slice(&c.read_blob(&digest).await?)?;
        digest = pick_manifest(&index)
            .with_context(|| format!("image {name} has no linux/{} manifest", goarch()))?;
    }
    let manifest: Value = serde_json::from_slice(&c.read_blob(&digest).await?)
        .with_context(|| format!("manifest of {name}"))?;
    let Some(config) = manifest["config"]["digest"].as_str() else {
        bail!("manifest of {name} has no config");
    };
    let info = parse_config(&c.read_blob(config).await?)
        .with_context(|| format!("config of image {name}"))?;
    if !c.snapshot_exists(&info.chain_id).await? {
        bail!(
            "image {name} is not unpacked for snapshotter {:?} (import it with \
             `podrun image import`, or unpack it with `ctr images unpack`)",
            c.snapshotter
        );
    }
    Ok(Some(info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids() {
        let a = "sha256:aaaa".to_string();
        assert_eq!(chain_id(std::slice::from_ref(&a)), Some(a.clone()));
        let two = chain_id(&[a, "sha256:bbbb".into()]).unwrap();
        let want = Sha256::digest(b"sha256:aaaa sha256:bbbb");
        assert_eq!(
            two,
            format!(
                "sha256:{}",
                want.iter().map(|b| format!("{b:02x}")).collect::<String>()
            )
        );
        assert_eq!(chain_id(&[]), None);
    }

    #[test]
    fn config_fields() {
        let blob =
            br#"{"config":{"Entrypoint":["/e"],"Cmd":["a","b"],"Env":["P=1"],"WorkingDir":"/w","User":"10:20"},
            "rootfs":{"type":"layers","diff_ids":["sha256:1"]}}"#;
        let i = parse_config(blob).unwrap();
        assert_eq!(i.entrypoint, ["/e"]);
        assert_eq!(i.cmd, ["a", "b"]);
        assert_eq!(i.working_dir, "/w");
        assert_eq!(i.user, "10:20");
        assert_eq!(i.chain_id, "sha256:1");
    }
}
