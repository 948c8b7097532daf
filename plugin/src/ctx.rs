//! What every command works with ([`Ctx`]), and the one place where
//! failures of the layers below get their CNI error codes: files netboot
//! owns ([`io_err`]), the kernel ([`kernel`]), the IP store ([`ipam_err`]),
//! subnet.env ([`subnet_env_error`]) and a broken attachment ([`broken`]).

use crate::conf::PluginConf;
use crate::delegate::Delegator;
use crate::ipam::IpamError;
use crate::log::Logger;
use crate::record::Store;
use crate::subnet_env::{SubnetEnv, SubnetEnvError};
use cni::args::CmdArgs;
use cni::error::{codes, CniError};

/// Everything a command needs, validated.
pub struct Ctx {
    pub args: CmdArgs,
    pub conf: PluginConf,
    pub delegates: Delegator,
    pub store: Store,
    pub log: Logger,
}

/// Plugin-specific code (SPEC.md reserves 0-99): the attachment exists but
/// is not in the state ADD left it in.
pub const ATTACHMENT_BROKEN: u32 = 100;

/// CHECK found the attachment not as ADD left it.
pub fn broken(msg: String) -> CniError {
    CniError::new(ATTACHMENT_BROKEN, msg)
}

/// Maps an I/O failure on a file netboot owns to a CNI I/O error.
pub fn io_err(what: &str, e: std::io::Error) -> CniError {
    CniError::new(codes::IO, format!("{what}: {e}"))
}

/// Maps a failed netlink or nftables request to an internal error naming
/// what was being done.
pub fn kernel(what: &str, e: netkit::Error) -> CniError {
    CniError::internal(format!("{what}: {e}"))
}

/// Maps an IP store failure to its CNI code ([`IpamError::cni_code`]).
pub fn ipam_err(e: IpamError) -> CniError {
    CniError::new(e.cni_code(), e.to_string())
}

/// subnet.env is written by the node agent once the node has a lease; its
/// absence is a condition that clears by itself, hence "try again later".
pub fn load_subnet_env(ctx: &Ctx) -> Result<SubnetEnv, CniError> {
    SubnetEnv::load(&ctx.conf.subnet_file).map_err(|e| subnet_env_error(&e))
}

pub fn subnet_env_error(e: &SubnetEnvError) -> CniError {
    let code = match e {
        SubnetEnvError::Read { err, .. } if err.kind() == std::io::ErrorKind::NotFound => {
            codes::TRY_AGAIN
        }
        SubnetEnvError::Read { .. } => codes::IO,
        _ => codes::DECODE,
    };
    let hint = if e.is_absent() {
        " (the node agent, `netboot agent` or flanneld, has not written it yet: is it running?)"
    } else {
        ""
    };
    CniError::new(
        code,
        format!("failed to load flannel 'subnet.env' file: {e}{hint}"),
    )
}

/// The DNS a result carries, the same in every mode: the delegate's
/// `dns` (which the bridge plugin copies into its result), else the
/// plugin's own top-level `dns` (which flannel does not pass on; netboot
/// reports it so that a runtime gets it in every mode).
pub fn result_dns(delegate: &cni::Dns, conf: &PluginConf) -> cni::Dns {
    if !delegate.is_empty() {
        return delegate.clone();
    }
    conf.net.dns.clone().unwrap_or_default()
}
