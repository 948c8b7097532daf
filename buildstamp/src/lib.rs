//! The version stamp of netboot's binaries, made by their build scripts:
//!
//! ```text
//! // build.rs
//! fn main() {
//!     buildstamp::emit();
//! }
//! // main.rs
//! const VERSION: &str = env!("NETBOOT_LONG_VERSION"); // "0.1.0 (commit 1a2b3c4d5e6f, built 2026-12-07)"
//! ```
//!
//! The commit is `git rev-parse --short=12 HEAD` of the source tree, or
//! `$NETBOOT_GIT_COMMIT` when set (a packager building from a tarball),
//! else `unknown`: a tree without `.git` or a machine without git still
//! builds. The date is UTC, from `$SOURCE_DATE_EPOCH` when set
//! (reproducible builds), else the time the build script ran.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a binary knows about its own build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// 12 hex digits, or `unknown`.
    pub commit: String,
    /// `YYYY-MM-DD` (UTC).
    pub date: String,
}

impl Stamp {
    /// `VERSION (commit C, built D)`.
    pub fn long_version(&self, version: &str) -> String {
        format!("{version} (commit {}, built {})", self.commit, self.date)
    }
}

/// For a build script: sets `NETBOOT_GIT_COMMIT`, `NETBOOT_BUILD_DATE` and
/// `NETBOOT_LONG_VERSION` for the crate being built, and asks cargo to run
/// the script again when HEAD moves or the overriding variables change.
pub fn emit() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let commit = std::env::var("NETBOOT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| commit_of(&dir, "git"))
        .unwrap_or_else(|| "unknown".into());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(now);
    let stamp = Stamp {
        commit,
        date: civil_date(epoch),
    };
    println!("cargo:rustc-env=NETBOOT_GIT_COMMIT={}", stamp.commit);
    println!("cargo:rustc-env=NETBOOT_BUILD_DATE={}", stamp.date);
    println!(
        "cargo:rustc-env=NETBOOT_LONG_VERSION={}",
        stamp.long_version(&version)
    );
    println!("cargo:rerun-if-env-changed=NETBOOT_GIT_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Without any rerun-if-changed line cargo reruns the script whenever a
    // file of the package changes; with them, only when these do.
    println!("cargo:rerun-if-changed=build.rs");
    for f in head_files(&dir, "git") {
        println!("cargo:rerun-if-changed={}", f.display());
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// stdout of `git -C dir args...`, trimmed, if git ran and succeeded.
fn git(git: &str, dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(git)
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
}

/// The abbreviated commit of HEAD in the repository holding `dir`, or
/// `None` when `git_bin` is missing or `dir` is not in a repository.
pub fn commit_of(dir: &Path, git_bin: &str) -> Option<String> {
    git(git_bin, dir, &["rev-parse", "--short=12", "HEAD"])
        .filter(|c| c.chars().all(|ch| ch.is_ascii_hexdigit()))
}

/// The files whose change means HEAD moved: HEAD itself (per worktree),
/// the branch it points at, and packed-refs (shared by worktrees).
fn head_files(dir: &Path, git_bin: &str) -> Vec<PathBuf> {
    let abs = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            dir.join(p)
        }
    };
    let Some(git_dir) = git(git_bin, dir, &["rev-parse", "--git-dir"]).map(abs) else {
        return Vec::new();
    };
    let common = git(git_bin, dir, &["rev-parse", "--git-common-dir"])
        .map(abs)
        .unwrap_or_else(|| git_dir.clone());
    let mut files = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(r) = git(git_bin, dir, &["symbolic-ref", "-q", "HEAD"]) {
        files.push(common.join(r));
    }
    files.into_iter().filter(|f| f.exists()).collect()
}

/// `YYYY-MM-DD` of a Unix time (UTC), by the days-to-civil algorithm of
/// Howard Hinnant's date library (proleptic Gregorian calendar).
pub fn civil_date(epoch_secs: i64) -> String {
    let z = epoch_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(951_868_799), "2000-02-29");
        assert_eq!(civil_date(951_868_800), "2000-03-01");
        assert_eq!(civil_date(1_704_067_199), "2023-12-31");
        assert_eq!(civil_date(4_107_542_400), "2100-03-01");
        assert_eq!(civil_date(-1), "1969-12-31");
    }

    #[test]
    fn no_repository_or_no_git_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(commit_of(dir.path(), "git"), None);
        assert!(head_files(dir.path(), "git").is_empty());
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(commit_of(here, "/nonexistent/git"), None);
        assert!(head_files(here, "/nonexistent/git").is_empty());
    }

    #[test]
    fn commit_of_a_repository() {
        let dir = tempfile::tempdir().unwrap();
        let g = |args: &[&str]| {
            let ok = Command::new("git")
                .arg("-C")
                .arg(dir.path())
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .expect("git is installed (scripts/install-deps.sh)")
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        g(&["init", "-q", "-b", "main"]);
        g(&["commit", "-q", "--allow-empty", "-m", "x"]);
        let full = Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(["rev-parse", "HEAD"])
            .output()
            .unwrap();
        let full = String::from_utf8(full.stdout).unwrap();
        let c = commit_of(dir.path(), "git").expect("a commit");
        assert_eq!(c.len(), 12);
        assert!(full.starts_with(&c), "{c} vs {full}");
        let files = head_files(dir.path(), "git");
        assert!(files.iter().any(|f| f.ends_with("HEAD")), "{files:?}");
        assert!(
            files.iter().any(|f| f.ends_with("refs/heads/main")),
            "{files:?}"
        );
    }

    #[test]
    fn long_version_format() {
        let s = Stamp {
            commit: "unknown".into(),
            date: "2026-01-02".into(),
        };
        assert_eq!(
            s.long_version("1.2.3"),
            "1.2.3 (commit unknown, built 2026-01-02)"
        );
    }
}
