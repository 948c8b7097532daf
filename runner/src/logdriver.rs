//! `podrun log-driver BASE`: the logging binary the runc shim starts for
//! each container and exec (containerd's `binary://` IO scheme). The shim
//! hands it the process's stdout and stderr pipes as fds 3 and 4 and
//! waits on fd 5 until it is ready; it appends them to `BASE.stdout` and
//! `BASE.stderr`. containerd 1.6's `file://` scheme cannot do this: it
//! writes both streams into the stdout file.
//!
//! It reads until both pipes are at EOF. The shim sends SIGTERM when it
//! closes the process's IO (task or exec delete) and waits for the exit:
//! SIGTERM is blocked so that nothing still in the pipes is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};

/// The `binary://` URI that makes the shim run `podrun log-driver BASE`
/// (the query's single key/value become its arguments).
pub fn uri(podrun: &Path, base: &Path) -> String {
    format!(
        "binary://{}?log-driver={}",
        escape(&podrun.display().to_string()),
        escape(&base.display().to_string())
    )
}

/// Percent-encoding for a URI path or query value (Go's url parser
/// decodes it back).
fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn append(base: &Path, stream: &str) -> Result<File> {
    let path = base.with_file_name(format!(
        "{}.{stream}",
        base.file_name().unwrap_or_default().to_string_lossy()
    ));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))
}

pub fn run(base: &Path) -> Result<()> {
    // Before any thread exists, so that every thread inherits the mask.
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.thread_block().context("block SIGTERM")?;
    let mut copies = Vec::new();
    for (fd, stream) in [(3, "stdout"), (4, "stderr")] {
        // Reopening the inherited pipe through /proc needs no unsafe.
        let mut pipe = File::open(format!("/proc/self/fd/{fd}"))
            .with_context(|| format!("fd {fd} from the shim"))?;
        let mut out = append(base, stream)?;
        copies.push(std::thread::spawn(move || {
            std::io::copy(&mut pipe, &mut out)
        }));
    }
    // Ready: the shim reads one byte (or EOF) from its end of fd 5.
    OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/5")
        .and_then(|mut f| f.write_all(b"1"))
        .context("signal ready on fd 5")?;
    for c in copies {
        let _ = c.join();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escapes_paths() {
        assert_eq!(
            uri(
                Path::new("/usr/bin/podrun"),
                Path::new("/var/lib/p d/logs/c")
            ),
            "binary:///usr/bin/podrun?log-driver=/var/lib/p%20d/logs/c"
        );
    }
}
