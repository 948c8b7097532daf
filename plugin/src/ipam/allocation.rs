//! One host-local IP file and its owner, and what DEL and GC know of
//! owners (see [`super::store`] for the layout and the torn-file rules).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

/// host-local's separator between container ID and ifname.
const LINE_BREAK: &str = "\r\n";

/// One allocation file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: IpAddr,
    /// Empty for a zero-byte or whitespace-only file: a reservation torn by
    /// a crash or power loss, held by an unknown owner.
    pub container_id: String,
    /// None for files written by host-local before it recorded ifnames.
    pub ifname: Option<String>,
    /// The trimmed content, to recognise a file cut short.
    raw: String,
}

impl Allocation {
    /// Whether the file is exactly `<id>\r\n<ifname>`.
    pub fn is_exactly(&self, container_id: &str, ifname: &str) -> bool {
        self.ifname.as_deref() == Some(ifname) && self.container_id == container_id.trim()
    }

    /// Whether the file is an old ID-only one of `container_id`.
    pub fn is_legacy_of(&self, container_id: &str) -> bool {
        let id = container_id.trim();
        self.ifname.is_none() && !id.is_empty() && self.container_id == id
    }

    /// Whether host-local's `GetByID` would return this file.
    pub fn is_held_by(&self, container_id: &str, ifname: &str) -> bool {
        self.is_exactly(container_id, ifname) || self.is_legacy_of(container_id)
    }

    /// Whether the content names no possible owner: empty, or an ID or
    /// ifname no runtime could have passed (libcni's rules, which netboot
    /// and host-local both enforce before writing). Such a file was torn
    /// by a crash or a power loss; see the module documentation.
    pub fn is_torn(&self) -> bool {
        cni::args::validate_container_id(&self.container_id).is_err()
            || self
                .ifname
                .as_deref()
                .is_some_and(|i| cni::args::validate_ifname(i).is_err())
    }

    /// Whether the file may be `key`'s cut short: its content is a proper
    /// prefix of it (e.g. `abc\r\ne` or `ab` of `abc\r\neth0`).
    pub fn may_be_cut_from(&self, key: &str) -> bool {
        self.raw.len() < key.len() && key.starts_with(&self.raw)
    }

    pub(super) fn parse(ip: IpAddr, content: &[u8]) -> Allocation {
        let text = String::from_utf8_lossy(content);
        let text = text.trim();
        let (id, ifname) = match text.split_once(LINE_BREAK) {
            Some((id, ifname)) => (id, Some(ifname.to_string())),
            None => (text, None),
        };
        Allocation {
            ip,
            container_id: id.to_string(),
            ifname,
            raw: text.to_string(),
        }
    }
}

/// What netboot's records say about the valid attachments, for GC: the
/// IPs their recorded results name, and which of them have such a result.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    /// IP → (container ID, ifname).
    pub ips: HashMap<IpAddr, (String, String)>,
    /// Valid attachments whose record names their IPs.
    pub known: HashSet<(String, String)>,
}

/// Which damaged files a DEL may take as its own ([`Locked::release_torn`]).
#[derive(Debug, Clone, Copy)]
pub enum TornScope<'a> {
    /// The IPs the attachment's recorded ADD result names.
    At(&'a [IpAddr]),
    /// An ADD that never finished names no IP; a host-local killed
    /// between creating and writing its file (a cgroup kill, or netboot
    /// stopping an orphaned delegate) left a file written since the
    /// attachment's record was last saved, which was just before the
    /// delegate started.
    WrittenSince(std::time::SystemTime),
}

/// The content host-local writes for an attachment.
pub(crate) fn owner_key(container_id: &str, ifname: &str) -> String {
    format!("{}{LINE_BREAK}{ifname}", container_id.trim())
}
