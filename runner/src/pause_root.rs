//! The pause container's rootfs, `<state-dir>/pause/rootfs`: `/pause`,
//! the mount points runc needs (so it can be mounted read-only), and,
//! for a dynamically linked pause, everything its loader opens.
//!
//! # Why podrun accepts a dynamically linked pause
//!
//! `cargo build`, `cargo build --release` and `cargo install --path
//! runner` all link `pause` dynamically (glibc's default), and Cargo has
//! no way to link one binary of a package statically: `crt-static` is a
//! target feature for a whole compilation (RUSTFLAGS also reach the
//! proc-macro crates, which cannot be static), a build script's
//! `rustc-link-arg-bin` can add `-static` to the link line but not take
//! out the `-lgcc_s`/`-pie` that rustc's dynamic mode adds, and a nested
//! `cargo` run from build.rs fights the outer one over the target dir's
//! lock and ignores its profile and flags. So instead of requiring a
//! static pause, podrun makes the rootfs hold what a dynamic one needs,
//! exactly as the host's loader resolves it:
//!
//! 1. The program interpreter comes from the binary's `PT_INTERP` (see
//!    [`crate::elf`]); none means static (`scripts/build-release.sh`'s
//!    crt-static build): the rootfs holds `/pause` alone, as before.
//! 2. The libraries are what that interpreter itself prints for
//!    `INTERP --list PAUSE` (what `ldd` runs, glibc `elf/rtld.c`; musl's
//!    loader has the same option), with an empty environment. Asking the
//!    loader, rather than re-implementing its search (DT_RUNPATH,
//!    `/etc/ld.so.cache`, glibc-hwcaps subdirectories, the built-in
//!    system dirs), gives the very files it would map. It only traces:
//!    the pause program's own code does not run on the host.
//! 3. Each of those files, and the host's `/etc/ld.so.cache`, is copied
//!    to the same path inside the rootfs. The loader in the container
//!    then reads the same cache and finds every name at the path the
//!    host's loader chose, without any environment (no LD_LIBRARY_PATH
//!    in the pause spec, which would tie the spec to one binary).
//!
//! The rootfs is shared by every podrun instance on the state dir and
//! bind-mounted read-only into running pause containers, so it is only
//! ever updated by atomic replacement ([`write_atomic`]: a temp file
//! named after the writer's PID, fsync, rename), and only when a file's
//! content differs (a run compares a few MiB from the page cache and
//! writes nothing). A running pause keeps the inodes it mapped. The
//! libraries and cache are written before `/pause`, and nothing is ever
//! removed, so whichever instance's `/pause` a container execs (two
//! instances with different `--pause-bin` race on that one path, last
//! writer wins), the files its loader needs are already there.
//!
//! Not supported, with an error saying so: a library the host's loader
//! cannot find, and an interpreter that cannot list (it must accept
//! `--list`; `ldd`'s other way, LD_TRACE_LOADED_OBJECTS=1, is glibc's
//! only: any other loader would run pause on the host). A `$ORIGIN`-relative DT_RUNPATH would resolve elsewhere
//! inside the container (`/pause` is at the root); Cargo does not emit
//! one. Any of these is cured by a static pause.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::state::write_atomic;

/// The loader cache the container's loader must see (glibc's
/// `ld.so.cache` path is compiled in; musl has no cache).
const LD_CACHE: &str = "/etc/ld.so.cache";

/// How to get a pause podrun can always run.
pub const STATIC_PAUSE_HINT: &str = "build a statically linked pause with \
    `cargo rustc -p podrun --release --bin pause -- -C target-feature=+crt-static` \
    (as scripts/build-release.sh does) and pass it with --pause-bin (or \
    PODRUN_PAUSE), or put it beside podrun as `pause`";

/// A pause binary and the host files it needs in its rootfs.
#[derive(Debug)]
pub struct PauseRoot {
    bin: PathBuf,
    /// Absolute host paths: interpreter, libraries, loader cache.
    deps: Vec<PathBuf>,
}

