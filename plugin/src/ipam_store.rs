//! The host-local IPAM store (`/var/lib/cni/networks/<network>/`), as
//! containernetworking/plugins `ipam/host-local/backend/disk` lays it out:
//! one file per allocated IP holding `<containerID>\r\n<ifname>` (older
//! files: just the ID), `last_reserved_ip.<range>` files, and a `lock`
//! file that every writer holds with flock(LOCK_EX).
//!
//! host-local has no GC (plugins#1047), which is how nodes run out of IPs
//! after a reboot or a runtime switch (plugins#252). netboot-cni's GC
//! reclaims here the allocations of attachments the runtime no longer has.

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The store directory host-local uses for `network` with this IPAM config.
pub fn store_dir(ipam: &Map<String, Value>, network: &str) -> PathBuf {
    let base = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_DATA_DIR);
    Path::new(base).join(network)
}

/// One allocation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    pub container_id: String,
    /// None for files written by host-local before it recorded ifnames.
    pub ifname: Option<String>,
}

/// Holds the store's `lock` file for as long as it lives.
pub struct Locked {
    dir: PathBuf,
    _lock: Flock<fs::File>,
}

impl Locked {
    /// Takes the store lock, creating the directory and lock file as
    /// host-local would.
    pub fn open(dir: &Path) -> io::Result<Locked> {
        fs::create_dir_all(dir)?;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        let lock =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
        Ok(Locked {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// Every allocation file; files that are not IPs are skipped.
    pub fn allocations(&self) -> io::Result<Vec<Allocation>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(ip) = name.parse::<IpAddr>() else {
                continue;
            };
            let text = fs::read_to_string(entry.path()).unwrap_or_default();
            let mut lines = text.split("\r\n");
            let container_id = lines.next().unwrap_or("").trim().to_string();
            let ifname = lines
                .next()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
            out.push(Allocation {
                ip,
                container_id,
                ifname,
            });
        }
        out.sort_by_key(|a| a.ip);
        Ok(out)
    }

    /// Removes the allocations whose attachment is not in `valid`. A file
    /// without an ifname is kept while its container has any attachment;
    /// an empty (torn) file is reclaimed, since no live attachment can be
    /// proven to own it. Returns the released IPs.
    pub fn release_invalid(&self, valid: &[(String, String)]) -> io::Result<Vec<IpAddr>> {
        let pairs: HashSet<(&str, &str)> = valid
            .iter()
            .map(|(c, i)| (c.as_str(), i.as_str()))
            .collect();
        let ids: HashSet<&str> = valid.iter().map(|(c, _)| c.as_str()).collect();
        let mut released = Vec::new();
        for a in self.allocations()? {
            let alive = match &a.ifname {
                Some(ifname) => pairs.contains(&(a.container_id.as_str(), ifname.as_str())),
                None => ids.contains(a.container_id.as_str()),
            };
            if !alive {
                match fs::remove_file(self.dir.join(a.ip.to_string())) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => released.push(a.ip),
                }
            }
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gc_keeps_valid_and_releases_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("10.2.1.2"), "live\r\neth0").unwrap();
        fs::write(d.join("10.2.1.3"), "dead\r\neth0").unwrap();
        fs::write(d.join("10.2.1.4"), "live\r\nnet1").unwrap();
        fs::write(d.join("10.2.1.5"), "live").unwrap();
        fs::write(d.join("10.2.1.6"), "").unwrap();
        fs::write(d.join("last_reserved_ip.0"), "10.2.1.6").unwrap();
        let store = Locked::open(d).unwrap();
        let released = store
            .release_invalid(&[("live".to_string(), "eth0".to_string())])
            .unwrap();
        let released: Vec<String> = released.iter().map(|i| i.to_string()).collect();
        assert_eq!(released, vec!["10.2.1.3", "10.2.1.4", "10.2.1.6"]);
        assert!(d.join("10.2.1.2").exists());
        assert!(
            d.join("10.2.1.5").exists(),
            "legacy file of a live container is kept"
        );
        assert!(d.join("last_reserved_ip.0").exists());
        assert!(d.join("lock").exists());
    }

    #[test]
    fn store_dir_follows_ipam_data_dir() {
        let mut ipam = Map::new();
        assert_eq!(
            store_dir(&ipam, "cbr0"),
            Path::new("/var/lib/cni/networks/cbr0")
        );
        ipam.insert("dataDir".into(), Value::String("/tmp/x".into()));
        assert_eq!(store_dir(&ipam, "cbr0"), Path::new("/tmp/x/cbr0"));
    }
}
