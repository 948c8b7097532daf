//! `podrun log-driver BASE`: the logging binary the runc shim starts for
//! each container and exec (containerd's `binary://` IO scheme). The shim
//! hands it the process's stdout and stderr pipes as fds 3 and 4 and
//! waits on fd 5 until it is ready; it appends them to `BASE.stdout` and
//! `BASE.stderr`, rotating them at `--log-max-size` (see [`Rotate`]). containerd 1.6's `file://` scheme cannot do this: it
//! writes both streams into the stdout file.
//!
//! It reads until both pipes are at EOF. The shim sends SIGTERM when it
//! closes the process's IO (task or exec delete) and waits for the exit:
//! SIGTERM is blocked so that nothing still in the pipes is lost.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};

/// Log rotation of one stream's file: `BASE.stdout` is renamed to
/// `BASE.stdout.1` (`.1` to `.2`, ...) when writing more would take it over
/// `max_size`; `max_files` counts the file being written, as kubelet's
/// `containerLogMaxFiles` does, so `.1` ... `.<max_files - 1>` are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotate {
    pub max_size: u64,
    pub max_files: u32,
}

/// The `binary://` URI that makes the shim run `podrun log-driver BASE`
/// (the query's single key/value become its arguments), without rotation
/// (exec output, read and removed by `podrun exec`).
pub fn uri(podrun: &Path, base: &Path) -> String {
    format!(
        "binary://{}?log-driver={}",
        escape(&podrun.display().to_string()),
        escape(&base.display().to_string())
    )
}

/// Like [`uri`], with rotation: the argument becomes `SIZE:FILES:BASE`.
/// One query key only: the shim passes the keys in Go map order, so a
/// second key could come first.
pub fn uri_rotated(podrun: &Path, base: &Path, r: Rotate) -> String {
    format!(
        "binary://{}?log-driver={}",
        escape(&podrun.display().to_string()),
        escape(&format!(
            "{}:{}:{}",
            r.max_size,
            r.max_files,
            base.display()
        ))
    )
}

/// The log driver's argument: an absolute `BASE`, or `SIZE:FILES:BASE`.
pub fn parse_arg(arg: &str) -> Result<(PathBuf, Option<Rotate>)> {
    if arg.starts_with('/') {
        return Ok((PathBuf::from(arg), None));
    }
    let mut parts = arg.splitn(3, ':');
    let (Some(size), Some(files), Some(base)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("log driver argument {arg:?} is neither BASE nor SIZE:FILES:BASE");
    };
    let r = Rotate {
        max_size: size.parse().context("log driver max size")?,
        max_files: files.parse().context("log driver max files")?,
    };
    if r.max_size == 0 || r.max_files < 2 || !base.starts_with('/') {
        bail!("log driver argument {arg:?}: bad size, file count or base");
    }
    Ok((PathBuf::from(base), Some(r)))
}

/// Percent-encoding for a URI path or query value (Go's url parser
/// decodes it back).
fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `BASE.stream`.
pub fn stream_path(base: &Path, stream: &str) -> PathBuf {
    base.with_file_name(format!(
        "{}.{stream}",
        base.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// `PATH.n` (a rotated file; `n` = 1 is the newest).
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    path.with_file_name(format!(
        "{}.{n}",
        path.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// The files of one stream, oldest first: `PATH.k`, ..., `PATH.1`, `PATH`
/// (those that exist).
pub fn stream_files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut n = 1;
    while rotated_path(path, n).exists() {
        out.push(rotated_path(path, n));
        n += 1;
    }
    out.reverse();
    if path.exists() {
        out.push(path.to_owned());
    }
    out
}

/// An append-only log file that rotates at a size limit, never letting a
/// file exceed it: a write that does not fit is split, so the files of a
/// stream, read in order, are exactly what the process wrote (minus what
/// rotation dropped at the old end).
pub struct RotatingFile {
    path: PathBuf,
    rotate: Option<Rotate>,
    file: File,
    size: u64,
}

impl RotatingFile {
    pub fn open(path: &Path, rotate: Option<Rotate>) -> Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_owned(),
            rotate,
            file,
            size,
        })
    }

    /// `.1` → `.2`, ..., the current file → `.1`, the oldest dropped; then
    /// a new current file.
    fn rotate(&mut self, r: Rotate) -> Result<()> {
        let last = r.max_files - 1;
        remove_if_exists(&rotated_path(&self.path, last))?;
        for n in (1..last).rev() {
            rename_if_exists(
                &rotated_path(&self.path, n),
                &rotated_path(&self.path, n + 1),
            )?;
        }
        rename_if_exists(&self.path, &rotated_path(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }

    pub fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            let n = match self.rotate {
                Some(r) => {
                    if self.size >= r.max_size {
                        self.rotate(r)?;
                    }
                    buf.len().min((r.max_size - self.size) as usize)
                }
                None => buf.len(),
            };
            self.file
                .write_all(&buf[..n])
                .with_context(|| format!("write {}", self.path.display()))?;
            self.size += n as u64;
            buf = &buf[n..];
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("open {}", path.display()))
}

fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", p.display()))
        }
        _ => Ok(()),
    }
}