impl PauseRoot {
    /// Checks `bin` and resolves its dependencies; every error names the
    /// binary and says how to get a usable one.
    pub fn resolve(bin: &Path) -> Result<PauseRoot> {
        let data = fs::read(bin).with_context(|| {
            format!(
                "pause binary {}: podrun runs `pause` from beside its own executable \
                 (`cargo build` and `cargo install --path runner` put it there) unless \
                 --pause-bin names another",
                bin.display()
            )
        })?;
        let interp = crate::elf::interpreter(&data).map_err(|e| {
            anyhow::anyhow!(
                "pause binary {} is not a program podrun can run ({e}); {STATIC_PAUSE_HINT}",
                bin.display()
            )
        })?;
        let Some(interp) = interp else {
            return Ok(PauseRoot {
                bin: bin.to_owned(),
                deps: Vec::new(),
            });
        };
        let deps = dynamic_deps(&interp, bin).with_context(|| {
            format!(
                "pause binary {} is dynamically linked and podrun cannot gather what it \
                 needs to run in the pause rootfs; {STATIC_PAUSE_HINT}",
                bin.display()
            )
        })?;
        Ok(PauseRoot {
            bin: bin.to_owned(),
            deps,
        })
    }

    /// Brings `rootfs` up to date; writes only files whose content
    /// changed, `/pause` last.
    pub fn install(&self, rootfs: &Path) -> Result<()> {
        for d in ["proc", "dev", "sys", "etc"] {
            let p = rootfs.join(d);
            fs::create_dir_all(&p).with_context(|| format!("create {}", p.display()))?;
        }
        for dep in &self.deps {
            copy_if_changed(dep, &in_rootfs(rootfs, dep)?)?;
        }
        copy_if_changed(&self.bin, &rootfs.join("pause"))?;
        Ok(())
    }
}

