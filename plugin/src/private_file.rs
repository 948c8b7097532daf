//! Opening netboot-cni's small private files in place: the IP store's
//! last-reserved hints, the sibling marks and the node lock. Each is made
//! 0600 (root's only, as host-local's store) when missing, and never
//! truncated on open: a lock file must keep its inode, and a hint is cut
//! to length after its write (see `ipam::store`). Also the one maker of
//! the record directory (0700, whoever creates it first).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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

/// `dir` and its missing parents, created 0700: records hold network
/// configuration that only root should read.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}
