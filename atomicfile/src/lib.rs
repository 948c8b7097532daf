//! Atomic file writes for every netboot binary: the content goes to a temp
//! file beside the target, which is then renamed over the target
//! ([`Options::replace`]) or hard-linked to it ([`Options::create_new`]:
//! `link(2)` fails if the name exists, so it never replaces anything).
//! Readers see the old file or the whole new one, never half of one; the
//! temp file is removed when a step fails.
//!
//! With [`Options::durable`] the temp file is fsynced before it gets the
//! target's name and the directory after, so the new content survives a
//! power loss once the call returns.
//!
//! The temp file is `.<name>.tmp-<pid>` ([`temp_path`]). Why not the
//! `tempfile` crate: its temp names are random, so nothing can tell whose a
//! leftover is. A writer SIGKILLed between create and rename leaves its temp
//! behind; a pid in the name is what lets a sweeper remove the temps of dead
//! writers while leaving those of live ones alone ([`dead_writer_temp`]), as
//! netboot-cni's record store and IPAM store do. The leading dot hides the
//! temp from readers that skip dot files (libcni's conf dir, host-local's IP
//! names).

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The step of a write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Write,
    Chmod,
    Fsync,
    Rename,
    Link,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::Create => "create",
            Step::Write => "write",
            Step::Chmod => "chmod",
            Step::Fsync => "fsync",
            Step::Rename => "rename",
            Step::Link => "link",
        })
    }
}

/// A failed write: the step, the file it acted on (and for rename and link
/// the target), and the OS error as the source.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}{}", path.display(), to.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default())]
pub struct Error {
    pub step: Step,
    pub path: PathBuf,
    pub to: Option<PathBuf>,
    #[source]
    pub source: io::Error,
}

impl Error {
    fn new(step: Step, path: &Path, source: io::Error) -> Error {
        Error {
            step,
            path: path.to_path_buf(),
            to: None,
            source,
        }
    }
}

/// For callers that speak `io::Error`: same kind, and a message with the
/// step, the path and the OS error.
impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.source.kind(), format!("{e}: {}", e.source))
    }
}

/// How to write: fsynced or not, and the file's mode.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    durable: bool,
    mode: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options::new()
    }
}

impl Options {
    /// Not durable, mode 0600.
    pub const fn new() -> Options {
        Options {
            durable: false,
            mode: 0o600,
        }
    }

    /// Fsync the file before it takes the target's name, and the
    /// directory after.
    pub const fn durable(self, durable: bool) -> Options {
        Options { durable, ..self }
    }

    /// The file's permission bits, applied exactly (the umask does not
    /// narrow them).
    pub const fn mode(self, mode: u32) -> Options {
        Options { mode, ..self }
    }

    /// Replaces `path` with `data` (rename over it).
    pub fn replace(&self, path: &Path, data: &[u8]) -> Result<(), Error> {
        self.replace_with(path, |f| f.write_all(data))
    }

    /// Replaces `path` with what `fill` writes into the temp file (for
    /// content that is not in memory, e.g. `io::copy` from another file).
    pub fn replace_with(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<(), Error> {
        self.write(path, fill, Place::Rename).map(|_| ())
    }

    /// Creates `path` holding `data` unless it exists: false when it does
    /// (then nothing is written). The file appears with its content in it.
    pub fn create_new(&self, path: &Path, data: &[u8]) -> Result<bool, Error> {
        self.write(path, |f| f.write_all(data), Place::Link)
    }

    fn write(
        &self,
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
        place: Place,
    ) -> Result<bool, Error> {
        let tmp = temp_path(path).ok_or_else(|| {
            Error::new(
                Step::Create,
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
            )
        })?;
        let res = self.fill_and_place(path, &tmp, fill, place);
        if !matches!(res, Ok(true)) || place == Place::Link {
            // After a link the temp is a second name of the file; after a
            // failure it is half-written or unplaced.
            let _ = fs::remove_file(&tmp);
        }
        let placed = res?;
        if placed && self.durable {
            let dir = parent(path);
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::new(Step::Fsync, dir, e))?;
        }
        Ok(placed)
    }

    fn fill_and_place(
        &self,
        path: &Path,
        tmp: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
        place: Place,
    ) -> Result<bool, Error> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(self.mode)
            .open(tmp)
            .map_err(|e| Error::new(Step::Create, tmp, e))?;
        fill(&mut f).map_err(|e| Error::new(Step::Write, tmp, e))?;
        f.set_permissions(fs::Permissions::from_mode(self.mode))
            .map_err(|e| Error::new(Step::Chmod, tmp, e))?;
        if self.durable {
            f.sync_all().map_err(|e| Error::new(Step::Fsync, tmp, e))?;
        }
        let (step, placed) = match place {
            Place::Rename => (Step::Rename, fs::rename(tmp, path)),
            Place::Link => match fs::hard_link(tmp, path) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
                r => (Step::Link, r),
            },
        };
        placed.map(|()| true).map_err(|e| Error {
            to: Some(path.to_path_buf()),
            ..Error::new(step, tmp, e)
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Rename,
    Link,
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temp file this process writes `path` through:
/// `<dir>/.<name>.tmp-<pid>`. None if `path` has no file name.
pub fn temp_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    Some(parent(path).join(format!(".{name}.tmp-{}", std::process::id())))
}

/// For a file name made by [`temp_path`]: the target's file name and the
/// writer's pid.
pub fn parse_temp(file_name: &str) -> Option<(&str, u32)> {
    let (target, pid) = file_name.strip_prefix('.')?.rsplit_once(".tmp-")?;
    Some((target, pid.parse().ok()?))
}

/// For a temp file name whose writer no longer exists: the target's file
/// name. A live writer may still rename its temp, so its temp is `None`.
pub fn dead_writer_temp(file_name: &str) -> Option<&str> {
    let (target, pid) = parse_temp(file_name)?;
    let alive = pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists();
    (!alive).then_some(target)
}

#[cfg(test)]
mod tests;
