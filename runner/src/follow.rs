//! Following a pod's log files: `run --attach` streams its containers'
//! output, `exec` the output of its process, `logs` reads what is kept.
//! Each stream is a file the log driver rotates (see [`crate::logdriver`]).

use std::cell::Cell;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::ctx::Ctx;
use crate::state::PodRecord;

/// `run --attach`: streams the containers' stdout to stdout and stderr
/// to stderr (from their log files) until every app container's task has
/// stopped (or, with `until`, until it is set: the supervisor is done),
/// then returns the first non-zero exit code in spec order (0 if all
/// succeeded). The pod stays, as after a detached run; `rm` it.
pub async fn attach(ctx: &Ctx, rec: &PodRecord, until: Option<&Cell<bool>>) -> Result<i32> {
    let pod = &rec.spec.name;
    let mut offsets = vec![(Cursor::default(), Cursor::default()); rec.spec.containers.len()];
    let mut last_round = false;
    loop {
        let mut codes = Vec::new();
        for (i, c) in rec.spec.containers.iter().enumerate() {
            match ctx.ctrd.task_state(&rec.container_ids[i], "").await? {
                Some(s) if s.running => {}
                Some(s) => codes.push(s.exit_status),
                None => codes.push(0),
            }
            let (o, e) = &mut offsets[i];
            copy_new(
                &ctx.store.log_path(pod, &c.name, "stdout"),
                o,
                &mut std::io::stdout(),
            )?;
            copy_new(
                &ctx.store.log_path(pod, &c.name, "stderr"),
                e,
                &mut std::io::stderr(),
            )?;
        }
        if last_round {
            return Ok(codes.iter().find(|c| **c != 0).copied().unwrap_or(0) as i32);
        }
        // One more round after the last exit: the log drivers drain
        // what was left in the pipes.
        last_round = match until {
            Some(done) => done.get(),
            None => codes.len() == rec.spec.containers.len(),
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A stream's rotated files and its current one, oldest first. All are
/// opened before any is read: an open file keeps its content through a
/// rotation (a rename), so a rotation while reading cannot make a file's
/// content appear twice or vanish, only (for the files opened after it)
/// start one file later.
pub fn read_rotated(path: &Path) -> Result<Vec<u8>> {
    let mut files = Vec::new();
    for p in crate::logdriver::stream_files(path) {
        match fs::File::open(&p) {
            Ok(f) => files.push(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("open {}", p.display())),
        }
    }
    let mut out = Vec::new();
    for mut f in files {
        f.read_to_end(&mut out)?;
    }
    Ok(out)
}

/// Where a follower of one stream is: the current file's inode and the
/// offset read up to in it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    ino: Option<u64>,
    offset: u64,
}

/// Copies what was appended to the stream at `path` since `cursor`. When
/// the file was rotated since (another inode now), the rest of the old
/// one is read from `PATH.1` first, where rotation renamed it (a file
/// rotated twice between two calls is skipped).
pub fn copy_new(path: &Path, cursor: &mut Cursor, out: &mut impl Write) -> Result<()> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(());
    };
    if cursor.ino.is_some_and(|ino| ino != meta.ino()) {
        let old = crate::logdriver::rotated_path(path, 1);
        if fs::metadata(&old).is_ok_and(|m| Some(m.ino()) == cursor.ino) {
            copy_from(&old, cursor.offset, out)?;
        }
        cursor.offset = 0;
    }
    cursor.ino = Some(meta.ino());
    cursor.offset += copy_from(path, cursor.offset, out)?;
    Ok(())
}

/// Copies `path` from `offset` to its end; returns how much.
fn copy_from(path: &Path, offset: u64, out: &mut impl Write) -> Result<u64> {
    let Ok(mut f) = fs::File::open(path) else {
        return Ok(0);
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    if !data.is_empty() {
        out.write_all(&data)?;
        out.flush()?;
    }
    Ok(data.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logdriver::{rotated_path, Rotate, RotatingFile};

    /// A follower (`run --attach`, `exec`) reads every byte once across a
    /// rotation between two polls.
    #[test]
    fn follower_reads_on_across_a_rotation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.stdout");
        let r = Rotate {
            max_size: 10,
            max_files: 3,
        };
        let mut f = RotatingFile::open(&path, Some(r)).unwrap();
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        f.write_all(b"0123").unwrap();
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123");
        // Fills the file (10 bytes), rotates it to .1, starts a new one.
        f.write_all(b"456789abc").unwrap();
        assert!(rotated_path(&path, 1).exists());
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123456789abc");
        f.write_all(b"de").unwrap();
        copy_new(&path, &mut cursor, &mut seen).unwrap();
        assert_eq!(seen, b"0123456789abcde");
        // `logs` reads what is kept, in order.
        assert_eq!(read_rotated(&path).unwrap(), b"0123456789abcde");
    }
}
