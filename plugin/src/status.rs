//! STATUS (CNI 1.1.0): is this node ready for ADD?
//!
//! Upstream flannel's STATUS is a no-op that always succeeds, so runtimes
//! keep scheduling pods onto a node whose agent has not come up
//! (flannel#2232). Here the node is ready only when:
//! - subnet.env exists and parses (the agent holds a lease);
//! - the binaries the mode needs are on CNI_PATH;
//! - the record directory is writable;
//! - every delegate that speaks CNI 1.1.0 reports ready (SPEC.md: STATUS
//!   must be forwarded to delegates).

use crate::add::{load_subnet_env, speaks_1_1};
use crate::conf::Mode;
use crate::record::Call;
use crate::{flannel, mode, Ctx};
use cni::args::Command;
use cni::error::{codes, CniError};

pub fn status(ctx: &Ctx) -> Result<(), CniError> {
    let not_ready = |msg: String| CniError::new(codes::NOT_AVAILABLE, msg);
    let mode = mode::resolve(&ctx.conf, &ctx.delegates).map_err(|e| not_ready(e.msg))?;
    let env =
        load_subnet_env(ctx).map_err(|e| not_ready(format!("network not ready: {}", e.msg)))?;
    writable(&ctx.conf.data_dir).map_err(|e| {
        not_ready(format!(
            "dataDir {} is not writable: {e}",
            ctx.conf.data_dir.display()
        ))
    })?;
    let calls = match mode {
        Mode::Flannel => vec![Call {
            type_: "flannel".into(),
            conf: flannel::flannel_conf(&ctx.conf),
        }],
        _ => {
            let conf = flannel::bridge_delegate(&ctx.conf, &env);
            let (delegate, ipam) = mode::bridge_types(&ctx.conf);
            for needed in [&delegate, &ipam] {
                ctx.delegates.find(needed).map_err(|e| not_ready(e.msg))?;
            }
            vec![Call {
                type_: delegate,
                conf,
            }]
        }
    };
    for call in calls {
        if speaks_1_1(ctx, &call.type_) {
            let mut call = call;
            crate::delegate::set_version(&mut call.conf, "1.1.0")?;
            ctx.delegates
                .run(Command::Status, &call)
                .map_err(|e| e.context(format!("{} STATUS", call.type_)))?;
        }
    }
    ctx.log.debug("ready");
    Ok(())
}

/// Creates the directory if needed and proves a file can be written there.
fn writable(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".netboot-status-{}", std::process::id()));
    crate::record::write_synced(&probe, b"")?;
    std::fs::remove_file(probe)
}
