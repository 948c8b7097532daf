//! The host-local store directory, byte-compatible with
//! containernetworking/plugins `host-local/backend/disk` (`backend.go`,
//! `lock.go`):
//! - `<ip>`: one file per allocated IP, created exclusively (host-local:
//!   `O_EXCL`; here: a complete temp file hard-linked into place), mode 0600,
//!   holding `<containerID>\r\n<ifname>` with no trailing newline (files
//!   written before host-local recorded ifnames hold only the ID);
//! - `last_reserved_ip.<rangeIndex>`: the IP most recently reserved from
//!   range set `i`, mode 0600, no newline;
//! - `lock`: held with flock(LOCK_EX) for a whole operation
//!   (go-filemutex opens it `O_CREAT|O_RDONLY`, mode 0750).
//!
//! Owners are compared as host-local does: the file's content with
//! surrounding whitespace trimmed against `<trimmed ID>\r\n<ifname>`, or
//! against the bare ID for old files.
//!
//! Damaged files (power loss, cni-plugin#43; a host-local killed between
//! its `O_EXCL` create and its write): **the file name is the
//! reservation**. A file whose content names no owner (zero bytes, cut
//! short, garbage: see [`Allocation::is_torn`]) keeps its IP reserved: ADD
//! never hands it out (the name exists). Whose it is can only come from
//! netboot's records: DEL releases the torn files at the IPs its record
//! says the attachment holds ([`Locked::release_torn`]), and GC repairs a
//! torn file a valid attachment's record claims, and releases one only
//! when no valid attachment could own it ([`Locked::release_invalid`]).

