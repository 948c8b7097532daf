//! Image references as docker writes them in `RepoTags` (`busybox:1`),
//! made into the full names containerd stores (`docker.io/library/busybox:1`):
//! the rules of distribution/reference's `ParseDockerRef`, which
//! containerd's importer applies to docker archives.

use anyhow::{bail, Result};
use containerd_client::types::Descriptor;

/// An image record to write: its name and target.
#[derive(Debug, Clone)]
pub struct Named {
    pub name: String,
    pub target: Descriptor,
}

const DEFAULT_DOMAIN: &str = "docker.io";
/// The old name of docker's registry, rewritten to [`DEFAULT_DOMAIN`].
const LEGACY_DOMAIN: &str = "index.docker.io";
const NAME_MAX: usize = 255;

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn path_component(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &s[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-')) {
            return false;
        }
    }
    true
}

/// A registry host: dot-separated labels of letters, digits and inner
/// dashes, optionally `:port`.
fn domain(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

fn tag(s: &str) -> bool {
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

fn digest(s: &str) -> bool {
    match s.split_once(':') {
        Some((alg, hex)) => {
            !alg.is_empty()
                && alg.as_bytes()[0].is_ascii_alphabetic()
                && alg
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_+.".contains(&c))
                && hex.len() >= 32
                && hex.bytes().all(|c| c.is_ascii_hexdigit())
        }
        None => false,
    }
}

/// The full name of `r`: registry `docker.io` unless the first component
/// is a host (has `.` or `:`, or is `localhost`), `library/` for a
/// one-component docker.io name, `:latest` without tag or digest, and only
/// the digest when there are both.
pub fn normalize(r: &str) -> Result<String> {
    let bad = |why: &str| anyhow::anyhow!("invalid image reference {r:?}: {why}");
    if r.len() == 64 && r.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(bad("a 64-digit hex string is an image ID, not a name"));
    }
    let (rest, dig) = match r.split_once('@') {
        Some((n, d)) if digest(d) => (n, Some(d)),
        Some(_) => return Err(bad("bad digest")),
        None => (r, None),
    };
    let (name, tg) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (rest, None),
    };
    if let Some(t) = tg {
        if !tag(t) {
            return Err(bad("bad tag"));
        }
    }
    let (dom, path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" || d != d.to_lowercase() => {
            (d, p.to_string())
        }
        _ => (DEFAULT_DOMAIN, name.to_string()),
    };
    let dom = if dom == LEGACY_DOMAIN {
        DEFAULT_DOMAIN
    } else {
        dom
    };
    let path = if dom == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if path != path.to_lowercase() {
        return Err(bad("repository name must be lowercase"));
    }
    if !domain(dom) || !path.split('/').all(path_component) {
        return Err(bad("bad repository name"));
    }
    let full = format!("{dom}/{path}");
    if full.len() > NAME_MAX {
        return Err(bad("name longer than 255 characters"));
    }
    Ok(match (dig, tg) {
        (Some(d), _) => format!("{full}@{d}"),
        (None, Some(t)) => format!("{full}:{t}"),
        (None, None) => format!("{full}:latest"),
    })
}

/// The OCI `org.opencontainers.image.ref.name` of a full name: its tag
/// (or `@digest`), as containerd's importer records it.
pub fn object(full: &str) -> String {
    let path = full.split_once('/').map_or(full, |(_, p)| p);
    match path.find([':', '@']) {
        Some(i) => path[i..]
            .strip_prefix(':')
            .unwrap_or(&path[i..])
            .to_string(),
        None => String::new(),
    }
}

/// The name an OCI index entry's `org.opencontainers.image.ref.name` gives
/// with `--base-name` (ctr's `FilterRefPrefix`): a bare tag is appended to
/// the base; a full reference is kept only if it is under the base.
/// Without a base, a full reference is kept and a bare tag refused.
pub fn oci_ref_name(r: &str, base: Option<&str>) -> Result<Option<String>> {
    let full = r.contains(['/', ':', '@']);
    match base {
        None if full => Ok(Some(r.to_string())),
        None => bail!(
            "reference name {r:?} is only a tag: give the repository with --base-name \
             (as for ctr images import)"
        ),
        Some(b) if !full => Ok(Some(format!("{b}:{r}"))),
        Some(b) => {
            let under = r
                .strip_prefix(b)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '@', '/']));
            // A short base also matches the last path component
            // (`nginx` for `docker.io/library/nginx:1`).
            let last = r.rsplit('/').next().unwrap_or(r);
            let short = last
                .strip_prefix(b)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '@']));
            Ok((under || short).then(|| r.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_normalize() {
        for (given, want) in [
            ("busybox:1", "docker.io/library/busybox:1"),
            ("busybox", "docker.io/library/busybox:latest"),
            ("me/app:v2.0", "docker.io/me/app:v2.0"),
            ("index.docker.io/me/app", "docker.io/me/app:latest"),
            ("localhost/app:1", "localhost/app:1"),
            ("localhost:5000/a/b:x", "localhost:5000/a/b:x"),
            ("ghcr.io/o/r__x.y-z:t_1", "ghcr.io/o/r__x.y-z:t_1"),
            (
                &format!("busybox:1@sha256:{}", "a".repeat(64)),
                &format!("docker.io/library/busybox@sha256:{}", "a".repeat(64)),
            ),
        ] {
            assert_eq!(normalize(given).unwrap(), want, "{given}");
        }
        for bad in [
            "Busybox:1",
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a/b",
            "a/b_",
            "busybox@sha256:12",
            &"a".repeat(64),
            "exa mple/x",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn objects_are_tags_or_digests() {
        assert_eq!(object("docker.io/library/busybox:1"), "1");
        assert_eq!(object("localhost:5000/a:x"), "x");
        assert_eq!(object("docker.io/a/b@sha256:ab"), "@sha256:ab");
    }

    #[test]
    fn oci_ref_names_follow_ctr() {
        assert_eq!(
            oci_ref_name("r.io/a:1", None).unwrap().as_deref(),
            Some("r.io/a:1")
        );
        assert!(oci_ref_name("1.0", None)
            .unwrap_err()
            .to_string()
            .contains("--base-name"));
        assert_eq!(
            oci_ref_name("1.0", Some("r.io/a")).unwrap().as_deref(),
            Some("r.io/a:1.0")
        );
        assert_eq!(
            oci_ref_name("r.io/a:1", Some("r.io/a")).unwrap().as_deref(),
            Some("r.io/a:1")
        );
        assert_eq!(oci_ref_name("r.io/ab:1", Some("r.io/a")).unwrap(), None);
        assert_eq!(
            oci_ref_name("docker.io/library/nginx:1", Some("nginx"))
                .unwrap()
                .as_deref(),
            Some("docker.io/library/nginx:1")
        );
    }
}
