//! STATUS (CNI 1.1.0): is this node ready for ADD?
//!
//! Upstream flannel's STATUS is a no-op that always succeeds, so runtimes
//! keep scheduling pods onto a node whose agent has not come up
//! (flannel#2232). Here the node is ready only when:
//! - subnet.env exists and parses (the agent holds a lease);
//! - the binaries the mode needs are on CNI_PATH (native needs none);
//! - the record directory (and, in native mode, the IPAM store) is writable;
//! - every delegate that speaks CNI 1.1.0 reports ready (SPEC.md: STATUS
//!   must be forwarded to delegates).

use crate::attachment::{self, Probe};
use crate::ctx::{load_subnet_env, Ctx};
use cni::args::Command;
use cni::error::{codes, CniError};
use std::path::Path;

fn not_ready(msg: String) -> CniError {
    CniError::new(codes::NOT_AVAILABLE, msg)
}

pub fn status(ctx: &Ctx) -> Result<(), CniError> {
    let mode = attachment::resolve(&ctx.conf, &ctx.delegates)?;
    let env =
        load_subnet_env(ctx).map_err(|e| not_ready(format!("network not ready: {}", e.msg)))?;
    for needed in attachment::required_binaries(&ctx.conf, mode) {
        ctx.delegates
            .find(&needed)
            .map_err(|e| not_ready(format!("mode {}: {}", mode.as_str(), e.msg)))?;
    }
    writable(&ctx.conf.data_dir)?;
    let call = match attachment::status_probe(ctx, mode, &env)? {
        Probe::IpamDir(dir) => return writable(&dir),
        Probe::Delegate(call) => call,
    };
    if ctx.delegates.speaks_1_1(&call.type_) {
        let mut call = call;
        crate::delegate::set_version(&mut call.conf, "1.1.0")?;
        ctx.delegates
            .run(Command::Status, &call)
            .map_err(|e| e.context(format!("{} STATUS", call.type_)))?;
    }
    ctx.log.debug("ready");
    Ok(())
}

/// Creates the directory if needed and proves a file can be written there.
fn writable(dir: &Path) -> Result<(), CniError> {
    let probe = dir.join(format!(".netboot-status-{}", std::process::id()));
    crate::record::write_synced(&probe, b"")
        .and_then(|_| std::fs::remove_file(&probe))
        .map_err(|e| not_ready(format!("{} is not writable: {e}", dir.display())))
}
