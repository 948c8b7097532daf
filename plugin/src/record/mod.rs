//! What ADD did, per attachment, so DEL can undo exactly that.
//!
//! Two kinds of files live under `dataDir` (default `/var/lib/cni/flannel`):
//! - `<dataDir>/<containerID>`: flannel's scratch file. Bridge mode writes
//!   the rendered delegate config, byte-compatible with the upstream flannel
//!   plugin's, so either plugin can DEL what the other added; native mode
//!   writes netboot-cni's own config (`flannel::native_scratch`), so
//!   flannel's DEL hands a native attachment back to netboot-cni;
//! - `<dataDir>/.netboot/<containerID>@<ifname>.json`: netboot's own record
//!   (mode, delegate, portmap and bandwidth configs, final result). A
//!   container ID can neither start with `.` nor contain `@`, so these
//!   names never collide with flannel's files or with each other.
//!
//! Every write is temp file + fsync + rename + directory fsync: after a power
//! loss a file is either the old or the new content, never empty
//! (flannel-io/cni-plugin#43).

mod entry;
mod native;
mod siblings;
mod store;

pub use entry::{result_ips, Call, Record};
pub use native::{NativeState, PortLayout, PortRule};
pub use store::{write_synced, Store};
