//! Where the built binaries are: the workspace's (`netboot-cni`,
//! `netboot`, `podrun`) and `libcni-client`, wherever cargo put them.

use std::path::{Path, PathBuf};

/// Directories a built binary may be in: the profile dir this test binary
/// was built into (`<target>/<profile>`, parent of `deps/`), its target dir,
/// then `$CARGO_TARGET_DIR` and the workspace's `target/`.
fn bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // A binary target (e.g. the benchmark) lives in the profile dir itself.
        if let Some(dir) = exe.parent() {
            dirs.push(dir.to_owned());
        }
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            dirs.push(profile.to_owned());
            if let Some(target) = profile.parent() {
                dirs.push(target.to_owned());
            }
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    dirs.push(target.join("debug"));
    dirs.push(target.clone());
    // Built by scripts/build-libcni-client.sh into the default target dir
    // even when tests are built elsewhere.
    dirs.push(workspace.join("target"));
    dirs
}

/// Path of workspace binary `name` (`netboot-cni`, `netboot`, `podrun`) or
/// of `libcni-client`. Panics with a hint when it was not built.
#[track_caller]
pub fn bin_path(name: &str) -> PathBuf {
    let dirs = bin_dirs();
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "binary `{name}` not found in {dirs:?}; run `cargo build --workspace` \
                 and `scripts/build-libcni-client.sh` (or `scripts/test.sh`)"
            )
        })
}
