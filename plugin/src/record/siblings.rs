//! Whether a container has another attachment, without listing the record
//! directory (one file per pod): DEL asks it to know whether flannel's
//! scratch file `<dataDir>/<containerID>`, shared by all of a container's
//! attachments, goes with this one.
//!
//! An ADD that finds the container's scratch file already there (another
//! attachment made it, in any mode) leaves the mark
//! `.netboot/<containerID>@.siblings` before its record exists. DEL then
//! answers in O(1) when its record says its ADD kept this rule
//! ([`crate::record::Record::sibling_mark`]) and there is no mark; otherwise
//! (a mark, a record of an older version, a record rebuilt by DEL) it lists
//! the directory as before, and drops the mark with the last attachment.
//! The name ends in neither `.json` nor a temp suffix, so it is never
//! taken for a record or a temp file.

use super::store::remove_if_present;
use super::Store;
use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::PathBuf;

const MARK: &str = "@.siblings";

impl Store {
    fn sibling_mark_path(&self, container_id: &str) -> PathBuf {
        self.record_dir().join(format!("{container_id}{MARK}"))
    }

    /// Whether flannel's scratch file of `container_id` exists (one stat).
    pub fn flannel_exists(&self, container_id: &str) -> bool {
        self.flannel_path(container_id).exists()
    }

    /// Leaves the mark that `container_id` has more than one attachment.
    pub fn mark_siblings(&self, container_id: &str) -> io::Result<()> {
        let path = self.sibling_mark_path(container_id);
        crate::private_file::create_dir(&self.record_dir())?;
        crate::private_file::open(&path).map(drop)
    }

    /// Whether the mark of [`Store::mark_siblings`] is there (one stat).
    pub fn siblings_marked(&self, container_id: &str) -> bool {
        self.sibling_mark_path(container_id).exists()
    }

    pub fn unmark_siblings(&self, container_id: &str) -> io::Result<()> {
        remove_if_present(&self.sibling_mark_path(container_id))
    }

    /// Removes the marks of containers without any record left (an ADD
    /// killed between its mark and its record), for GC.
    pub fn remove_orphan_marks(&self) -> io::Result<()> {
        let dir = self.record_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut marks = Vec::new();
        let mut with_records = HashSet::new();
        for entry in entries {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if let Some(cid) = name.strip_suffix(MARK) {
                marks.push(cid.to_string());
            } else if let Some((cid, _)) =
                name.strip_suffix(".json").and_then(|n| n.split_once('@'))
            {
                with_records.insert(cid.to_string());
            }
        }
        for cid in marks.iter().filter(|c| !with_records.contains(*c)) {
            self.unmark_siblings(cid)?;
        }
        Ok(())
    }
}