fn rename_if_exists(from: &Path, to: &Path) -> Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("rename {} to {}", from.display(), to.display()))
        }
        _ => Ok(()),
    }
}

/// Copies `pipe` into `out` until EOF.
fn pump(mut pipe: impl Read, out: &mut RotatingFile) -> Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read the process's pipe"),
        };
        out.write_all(&buf[..n])?;
    }
}

pub fn run(arg: &str) -> Result<()> {
    // Before any thread exists, so that every thread inherits the mask.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block().context("block SIGTERM")?;
    let (base, rotate) = parse_arg(arg)?;
    let mut copies = Vec::new();
    for (fd, stream) in [(3, "stdout"), (4, "stderr")] {
        // Reopening the inherited pipe through /proc needs no unsafe.
        let pipe = File::open(format!("/proc/self/fd/{fd}"))
            .with_context(|| format!("fd {fd} from the shim"))?;
        let mut out = RotatingFile::open(&stream_path(&base, stream), rotate)?;
        copies.push(std::thread::spawn(move || pump(pipe, &mut out)));
    }
    // Ready: the shim reads one byte (or EOF) from its end of fd 5.
    OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/5")
        .and_then(|mut f| f.write_all(b"1"))
        .context("signal ready on fd 5")?;
    let mut first_err = None;
    for c in copies {
        if let Ok(Err(e)) = c.join() {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_paths() {
        assert_eq!(
            uri(
                Path::new("/usr/bin/podrun"),
                Path::new("/var/lib/p d/logs/c")
            ),
            "binary:///usr/bin/podrun?log-driver=/var/lib/p%20d/logs/c"
        );
        let r = Rotate {
            max_size: 4096,
            max_files: 3,
        };
        let u = uri_rotated(Path::new("/bin/podrun"), Path::new("/s/a:b/c"), r);
        assert_eq!(u, "binary:///bin/podrun?log-driver=4096%3A3%3A/s/a%3Ab/c");
        assert_eq!(
            parse_arg("4096:3:/s/a:b/c").unwrap(),
            (PathBuf::from("/s/a:b/c"), Some(r))
        );
        assert_eq!(parse_arg("/s/x").unwrap(), (PathBuf::from("/s/x"), None));
        for bad in ["x", "0:3:/b", "10:1:/b", "10:3:rel", "a:3:/b"] {
            assert!(parse_arg(bad).is_err(), "{bad}");
        }
    }

    fn read_stream(path: &Path) -> Vec<u8> {
        stream_files(path)
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect()
    }

    #[test]
    fn rotation_keeps_max_files_of_at_most_max_size_in_order() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.stdout");
        let r = Rotate {
            max_size: 100,
            max_files: 3,
        };
        let mut f = RotatingFile::open(&path, Some(r)).unwrap();
        let mut all = Vec::new();
        // Writes of every size: smaller than, equal to and over the limit.
        for (i, len) in [1usize, 40, 100, 250, 7, 99, 3].iter().enumerate() {
            let chunk: Vec<u8> = (0..*len).map(|j| b'a' + ((i + j) % 26) as u8).collect();
            f.write_all(&chunk).unwrap();
            all.extend_from_slice(&chunk);
        }
        let files = stream_files(&path);
        assert_eq!(
            files,
            [rotated_path(&path, 2), rotated_path(&path, 1), path.clone()]
        );
        for p in &files {
            assert!(std::fs::metadata(p).unwrap().len() <= 100, "{p:?}");
        }
        assert!(!rotated_path(&path, 3).exists());
        let kept = read_stream(&path);
        // Every file but the current one is full (rotation happens at the
        // next write, so the current one holds 1-100 bytes); what is kept
        // is the end of what was written, byte for byte.
        assert_eq!(kept.len(), 200 + ((all.len() - 1) % 100 + 1));
        assert_eq!(&all[all.len() - kept.len()..], &kept[..]);
        // Reopened (a new log driver for the same stream), it continues.
        drop(f);
        let mut f = RotatingFile::open(&path, Some(r)).unwrap();
        f.write_all(b"xyz").unwrap();
        all.extend_from_slice(b"xyz");
        let kept = read_stream(&path);
        assert_eq!(&all[all.len() - kept.len()..], &kept[..]);
    }

    #[test]
    fn without_rotation_one_file_grows() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("e.stderr");
        let mut f = RotatingFile::open(&path, None).unwrap();
        f.write_all(&[b'x'; 5000]).unwrap();
        assert_eq!(stream_files(&path), std::slice::from_ref(&path));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 5000);
    }
}
