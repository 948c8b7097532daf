//! The record directory of one `dataDir`: records and flannel's scratch
//! files, each written durably (see the module docs of `record`).

use super::Record;
use crate::ipam::Claims;
use serde::Deserialize;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const RECORD_DIR: &str = ".netboot";

/// The record directory of one `dataDir`.
#[derive(Debug, Clone)]
pub struct Store {
    data_dir: PathBuf,
}

impl Store {
    pub fn new(data_dir: &Path) -> Store {
        Store {
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub(super) fn record_dir(&self) -> PathBuf {
        self.data_dir.join(RECORD_DIR)
    }

    /// Callers pass validated IDs and ifnames (see `cni::args`), which can
    /// contain neither `/` nor `@`.
    fn record_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.record_dir()
            .join(format!("{container_id}@{ifname}.json"))
    }

    /// The note of a delegate running for the attachment
    /// ([`crate::inflight`]); a dot file, so never taken for a record.
    pub fn inflight_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.record_dir()
            .join(format!(".{container_id}@{ifname}.inflight"))
    }

    /// Stops a delegate a killed netboot-cni left running for the
    /// attachment, if any ([`crate::inflight::reap`]).
    pub fn reap_inflight(&self, container_id: &str, ifname: &str) -> io::Result<Option<u32>> {
        crate::inflight::reap(&self.inflight_path(container_id, ifname))
    }

    /// flannel's scratch file for a container.
    pub fn flannel_path(&self, container_id: &str) -> PathBuf {
        self.data_dir.join(container_id)
    }

    /// Saves a record durably (fsynced): used before any delegate runs.
    pub fn save(&self, rec: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec(rec).map_err(io::Error::other)?;
        write_synced(&self.record_path(&rec.container_id, &rec.ifname), &bytes)
    }

    /// Saves a record atomically but without waiting for the disk. For the
    /// final result only: if a power loss drops it, the durable intent
    /// record (or a torn file, which readers tolerate) still lets DEL and GC
    /// undo everything; it saves two fsyncs on every ADD.
    pub fn save_final(&self, rec: &Record) -> io::Result<()> {
        let bytes = serde_json::to_vec(rec).map_err(io::Error::other)?;
        write_atomic(
            &self.record_path(&rec.container_id, &rec.ifname),
            &bytes,
            false,
        )
    }

    /// Loads a record. A missing file is `Ok(None)`; an empty or torn file
    /// (written by something without our fsync discipline) is reported as
    /// an error the caller may choose to tolerate.
    pub fn load(&self, container_id: &str, ifname: &str) -> io::Result<Option<Record>> {
        read_json(&self.record_path(container_id, ifname))
    }

    /// When `rec`'s file was last written, if it is on disk (a record
    /// rebuilt by DEL is not).
    pub fn saved_at(&self, rec: &Record) -> Option<std::time::SystemTime> {
        fs::metadata(self.record_path(&rec.container_id, &rec.ifname))
            .and_then(|m| m.modified())
            .ok()
    }

    pub fn remove(&self, container_id: &str, ifname: &str) -> io::Result<()> {
        remove_with_dead_temps(&self.record_path(container_id, ifname))
    }

    /// [`Store::remove`] of the record of an ADD that finished: no writer
    /// of it died halfway (the final result was renamed into place), so
    /// there is no temp file to look for, and the record directory (one
    /// entry per attachment on the node) is not listed. DEL's common case.
    pub fn remove_finished(&self, container_id: &str, ifname: &str) -> io::Result<()> {
        remove_if_present(&self.record_path(container_id, ifname))
    }

    /// Removes the temp files of writers that died before their rename (a
    /// SIGKILLed ADD), in the record directory and in `dataDir` (flannel
    /// scratch files). Temp files of live processes are left alone, so this
    /// is safe beside a running ADD. For GC.
    pub fn remove_dead_temps(&self) -> io::Result<()> {
        for dir in [self.record_dir(), self.data_dir.clone()] {
            for entry in read_dir_if_present(&dir)? {
                let name = entry?.file_name().to_string_lossy().into_owned();
                let path = dir.join(&name);
                let dead_note = name.starts_with('.')
                    && name.ends_with(".inflight")
                    && crate::inflight::is_stale(&path);
                if atomicfile::dead_writer_temp(&name).is_some() || dead_note {
                    remove_if_present(&path)?;
                }
            }
        }
        Ok(())
    }

    pub fn save_flannel(&self, container_id: &str, conf: &[u8]) -> io::Result<()> {
        write_synced(&self.flannel_path(container_id), conf)
    }

    /// [`Store::save_flannel`] without waiting for the disk: native mode's
    /// scratch file only serves a hand-over to the upstream plugin (the
    /// record stays the truth), and after a power loss its pod is gone.
    pub fn save_flannel_lazy(&self, container_id: &str, conf: &[u8]) -> io::Result<()> {
        write_atomic(&self.flannel_path(container_id), conf, false)
    }

