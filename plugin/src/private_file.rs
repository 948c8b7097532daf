//! Opening netboot-cni's small private files in place: the IP store's
//! last-reserved hints, the sibling marks and the node lock. Each is made
//! 0600 (root's only, as host-local's store) when missing, and never
//! truncated on open: a lock file must keep its inode, and a hint is cut
//! to length after its write (see `ipam::store`).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `path` opened for writing, created 0600 if missing, its content kept.
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}
