//! `netboot doctor`'s options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::duration::parse_duration;
use crate::etcd::args::EtcdArgs;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// flannel's subnet file on this node (as given to the agent).
    #[arg(long, default_value = "/run/flannel/subnet.env", value_name = "FILE")]
    pub subnet_file: PathBuf,
    /// Directory of CNI configs; the first one (by name) is what runtimes use.
    #[arg(long, default_value = "/etc/cni/net.d", value_name = "DIR")]
    pub cni_conf_dir: PathBuf,
    /// Where plugins are looked for (besides $CNI_PATH).
    #[arg(long, default_value = "/opt/cni/bin", value_name = "DIR")]
    pub cni_bin_dir: PathBuf,
    /// Warn when this node's lease has less than this left.
    #[arg(long, default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_warning: Duration,
    /// Warn when the node's pod subnet is this full (percent).
    #[arg(long, default_value_t = 90, value_name = "PERCENT")]
    pub ipam_warning: u8,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}
