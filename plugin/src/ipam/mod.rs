//! Native IPAM: host-local's allocator and its store
//! (`/var/lib/cni/networks/<network>/`), in-process.
//!
//! The on-disk format and the allocation order are host-local's
//! (containernetworking/plugins `plugins/ipam/host-local`), so a node can
//! switch between the reference `bridge`+`host-local` chain and netboot-cni
//! native mode mid-life: both take the same `lock`, both create IP files
//! with `O_EXCL`, and both continue the same `last_reserved_ip.<i>`
//! round-robin. See [`store`] for the layout.
//!
//! host-local has no GC (plugins#1047), which is how nodes run out of IPs
//! after a reboot or a runtime switch (plugins#252); [`Pool::release_invalid`]
//! reclaims the allocations of attachments the runtime no longer has.
//!
//! Crash safety: an allocation writes the owner to a temp file and
//! hard-links it to the IP's name (exclusive, like `O_EXCL`), then writes
//! `last_reserved_ip`; a release is one unlink. A SIGKILL anywhere leaves
//! either no IP file or a complete one. A power loss (nothing is fsynced,
//! as in host-local) or a host-local killed between its create and its
//! write can leave a torn one: its name still reserves the IP, ADD never
//! hands it out, DEL releases it when the attachment's record names the
//! IP, and GC repairs or reclaims it (see [`store`]). Nothing holds an IP
//! outside that directory, so nothing can leak beyond GC's reach.

mod allocation;
mod error;
mod range;
pub mod store;

#[cfg(test)]
mod test_interop;
#[cfg(test)]
mod test_pool;
#[cfg(test)]
mod test_procs;

pub use allocation::{Allocation, Claims, TornScope};
pub use error::IpamError;
pub use range::{default_gateway, RangeSpec};
pub use store::Locked;

use range::Range;
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The store directory host-local uses for `network` with this IPAM config
/// (`ipam.dataDir`, default `/var/lib/cni/networks`).
pub fn store_dir(ipam: &Map<String, Value>, network: &str) -> PathBuf {
    let base = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_DATA_DIR);
    Path::new(base).join(network)
}

/// One address handed out by [`Pool::allocate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocated {
    pub ip: IpAddr,
    /// The subnet's prefix length (the address is `ip/prefix`).
    pub prefix: u8,
    pub gateway: IpAddr,
}

/// A host-local store directory and the ranges allocated from it, one per
/// host-local range set (index `i` keeps `last_reserved_ip.<i>`), so the
/// order must match the `ipam.ranges` of an equivalent host-local config.
#[derive(Debug, Clone)]
pub struct Pool {
    dir: PathBuf,
    ranges: Vec<Range>,
}

