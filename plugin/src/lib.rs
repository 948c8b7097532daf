//! netboot-cni: a CNI plugin for flannel-style pod networks.
//!
//! The binary is a thin shell around [`run`], which takes the environment,
//! stdin and stdout as parameters so the whole protocol can be exercised
//! in-process (the shape of libcni's `skel` dispatcher).

pub mod add;
pub mod attachment;
pub mod bandwidth;
pub mod chain;
pub mod check;
pub mod conf;
pub mod conntrack;
pub mod ctx;
pub mod del;
pub mod delegate;
pub mod flannel;
pub mod gc;
pub mod ghost;
pub mod inflight;
pub mod ip_ranges;
pub mod ipam;
pub mod log;
pub mod native;
pub mod private_file;
pub mod record;
pub mod shaping;
pub mod status;
pub mod subnet_env;
pub mod torn;

use cni::args::{CmdArgs, Command};
use cni::conf::NetConf;
use cni::error::{codes, CniError};
use cni::version::{self, SUPPORTED_VERSIONS};
use conf::PluginConf;
use ctx::Ctx;
use delegate::Delegator;
use log::Logger;
use record::Store;
use std::io::Write;

/// Longest container ID netboot-cni accepts. libcni sets no limit, but the
/// ID becomes part of file names (`<id>@<ifname>.json` and its temp file
/// must fit in 255 bytes); runtimes use 64 hex digits. A longer ID would
/// only fail later with an I/O error (docs/security.md F6).
pub const MAX_CONTAINER_ID_LEN: usize = 200;

/// Version used for errors raised before the config's own is known.
const FALLBACK_VERSION: &str = "1.1.0";

/// What the plugin says when run by hand, without `CNI_COMMAND`: its name,
/// version and the spec versions it speaks, as the reference plugins print
/// it (containernetworking/plugins' skel "about" text, on stderr, exit 0).
/// `CNI_COMMAND=VERSION` keeps answering the spec's JSON.
pub fn about() -> String {
    format!(
        "CNI netboot-cni plugin {}\nCNI protocol versions supported: {}\n",
        env!("NETBOOT_LONG_VERSION"),
        SUPPORTED_VERSIONS.join(", ")
    )
}

/// Runs one plugin invocation and returns the process exit code. Results
/// and errors go to `stdout` (errors as CNI error JSON, exit code 1).
pub fn run(env: &dyn Fn(&str) -> Option<String>, stdin: &[u8], stdout: &mut dyn Write) -> i32 {
    let mut version = FALLBACK_VERSION.to_string();
    match dispatch(env, stdin, &mut version) {
        Ok(out) => {
            if let Some(out) = out {
                let _ = stdout.write_all(out.as_bytes());
            }
            let _ = stdout.flush();
            0
        }
        Err(e) => {
            let _ = stdout.write_all(e.to_json(&version).as_bytes());
            let _ = stdout.flush();
            1
        }
    }
}

fn dispatch(
    env: &dyn Fn(&str) -> Option<String>,
    stdin: &[u8],
    version: &mut String,
) -> Result<Option<String>, CniError> {
    // VERSION needs neither a valid environment nor a config (SPEC.md
    // "VERSION"): podman calls it with CNI_NETNS=dummy.
    if env("CNI_COMMAND").as_deref() == Some("VERSION") {
        return Ok(Some(version::version_output(SUPPORTED_VERSIONS)));
    }
    let net = NetConf::parse_as(stdin, &conf::SCHEMA)?;
    if !net.cni_version.is_empty() {
        *version = net.cni_version.clone();
    }
    let args = CmdArgs::from_env(env)?;
    version::require_version(args.command, &net.cni_version)?;
    if args.container_id.len() > MAX_CONTAINER_ID_LEN {
        // No attachment can exist under such an ID, so DEL has nothing to
        // undo (and must not make the runtime retry forever).
        if args.command == Command::Del {
            return Ok(None);
        }
        return Err(CniError::new(
            codes::INVALID_ENV,
            format!(
                "CNI_CONTAINERID is {} bytes; netboot-cni names its records after it and accepts at most {MAX_CONTAINER_ID_LEN}",
                args.container_id.len()
            ),
        ));
    }
    let conf = PluginConf::from_netconf(net)?;
    if args.command == Command::Add {
        // Before any side effect: see check_port_mappings.
        conf.check_port_mappings()?;
        conf.ip_ranges()?;
    }
    let store = Store::new(&conf.data_dir);
    let mut delegates = Delegator::new(&args, conf.delegate_timeout);
    if matches!(args.command, Command::Add | Command::Del) {
        delegates =
            delegates.noting_inflight(store.inflight_path(&args.container_id, &args.ifname));
    }
    let ctx = Ctx {
        delegates,
        store,
        log: Logger::new(
            conf.log_file.as_deref(),
            conf.log_level,
            format!(
                "{} {}/{}",
                args.command.as_str(),
                args.container_id,
                args.ifname
            ),
        ),
        args,
        conf,
    };
    let out = match ctx.args.command {
        Command::Add => Some(add::add(&ctx)?),
        Command::Del => del::del(&ctx).map(|_| None)?,
        Command::Check => check::check(&ctx).map(|_| None)?,
        Command::Status => status::status(&ctx).map(|_| None)?,
        Command::Gc => gc::gc(&ctx).map(|_| None)?,
        Command::Version => Some(version::version_output(SUPPORTED_VERSIONS)),
    };
    Ok(out)
}
