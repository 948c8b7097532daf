//! Removal of everything the benchmark created, even when it does not end
//! normally.
//!
//! The normal path relies on guards (`Netns`, `Node` and `TempDir` delete
//! themselves on drop). But the workspace's release profile has
//! `panic = "abort"`, so on a panic no destructor runs: the panic hook
//! below deletes every namespace whose name carries this process's PID
//! (`nbt-<pid>-…`, the harness's naming) and every registered temp dir
//! before the abort. SIGINT/SIGTERM/SIGHUP are blocked in all threads and
//! taken by a dedicated thread that does the same and exits (children get
//! a clean signal mask from `std::process::Command`).

use netboot_tests::{leftover_namespaces, netns_prefix, run_argv};
use nix::sys::signal::{SigSet, Signal};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static DONE: AtomicBool = AtomicBool::new(false);

/// Remember a temp dir to remove if the run dies.
pub fn register_dir(p: &Path) {
    DIRS.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(p.to_owned());
}

/// Namespaces created by this process (harness names: `nbt-<pid>-<n>-<tag>`).
pub fn own_namespaces() -> Vec<String> {
    let prefix = format!("{}{}-", netns_prefix(), std::process::id());
    leftover_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect()
}

/// Delete our namespaces and temp dirs; runs at most once.
pub fn emergency() {
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let ns = own_namespaces();
    eprintln!(
        "[bench] cleaning up: deleting {} namespace(s) of pid {}",
        ns.len(),
        std::process::id()
    );
    for n in ns {
        let _ = run_argv(&["ip", "netns", "delete", &n]);
    }
    for d in DIRS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Install the panic hook and the signal thread. Call first in `main`,
/// before any other thread exists (the signal mask is inherited).
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        emergency();
    }));
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    set.thread_block().expect("block termination signals");
    std::thread::spawn(move || {
        if let Ok(sig) = set.wait() {
            eprintln!("[bench] {sig:?} received");
            emergency();
            std::process::exit(128 + sig as i32);
        }
    });
}