impl Pool {
    /// Validates every range (see [`RangeSpec`]) and that no two overlap.
    pub fn new(store_dir: PathBuf, ranges: Vec<RangeSpec>) -> Result<Pool, IpamError> {
        if ranges.is_empty() {
            return Err(IpamError::Invalid("no IP ranges specified".into()));
        }
        let ranges = ranges
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                Range::new(spec).map_err(|e| match e {
                    IpamError::Invalid(m) => IpamError::Invalid(format!("range set {i}: {m}")),
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (i, a) in ranges.iter().enumerate() {
            if let Some(j) = (i + 1..ranges.len()).find(|&j| a.overlaps(&ranges[j])) {
                return Err(IpamError::Invalid(format!(
                    "range set {i} overlaps with {j}"
                )));
            }
        }
        Ok(Pool {
            dir: store_dir,
            ranges,
        })
    }

    pub fn store_dir(&self) -> &Path {
        &self.dir
    }

    /// One IP per range for the attachment, all or nothing, under the
    /// store lock. Fails with [`IpamError::AlreadyAllocated`] when the
    /// attachment (or an old ID-only file of its container) already holds
    /// an IP in one of the ranges, as host-local does.
    pub fn allocate(&self, container_id: &str, ifname: &str) -> Result<Vec<Allocated>, IpamError> {
        check_attachment(container_id, ifname)?;
        let store = Locked::open(&self.dir)?;
        let existing = store.allocations()?;
        for (i, r) in self.ranges.iter().enumerate() {
            let held = existing
                .iter()
                .find(|a| a.is_held_by(container_id, ifname) && r.contains(a.ip));
            if let Some(a) = held {
                return Err(IpamError::AlreadyAllocated {
                    range: i,
                    ip: a.ip,
                    container_id: container_id.trim().to_string(),
                });
            }
        }
        // Known holders are skipped without a syscall; the exclusive
        // create stays the authority (an unreadable file is not in `existing`).
        let taken: HashSet<IpAddr> = existing.iter().map(|a| a.ip).collect();
        self.take_all(&store, container_id, ifname, &taken)
    }

    /// [`Pool::allocate`] without host-local's duplicate scan, which reads
    /// every IP file of the store and makes ADD cost grow with the number
    /// of pods. For callers that already know the attachment holds nothing
    /// (netboot-cni refuses a second ADD from its own record); the
    /// exclusive create still guarantees no IP is handed out twice.
    pub fn allocate_new(
        &self,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<Allocated>, IpamError> {
        check_attachment(container_id, ifname)?;
        let store = Locked::open(&self.dir)?;
        self.take_all(&store, container_id, ifname, &HashSet::new())
    }

    /// One IP per range, all or nothing.
    fn take_all(
        &self,
        store: &Locked,
        container_id: &str,
        ifname: &str,
        taken: &HashSet<IpAddr>,
    ) -> Result<Vec<Allocated>, IpamError> {
        let key = allocation::owner_key(container_id, ifname);
        let mut done: Vec<Allocated> = Vec::with_capacity(self.ranges.len());
        for i in 0..self.ranges.len() {
            match self.take(store, i, &key, taken) {
                Ok(a) => done.push(a),
                Err(e) => {
                    // Undo only what this call created: unlike host-local's
                    // rollback by (id, ifname), this never frees an older
                    // allocation of the same attachment.
                    for a in &done {
                        let _ = store.remove(a.ip);
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Reserves the first free candidate of range `i` in round-robin order.
    fn take(
        &self,
        store: &Locked,
        i: usize,
        key: &str,
        taken: &HashSet<IpAddr>,
    ) -> Result<Allocated, IpamError> {
        let r = &self.ranges[i];
        for ip in r.candidates(store.last_reserved(i)) {
            if taken.contains(&ip) || !store.reserve(ip, key)? {
                continue;
            }
            if let Err(e) = store.set_last_reserved(i, ip) {
                let _ = store.remove(ip);
                return Err(e);
            }
            return Ok(Allocated {
                ip,
                prefix: r.subnet.prefix_len(),
                gateway: r.gateway,
            });
        }
        Err(IpamError::Exhausted {
            range: i,
            ranges: r.to_string(),
        })
    }

    /// Releases the attachment's IPs as host-local's DEL does: every file
    /// holding exactly `<id>\r\n<ifname>`, or, when there is none, the old
    /// ID-only files of the container. Idempotent; returns what it freed.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        if container_id.trim().is_empty() || !self.dir.exists() {
            return Ok(Vec::new());
        }
        let store = Locked::open(&self.dir)?;
        // A reservation killed between its temp file and the link leaves
        // that temp file behind; DEL is the first chance to sweep it.
        store.sweep_reserve_temps()?;
        store.release_owner(container_id, ifname)
    }

    /// Releases `ips` if (and only if) each is still held by exactly this
    /// attachment: the record-guided DEL, which opens only those files
    /// instead of scanning the store. Falls back to [`Pool::release`] when
    /// none of them is held that way (e.g. an old ID-only allocation).
    pub fn release_known(
        &self,
        container_id: &str,
        ifname: &str,
        ips: &[IpAddr],
    ) -> Result<Vec<IpAddr>, IpamError> {
        if ips.is_empty() || container_id.trim().is_empty() || !self.dir.exists() {
            return self.release(container_id, ifname);
        }
        // The ADD that recorded `ips` finished: none of its reservation
        // temp files is left, and other writers' are GC's (listing the
        // store costs in proportion to the pods on the node).
        let store = Locked::open(&self.dir)?;
        let mut released = Vec::new();
        for ip in ips {
            if store.is_exactly_held(*ip, container_id, ifname) && store.remove(*ip)? {
                released.push(*ip);
            }
        }
        if released.is_empty() {
            store.sweep_reserve_temps()?;
            return store.release_owner(container_id, ifname);
        }
        Ok(released)
    }

    /// The IPs the attachment holds (host-local `GetByID`: exact files and
    /// old ID-only files of the container), sorted.
    pub fn holds(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, IpamError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let store = Locked::open(&self.dir)?;
        Ok(store
            .allocations()?
            .into_iter()
            .filter(|a| a.is_held_by(container_id, ifname))
            .map(|a| a.ip)
            .collect())
    }

    /// GC: frees every IP whose owner is not in `valid` (container ID,
    /// ifname) and that no valid attachment may hold; see
    /// [`Locked::release_invalid`].
    pub fn release_invalid(
        &self,
        valid: &[(String, String)],
        claims: &Claims,
    ) -> Result<Vec<IpAddr>, IpamError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        Locked::open(&self.dir)?.release_invalid(valid, claims)
    }

    /// How many addresses of the ranges are held, torn files included. A
    /// lock-free snapshot: it may be one off while an ADD runs.
    pub fn in_use(&self) -> Result<usize, IpamError> {
        if !self.dir.exists() {
            return Ok(0);
        }
        let ips = store::ip_files(&self.dir)?;
        Ok(ips
            .into_iter()
            .filter(|ip| self.ranges.iter().any(|r| r.usable(*ip)))
            .count())
    }

    /// How many addresses the ranges can hand out (saturating).
    pub fn capacity(&self) -> usize {
        let total = self
            .ranges
            .iter()
            .fold(0u128, |sum, r| sum.saturating_add(r.capacity()));
        usize::try_from(total).unwrap_or(usize::MAX)
    }
}

/// An empty ID would write a file indistinguishable from a torn one, and a
/// line break would change how host-local splits it.
fn check_attachment(container_id: &str, ifname: &str) -> Result<(), IpamError> {
    let id = container_id.trim();
    if id.is_empty() || ifname.is_empty() {
        return Err(IpamError::Invalid(
            "container ID and ifname must not be empty".into(),
        ));
    }
    if id.contains(['\r', '\n']) || ifname.contains(['\r', '\n']) || ifname.trim() != ifname {
        return Err(IpamError::Invalid(format!(
            "container ID {id:?} or ifname {ifname:?} has whitespace host-local cannot store"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
