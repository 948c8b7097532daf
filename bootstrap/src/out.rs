//! Writing reports to stdout. `println!` panics when the reader went away
//! (`netboot status | head`); a closed pipe just means nobody wants the
//! rest, so it ends the output quietly instead.

use std::io::Write;

/// Writes `text` to stdout; a broken pipe is not an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `emit` with a trailing newline.
pub fn emitln(text: &str) -> anyhow::Result<()> {
    emit(&format!("{text}\n"))
}
