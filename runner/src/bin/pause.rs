//! `pause`: the process that holds a pod's namespaces.
//!
//! It does nothing but wait: it reaps any zombie re-parented to it (it is
//! PID 1 of its PID namespace) and exits 0 on SIGTERM or SIGINT. Built
//! static (`-C target-feature=+crt-static`, scripts/build-release.sh) its
//! rootfs needs nothing else; podrun also runs the plain dynamic build of
//! `cargo build`/`cargo install` by copying its loader and libraries into
//! the rootfs (runner/src/pause_root.rs).

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

fn main() {
    if std::env::args().nth(1).as_deref() == Some("-v") {
        println!("pause (netboot) {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    // Block the signals we care about and take them synchronously: no
    // handler, no async-signal-safety concerns.
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    if let Err(e) = set.thread_block() {
        eprintln!("pause: block signals: {e}");
        std::process::exit(1);
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => reap(),
            Ok(_) => std::process::exit(0),
            Err(e) => {
                eprintln!("pause: sigwait: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Collects every exited child; SIGCHLD coalesces, so loop until none.
fn reap() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
