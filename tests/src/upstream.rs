//! The real upstream flannel CNI plugin, for every flannel-mode test.
//!
//! `../shared/upstream/flannel-cni-plugin/` (beside the repository) holds
//! flannel-io/cni-plugin's sources and a `build.sh` that builds them
//! offline against Debian's libcni (`golang-go`,
//! `golang-github-appc-cni-dev`, both installed by
//! `scripts/install-deps.sh`). The binary is built once into the target
//! dir, atomically, so parallel test processes share it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::exec;

/// Where the upstream sources are: `$NETBOOT_UPSTREAM_DIR`, else
/// `../shared/upstream` next to the repository.
pub fn upstream_dir() -> PathBuf {
    std::env::var_os("NETBOOT_UPSTREAM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/upstream"))
}

/// Path of the upstream `flannel` plugin binary, built on first use.
/// Panics naming the missing piece when it cannot be built.
pub fn flannel_plugin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = upstream_dir().join("flannel-cni-plugin/build.sh");
        assert!(
            script.is_file(),
            "{} not found: the upstream flannel plugin's sources must sit in \
             ../shared/upstream beside the repository (or set NETBOOT_UPSTREAM_DIR)",
            script.display()
        );
        let dir = crate::bin_path("netboot-cni")
            .parent()
            .expect("profile dir")
            .join("upstream");
        fs::create_dir_all(&dir).expect("create upstream bin dir");
        let out = dir.join("flannel");
        if out.is_file() {
            return out;
        }
        let tmp = dir.join(format!("flannel.{}", std::process::id()));
        exec::run_argv(&[
            "bash",
            script.to_str().expect("utf-8 path"),
            tmp.to_str().expect("utf-8 path"),
        ])
        .expect_ok();
        fs::rename(&tmp, &out).expect("rename flannel binary");
        out
    })
    .clone()
}