use super::allocation::{owner_key, Allocation, Claims, TornScope};
use super::error::IpamError;
use nix::fcntl::{openat, Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;
use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Temp files of in-flight reservations before [`atomicfile`]'s naming;
/// GC still sweeps those a killed writer left.
const LEGACY_RESERVE_TMP_PREFIX: &str = ".reserve-";
const LAST_IP_PREFIX: &str = "last_reserved_ip.";

/// Holds the store's `lock` file for as long as it lives.
pub struct Locked {
    dir: PathBuf,
    /// Records are opened relative to this (`openat`): with hundreds of
    /// pods every ADD reads every record, so the per-file cost matters.
    dir_fd: fs::File,
    _lock: Flock<fs::File>,
}

impl Locked {
    /// Takes the store lock, creating the directory (0755) and lock file as
    /// host-local would. Blocks while another writer, host-local included,
    /// holds it.
    pub fn open(dir: &Path) -> Result<Locked, IpamError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| IpamError::io(dir, e))?;
        let path = dir.join("lock");
        let file = fs::OpenOptions::new()
            // go-filemutex's O_CREAT|O_RDONLY: std's `create` would demand
            // write access, which flock does not need.
            .read(true)
            .custom_flags(nix::libc::O_CREAT)
            .mode(0o750)
            .open(&path)
            .map_err(|e| IpamError::io(&path, e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| IpamError::io(&path, io::Error::from(e)))?;
        let dir_fd = fs::File::open(dir).map_err(|e| IpamError::io(dir, e))?;
        Ok(Locked {
            dir: dir.to_path_buf(),
            dir_fd,
            _lock: lock,
        })
    }

    /// Every readable allocation file, sorted by IP; files whose names are
    /// not IPs are not allocations. A file that vanished or cannot be read
    /// is left out (and so left alone by GC), as host-local's walks do.
    /// Whether the file of `ip` holds exactly `<id>\r\n<ifname>`.
    pub(crate) fn is_exactly_held(&self, ip: IpAddr, container_id: &str, ifname: &str) -> bool {
        self.read_record(ip)
            .is_some_and(|c| Allocation::parse(ip, &c).is_exactly(container_id, ifname))
    }

    pub fn allocations(&self) -> Result<Vec<Allocation>, IpamError> {
        let mut out = Vec::new();
        for ip in ip_files(&self.dir)? {
            if let Some(content) = self.read_record(ip) {
                out.push(Allocation::parse(ip, &content));
            }
        }
        out.sort_by_key(|a| a.ip);
        Ok(out)
    }

    /// The content of `ip`'s file: one `openat` and usually one `read`
    /// (`fs::read` would add a path walk and a `statx`).
    fn read_record(&self, ip: IpAddr) -> Option<Vec<u8>> {
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        let fd = openat(&self.dir_fd, ip.to_string().as_str(), flags, Mode::empty()).ok()?;
        let mut file = fs::File::from(fd);
        let mut buf = [0u8; 256];
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => return Some(buf[..len].to_vec()),
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let mut content = buf.to_vec();
        file.read_to_end(&mut content).ok()?;
        Some(content)
    }

    /// GC: removes the allocations whose attachment is not in `valid`,
    /// and nothing a valid attachment may hold:
    /// - an IP a valid attachment's record claims is kept, and its file
    ///   rewritten if it was torn or cut short;
    /// - a file without an ifname is kept while its container has any
    ///   valid attachment (host-local's old format);
    /// - a torn file, or one that may be a valid attachment's cut short,
    ///   is kept while some valid attachment of its IP family is not
    ///   accounted for (no record naming its IPs, no intact file), since
    ///   it may be that one's; otherwise nobody valid can own it.
    ///
    /// Returns the released IPs.
    pub fn release_invalid(
        &self,
        valid: &[(String, String)],
        claims: &Claims,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let pairs: HashSet<(&str, &str)> =
            valid.iter().map(|(c, i)| (c.trim(), i.as_str())).collect();
        let ids: HashSet<&str> = valid.iter().map(|(c, _)| c.trim()).collect();
        let keys: Vec<String> = valid.iter().map(|(c, i)| owner_key(c, i)).collect();
        self.sweep_reserve_temps()?;
        let all = self.allocations()?;
        // (container, ifname, is IPv4) of valid attachments holding an
        // intact file.
        let intact: HashSet<(&str, &str, bool)> = all
            .iter()
            .filter(|a| !a.is_torn())
            .filter_map(|a| {
                Some((
                    a.container_id.as_str(),
                    a.ifname.as_deref()?,
                    a.ip.is_ipv4(),
                ))
            })
            .filter(|(c, i, _)| pairs.contains(&(*c, *i)))
            .collect();
        let unaccounted = |v4: bool| {
            valid.iter().any(|(c, i)| {
                !claims.known.contains(&(c.clone(), i.clone()))
                    && !intact.contains(&(c.trim(), i.as_str(), v4))
            })
        };
        let mut released = Vec::new();
        for a in &all {
            if let Some((c, i)) = claims.ips.get(&a.ip) {
                let key = owner_key(c, i);
                if a.is_torn() || a.may_be_cut_from(&key) {
                    self.rewrite(a.ip, &key)?;
                }
                continue;
            }
            let alive = match &a.ifname {
                Some(ifname) => pairs.contains(&(a.container_id.as_str(), ifname.as_str())),
                None => ids.contains(a.container_id.as_str()),
            };
            if alive {
                continue;
            }
            let maybe_valid = a.is_torn() || keys.iter().any(|k| a.may_be_cut_from(k));
            if maybe_valid && unaccounted(a.ip.is_ipv4()) {
                continue;
            }
            if self.remove(a.ip)? {
                released.push(a.ip);
            }
        }
        Ok(released)
    }

    /// DEL: removes the files in `scope` that are torn or cut short from
    /// the attachment's own owner key, unless `claimed_elsewhere` says
    /// another attachment's record names that IP. Intact files are left to
    /// [`Locked::release_owner`]. Under the store lock no live writer is
    /// halfway through a file, so a torn one is a dead writer's.
    pub(crate) fn release_torn(
        &self,
        container_id: &str,
        ifname: &str,
        scope: TornScope<'_>,
        claimed_elsewhere: &mut dyn FnMut(IpAddr) -> bool,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let key = owner_key(container_id, ifname);
        let ips: Vec<IpAddr> = match scope {
            TornScope::At(ips) => ips.to_vec(),
            TornScope::WrittenSince(since) => ip_files(&self.dir)?
                .into_iter()
                .filter(|ip| {
                    fs::metadata(self.dir.join(ip.to_string()))
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t >= since)
                })
                .collect(),
        };
        let mut released = Vec::new();
        for ip in &ips {
            let Some(content) = self.read_record(*ip) else {
                continue;
            };
            let a = Allocation::parse(*ip, &content);
            let ours = a.is_torn() || a.may_be_cut_from(&key);
            if ours && !claimed_elsewhere(*ip) && self.remove(*ip)? {
                released.push(*ip);
            }
        }
        Ok(released)
    }

    /// Replaces the content of `ip`'s file with `key` (temp file + rename:
    /// the name, hence the reservation, exists throughout).
    fn rewrite(&self, ip: IpAddr, key: &str) -> Result<(), IpamError> {
        let path = self.dir.join(ip.to_string());
        atomicfile::Options::new()
            .replace(&path, key.as_bytes())
            .map_err(|e| IpamError::io(&path, e.into()))
    }

    /// Reserves `ip` for `key`: the owner is written to a private temp file
    /// which is then hard-linked into place ([`atomicfile`]'s create-new).
    /// `link(2)` fails if the name exists, so this has host-local's
    /// `O_EXCL` semantics, and the IP file appears with its owner already
    /// in it: a SIGKILL at any point leaves either no IP file or a complete
    /// one (plus, at worst, a temp file that is not an IP name, ignored by
    /// allocation and swept by GC). Returns false when the IP is taken.
    ///
    /// Not fsynced, like host-local's own files: after a power loss a file
    /// may come back empty, which ADD never hands out and GC reclaims. Pods
    /// do not survive a power loss either, so nothing else is at stake, and
    /// every ADD saves a disk flush.
    pub(crate) fn reserve(&self, ip: IpAddr, key: &str) -> Result<bool, IpamError> {
        let path = self.dir.join(ip.to_string());
        atomicfile::Options::new()
            .create_new(&path, key.as_bytes())
            .map_err(|e| IpamError::io(&path, e.into()))
    }

    /// Removes reservation temp files whose writer is dead (killed between
    /// writing and linking), and those of netboot-cni versions that named
    /// them `.reserve-<pid>-<ip>`. Called by GC under the lock.
    pub(crate) fn sweep_reserve_temps(&self) -> Result<(), IpamError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| IpamError::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let legacy = name.strip_prefix(LEGACY_RESERVE_TMP_PREFIX).map(|rest| {
                let pid = rest.split('-').next().unwrap_or("");
                pid.is_empty() || !Path::new("/proc").join(pid).exists()
            });
            if legacy.unwrap_or(false) || atomicfile::dead_writer_temp(&name).is_some() {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    /// `last_reserved_ip.<range>`, if present and an IP. Anything else
    /// (missing, torn) means "no round-robin hint", as in host-local.
    pub(crate) fn last_reserved(&self, range: usize) -> Option<IpAddr> {
        let text = fs::read_to_string(self.dir.join(format!("{LAST_IP_PREFIX}{range}"))).ok()?;
        text.parse().ok()
    }

    /// Records the round-robin position: the same file and content as
    /// host-local's `os.WriteFile` (0600), but overwritten in place and then
    /// cut to length rather than truncated to empty first. Truncating to
    /// empty frees the file's data block and the write allocates a new one:
    /// ext4 with `discard` (and no journal) discards the freed block
    /// synchronously, a disk wait on every ADD. Readers hold the store lock,
    /// so they never see the file between the two steps. Not fsynced: a
    /// lost, torn or (killed between the steps) mixed hint only moves where
    /// the walk for a free IP starts.
    pub(crate) fn set_last_reserved(&self, range: usize, ip: IpAddr) -> Result<(), IpamError> {
        let path = self.dir.join(format!("{LAST_IP_PREFIX}{range}"));
        let text = ip.to_string();
        crate::private_file::open(&path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.set_len(text.len() as u64)
            })
            .map_err(|e| IpamError::io(&path, e))
    }

    /// Deletes the file of `ip`; false if it was already gone.
    pub(crate) fn remove(&self, ip: IpAddr) -> Result<bool, IpamError> {
        let path = self.dir.join(ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(IpamError::io(&path, e)),
        }
    }

    /// host-local `ReleaseByID`: the files of exactly (id, ifname); only
    /// when there are none, the old ID-only files of `container_id`.
    pub(crate) fn release_owner(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<IpAddr>, IpamError> {
        let all = self.allocations()?;
        let mut mine: Vec<IpAddr> = all
            .iter()
            .filter(|a| a.is_exactly(container_id, ifname))
            .map(|a| a.ip)
            .collect();
        if mine.is_empty() {
            mine = all
                .iter()
                .filter(|a| a.is_legacy_of(container_id))
                .map(|a| a.ip)
                .collect();
        }
        let mut released = Vec::new();
        for ip in mine {
            if self.remove(ip)? {
                released.push(ip);
            }
        }
        Ok(released)
    }
}

/// The IPs named by files in `dir` (no lock needed: a snapshot).
pub(crate) fn ip_files(dir: &Path) -> Result<Vec<IpAddr>, IpamError> {
    let entries = fs::read_dir(dir).map_err(|e| IpamError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| IpamError::io(dir, e))?;
        if let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "test_store.rs"]
mod tests;
