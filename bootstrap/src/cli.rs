//! Command-line definitions (clap derive). The etcd connection options
//! every command that talks to etcd shares are [`crate::etcd::args`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::etcd::args::EtcdArgs;

#[derive(Debug, Parser)]
#[command(
    name = "netboot",
    version = env!("NETBOOT_LONG_VERSION"),
    about = "Bootstrap and inspect a flannel network in etcd v3",
    // `netboot agent --version`, as `flanneld -version`.
    propagate_version = true,
    // A repeated option: the last one wins, as in Go's flag package
    // (flanneld's units repeat flags through $FLANNEL_OPTIONS).
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
    #[command(flatten)]
    pub log: logkit::LogArgs,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Write the network config to etcd (once), the node's conflist, and
    /// install netboot-cni.
    Init(Box<InitArgs>),
    /// Print the conflist `init` would write.
    Conflist(ConflistArgs),
    /// Print the network config stored in etcd, normalized, with defaults.
    Config(ConfigArgs),
    /// Show the config (backend, families, vxlan options), every subnet
    /// lease (both families), and this node's state per family.
    Status(StatusArgs),
    /// Run the node agent: lease a subnet, set up flannel.<VNI> and routes to
    /// every other node, write subnet.env (flanneld-compatible). Takes
    /// flanneld's flags (-etcd-endpoints=URL …) and FLANNELD_* variables
    /// too: see docs/agent.md.
    Agent(crate::agent::AgentArgs),
    /// Release this node's lease and remove what the agent set up (stop the
    /// agent first).
    Leave(crate::agent::LeaveArgs),
    /// Check this node's health (run it in the node's network namespace):
    /// etcd, subnet.env, lease, cni0, per family the vxlan device and the
    /// routes to every other node, leftovers of another backend or family,
    /// MTU, forwarding, masquerade, conflist, plugins, IP store. Exits 1
    /// when something is wrong.
    Doctor(crate::doctor::DoctorArgs),
    /// `completions SHELL` and `man DIR` (hidden, for packagers).
    #[command(flatten)]
    Pack(packcmd::PackCmd),
}

#[derive(Debug, Args)]
pub struct ConflistArgs {
    /// The classic upstream flannel + portmap chain instead of netboot-cni.
    #[arg(long)]
    pub upstream: bool,
    /// cniVersion of the conflist (default 1.0.0; 0.3.1 with --upstream).
    #[arg(long, value_name = "VERSION")]
    pub cni_version: Option<String>,
    /// subnet.env the plugin reads, when the agent writes it elsewhere than
    /// /run/flannel/subnet.env (the conflist's `subnetFile`).
    #[arg(long, value_name = "FILE")]
    pub subnet_file: Option<PathBuf>,
    /// Keep the plugin's state under DIR (`dataDir` DIR/flannel, IPAM store
    /// DIR/networks) instead of /var/lib/cni.
    #[arg(long, value_name = "DIR")]
    pub cni_data_dir: Option<PathBuf>,
}

impl ConflistArgs {
    pub fn dirs(&self) -> crate::conflist::NodeDirs {
        crate::conflist::NodeDirs {
            subnet_file: self.subnet_file.clone(),
            data_dir: self.cni_data_dir.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// IPv4 network for all pods (flannel's Network).
    #[arg(long, default_value = "10.2.0.0/16", value_name = "CIDR")]
    pub network: String,
    /// Prefix length of each node's subnet (default as flannel computes it).
    #[arg(long)]
    pub subnet_len: Option<u32>,
    /// First subnet handed out (default: the second subnet).
    #[arg(long, value_name = "IP")]
    pub subnet_min: Option<String>,
    /// Last subnet handed out (default: the last subnet).
    #[arg(long, value_name = "IP")]
    pub subnet_max: Option<String>,
    /// Do not configure IPv4 (IPv6-only; needs --ipv6-network).
    #[arg(long)]
    pub no_ipv4: bool,
    /// IPv6 network; enables dual stack (flannel's IPv6Network).
    #[arg(long, value_name = "CIDR")]
    pub ipv6_network: Option<String>,
    #[arg(long, requires = "ipv6_network")]
    pub ipv6_subnet_len: Option<u32>,
    #[arg(long, value_name = "IP", requires = "ipv6_network")]
    pub ipv6_subnet_min: Option<String>,
    #[arg(long, value_name = "IP", requires = "ipv6_network")]
    pub ipv6_subnet_max: Option<String>,
    /// vxlan or host-gw.
    #[arg(long, default_value = "vxlan")]
    pub backend: String,
    /// VXLAN network identifier (vxlan only; flannel's default is 1).
    #[arg(long)]
    pub vni: Option<i64>,
    /// VXLAN UDP port (vxlan only; default 8472, the kernel's).
    #[arg(long)]
    pub port: Option<i64>,
    #[arg(long, default_value = "/etc/cni/net.d", value_name = "DIR")]
    pub cni_conf_dir: PathBuf,
    #[arg(long, default_value = "/opt/cni/bin", value_name = "DIR")]
    pub cni_bin_dir: PathBuf,
    #[command(flatten)]
    pub conflist: ConflistArgs,
    /// Overwrite a different config already stored in etcd.
    #[arg(long)]
    pub force: bool,
    /// Check and print what would be done; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// flannel's subnet file on this node.
    #[arg(long, default_value = "/run/flannel/subnet.env", value_name = "FILE")]
    pub subnet_file: PathBuf,
    /// Where to look for plugin binaries (besides $CNI_PATH).
    #[arg(long, default_value = "/opt/cni/bin", value_name = "DIR")]
    pub cni_bin_dir: PathBuf,
    /// One JSON document.
    #[arg(long)]
    pub json: bool,
}