/// The interpreter, the libraries it lists for `bin`, and the loader
/// cache, deduplicated, in that order.
fn dynamic_deps(interp: &str, bin: &Path) -> Result<Vec<PathBuf>> {
    let interp_path = Path::new(interp);
    if !interp_path.is_file() {
        bail!("its program interpreter {interp} does not exist on this host");
    }
    // An absolute path: `--list` must not search PATH for it.
    let out = Command::new(interp_path)
        .arg("--list")
        .arg(bin)
        .env_clear()
        .output()
        .with_context(|| format!("run {interp} --list"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let libs = parse_list(&stdout).map_err(|missing| {
        anyhow::anyhow!(
            "the host's loader {interp} cannot find {}",
            missing.join(", ")
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{interp} --list {}` failed ({}): {}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut deps = vec![interp_path.to_owned()];
    for lib in libs {
        if !deps.contains(&lib) {
            deps.push(lib);
        }
    }
    if Path::new(LD_CACHE).is_file() {
        deps.push(LD_CACHE.into());
    }
    Ok(deps)
}

/// The absolute paths in the loader's `--list` output (the `ldd` format:
/// `\tNAME => PATH (0xADDR)`, `\tPATH (0xADDR)`, or `\tNAME => not found`;
/// the vDSO has no file and no absolute path). `Err` holds the names of
/// the libraries it could not find.
pub fn parse_list(out: &str) -> Result<Vec<PathBuf>, Vec<String>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for line in out.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, target) = match line.split_once("=>") {
            Some((n, t)) => (n.trim(), t.trim()),
            None => (line, line),
        };
        if target == "not found" {
            missing.push(name.to_string());
            continue;
        }
        // Strip the load address: "PATH (0x...)".
        let path = match target.rsplit_once(" (") {
            Some((p, addr)) if addr.starts_with("0x") => p.trim(),
            _ => target,
        };
        if path.starts_with('/') {
            found.push(PathBuf::from(path));
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

/// Where the host file `host` goes in `rootfs`: the same path, which
/// must be absolute and plain (no `..`: it must stay inside).
fn in_rootfs(rootfs: &Path, host: &Path) -> Result<PathBuf> {
    let mut out = rootfs.to_owned();
    let mut parts = host.components();
    if parts.next() != Some(Component::RootDir) {
        bail!("{}: not an absolute path", host.display());
    }
    for c in parts {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => bail!("{}: not a plain absolute path", host.display()),
        }
    }
    Ok(out)
}

/// Replaces `dst` by `src`'s content (following symlinks, keeping its
/// permission bits) unless it already has it. True when it wrote.
fn copy_if_changed(src: &Path, dst: &Path) -> Result<bool> {
    let data = fs::read(src).with_context(|| format!("read {}", src.display()))?;
    let same = fs::metadata(dst).is_ok_and(|m| m.is_file() && m.len() == data.len() as u64)
        && fs::read(dst).is_ok_and(|d| d == data);
    if same {
        return Ok(false);
    }
    if let Some(dir) = dst.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    let mode = fs::metadata(src)?.permissions().mode() & 0o755;
    write_atomic(dst, &data, mode)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_loader_list() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd5d3f2000)\n\
             \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f99aeb4d000)\n\
             \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f99ae96b000)\n\
             \t/lib64/ld-linux-x86-64.so.2 (0x00007f99aebe2000)\n";
        let want: Vec<PathBuf> = [
            "/lib/x86_64-linux-gnu/libgcc_s.so.1",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
        ]
        .map(PathBuf::from)
        .into();
        assert_eq!(parse_list(out), Ok(want));
        // Old glibc prints the vDSO as "NAME =>  (ADDR)"; musl maps libc
        // onto its loader; paths may hold spaces.
        let musl = "\tlinux-vdso.so.1 =>  (0x00007ffd)\n\
             \t/lib/ld-musl-x86_64.so.1 (0x7f1)\n\
             \tlibc.musl-x86_64.so.1 => /lib/ld-musl-x86_64.so.1 (0x7f1)\n\
             \tlibx.so => /opt/my libs/libx.so (0x7f2)\n";
        let got = parse_list(musl).unwrap();
        assert_eq!(
            got,
            [
                "/lib/ld-musl-x86_64.so.1",
                "/lib/ld-musl-x86_64.so.1",
                "/opt/my libs/libx.so"
            ]
            .map(PathBuf::from)
        );
        let broken = "\tlibfoo.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n\
             \tlibbar.so => not found\n";
        assert_eq!(
            parse_list(broken),
            Err(vec!["libfoo.so.1".into(), "libbar.so".into()])
        );
    }

    #[test]
    fn rootfs_paths_stay_inside() {
        let r = Path::new("/state/pause/rootfs");
        assert_eq!(
            in_rootfs(r, Path::new("/lib64/./ld.so")).unwrap(),
            r.join("lib64/ld.so")
        );
        for bad in ["lib/x.so", "/lib/../../etc/shadow"] {
            assert!(in_rootfs(r, Path::new(bad)).is_err(), "{bad}");
        }
    }

    /// The resolution against this host's real loader: this test binary
    /// is linked dynamically, like a plain `cargo build` pause.
    #[test]
    fn resolves_a_dynamic_binary_with_the_hosts_loader() {
        let me = std::env::current_exe().unwrap();
        let root = PauseRoot::resolve(&me).unwrap();
        let interp = crate::elf::interpreter(&fs::read(&me).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(root.deps[0], PathBuf::from(&interp), "{root:?}");
        let libc = root.deps.iter().find(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libc.so") || name.starts_with("ld-musl")
        });
        assert!(libc.is_some(), "no libc in {root:?}");
        assert!(root.deps.iter().all(|p| p.is_file()), "{root:?}");
    }

    #[test]
    fn install_copies_once_and_replaces_changed_files() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host");
        fs::create_dir_all(host.join("lib")).unwrap();
        let (bin, lib) = (host.join("pause"), host.join("lib/libx.so"));
        fs::write(&bin, b"pause-v1").unwrap();
        fs::write(&lib, b"lib-v1").unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o700)).unwrap();
        let root = PauseRoot {
            bin: bin.clone(),
            deps: vec![lib.clone()],
        };
        let rootfs = d.path().join("rootfs");
        root.install(&rootfs).unwrap();
        let dst_lib = in_rootfs(&rootfs, &lib).unwrap();
        assert_eq!(fs::read(&dst_lib).unwrap(), b"lib-v1");
        assert_eq!(fs::read(rootfs.join("pause")).unwrap(), b"pause-v1");
        let mode = fs::metadata(rootfs.join("pause")).unwrap().permissions();
        assert_eq!(mode.mode() & 0o777, 0o700);
        for m in ["proc", "dev", "sys", "etc"] {
            assert!(rootfs.join(m).is_dir(), "{m}");
        }
        // Unchanged: no write (the inode stays); changed: replaced.
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        let (lib_ino, bin_ino) = (ino(&dst_lib), ino(&rootfs.join("pause")));
        assert!(!copy_if_changed(&lib, &dst_lib).unwrap());
        fs::write(&bin, b"pause-v2").unwrap();
        root.install(&rootfs).unwrap();
        assert_eq!(ino(&dst_lib), lib_ino, "unchanged library rewritten");
        assert_ne!(ino(&rootfs.join("pause")), bin_ino);
        assert_eq!(fs::read(rootfs.join("pause")).unwrap(), b"pause-v2");
        // Same length, other bytes: still noticed.
        fs::write(&lib, b"lib-v2").unwrap();
        assert!(copy_if_changed(&lib, &dst_lib).unwrap());
        assert_eq!(fs::read(&dst_lib).unwrap(), b"lib-v2");
    }

    #[test]
    fn unusable_binaries_get_a_plain_error() {
        let d = tempfile::tempdir().unwrap();
        let e = PauseRoot::resolve(&d.path().join("pause")).unwrap_err();
        assert!(format!("{e:#}").contains("--pause-bin"), "{e:#}");
        let script = d.path().join("script");
        fs::write(&script, "#!/bin/sh\n").unwrap();
        let e = format!("{:#}", PauseRoot::resolve(&script).unwrap_err());
        assert!(e.contains("not an ELF file"), "{e}");
        assert!(e.contains("target-feature=+crt-static"), "{e}");
        // Real dynamic binaries, patched: an interpreter that is not
        // there, a library nobody has. Both name the fix.
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        let interp = crate::elf::interpreter(&me).unwrap().unwrap();
        let gone = format!("/nonexistent{}", &interp[12.min(interp.len())..]);
        let no_loader = patched(&me, &interp, &gone[..interp.len()]);
        let e = resolve_bytes(d.path(), "no-loader", &no_loader);
        assert!(e.contains("does not exist on this host"), "{e}");
        assert!(e.contains("target-feature=+crt-static"), "{e}");
        let no_lib = patched(&me, "libgcc_s.so.1\0", "libnope_.so.1\0");
        let e = resolve_bytes(d.path(), "no-lib", &no_lib);
        // glibc's `--list` stops at the first missing library (exit
        // 127, the name on stderr); other loaders print "not found".
        assert!(e.contains("libnope_.so.1"), "{e}");
        assert!(e.contains("target-feature=+crt-static"), "{e}");
    }

    /// `b` with the first `from` replaced by `to` (same length).
    fn patched(b: &[u8], from: &str, to: &str) -> Vec<u8> {
        let (from, to) = (from.as_bytes(), to.as_bytes());
        assert_eq!(from.len(), to.len());
        let at = b
            .windows(from.len())
            .position(|w| w == from)
            .unwrap_or_else(|| {
                panic!("{:?} not in the test binary", String::from_utf8_lossy(from))
            });
        let mut out = b.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    /// The error of [`PauseRoot::resolve`] for a binary with bytes `b`.
    fn resolve_bytes(dir: &Path, name: &str, b: &[u8]) -> String {
        let p = dir.join(name);
        fs::write(&p, b).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        format!("{:#}", PauseRoot::resolve(&p).unwrap_err())
    }
}