    pub fn load_flannel(&self, container_id: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.flannel_path(container_id)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn remove_flannel(&self, container_id: &str) -> io::Result<()> {
        remove_with_dead_temps(&self.flannel_path(container_id))
    }

    /// [`Store::remove_flannel`] for a container whose ADD finished (see
    /// [`Store::remove_finished`]): no listing of `dataDir`.
    pub fn remove_flannel_finished(&self, container_id: &str) -> io::Result<()> {
        remove_if_present(&self.flannel_path(container_id))
    }

    /// (containerID, ifname, path) of every record file, by name only.
    fn record_files(&self) -> io::Result<Vec<(String, String, PathBuf)>> {
        let mut out = Vec::new();
        for entry in read_dir_if_present(&self.record_dir())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((cid, ifname)) = name.strip_suffix(".json").and_then(|s| s.split_once('@'))
            {
                out.push((cid.to_string(), ifname.to_string(), entry.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every record in the store, for GC. Unreadable records are returned
    /// as `Err` with their (containerID, ifname) when the name tells it.
    pub fn list(&self) -> io::Result<Vec<(String, String, io::Result<Record>)>> {
        Ok(self
            .record_files()?
            .into_iter()
            .map(|(cid, ifname, path)| {
                let rec = read_json(&path).and_then(|r| {
                    r.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "vanished"))
                });
                (cid, ifname, rec)
            })
            .collect())
    }

    /// What the readable records of `valid` attachments claim, for GC's
    /// IPAM sweep ([`crate::ipam::Locked::release_invalid`]).
    pub fn claims_of(&self, valid: &HashSet<(&str, &str)>) -> io::Result<Claims> {
        let mut claims = Claims::default();
        for (cid, ifname, rec) in self.list()? {
            if !valid.contains(&(cid.as_str(), ifname.as_str())) {
                continue;
            }
            let ips = rec.map(|r| r.result_ips()).unwrap_or_default();
            if ips.is_empty() {
                continue;
            }
            claims.known.insert((cid.clone(), ifname.clone()));
            for ip in ips {
                claims.ips.insert(ip, (cid.clone(), ifname.clone()));
            }
        }
        Ok(claims)
    }

    /// The IPs the readable records of every attachment but (container_id,
    /// ifname) claim: what DEL must not release even when torn.
    pub fn claimed_except(&self, container_id: &str, ifname: &str) -> io::Result<HashSet<IpAddr>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|(c, i, _)| (c.as_str(), i.as_str()) != (container_id, ifname))
            .filter_map(|(_, _, rec)| rec.ok())
            .flat_map(|r| r.result_ips())
            .collect())
    }

    /// The ifnames `container_id` has records for (names only, no parsing).
    pub fn ifnames_of(&self, container_id: &str) -> io::Result<Vec<String>> {
        // One pass over the names, no sort and no copy of the others':
        // DEL asks this with one record per pod in the directory.
        let prefix = format!("{container_id}@");
        let mut out = Vec::new();
        for entry in read_dir_if_present(&self.record_dir())? {
            let name = entry?.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if let Some(ifname) = rest.strip_suffix(".json") {
                out.push(ifname.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Container IDs that have a flannel scratch file, for GC.
    pub fn list_flannel(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in read_dir_if_present(&self.data_dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && cni::args::validate_container_id(&name).is_ok() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A directory's entries; a missing directory has none.
fn read_dir_if_present(dir: &Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(d) => Ok(d.collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is damaged ({} bytes): {e}", path.display(), bytes.len()),
        )
    })
}

pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes `path` and the temp files a dead writer of it left behind
/// (`.<name>.tmp-<pid>`, see [`atomicfile`]): a writer killed between
/// create and rename leaves one, and nothing else would ever remove it.
fn remove_with_dead_temps(path: &Path) -> io::Result<()> {
    remove_if_present(path)?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let name = name.to_string_lossy();
    for entry in read_dir_if_present(dir)? {
        let temp = entry?.file_name().to_string_lossy().into_owned();
        if atomicfile::dead_writer_temp(&temp) == Some(&*name) {
            remove_if_present(&dir.join(&temp))?;
        }
    }
    Ok(())
}

/// Atomically replaces `path` with `data`, durable once this returns.
/// Directories are created 0700 and files 0600: records hold network
/// configuration that only root should read.
pub fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic(path, data, true)
}

/// [`atomicfile`]'s write in a directory created 0700 if missing; its
/// `.<name>.tmp-<pid>` temps are what [`Store::remove_dead_temps`] sweeps.
fn write_atomic(path: &Path, data: &[u8], durable: bool) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    crate::private_file::create_dir(dir)?;
    atomicfile::Options::new()
        .durable(durable)
        .mode(0o600)
        .replace(path, data)?;
    Ok(())
}

#[cfg(test)]
#[path = "test_store.rs"]
mod tests;
