//! The options of `netboot agent` and `netboot leave`, and flanneld's
//! interface options they share.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::duration::parse_duration;
use crate::etcd::args::EtcdArgs;

/// `--name`, `--name=true|false` (Go's spellings), or `NETBOOT_NAME=…`:
/// a boolean option written as flanneld's are.
fn go_bool(s: &str) -> Result<bool, String> {
    crate::goflag::parse_bool(s)
}

/// flanneld's `-subnet-lease-renew-margin`: whole minutes, 1 to 1439.
fn renew_minutes(s: &str) -> Result<u32, String> {
    match crate::goflag::parse_int(s)? {
        n @ 1..=1439 => Ok(n as u32),
        n => Err(format!(
            "{n} is out of range: the margin is 1 to 1439 minutes (less than the 24h lease)"
        )),
    }
}

/// flanneld's `-healthz-port`: 0 (off) or a TCP port.
fn port(s: &str) -> Result<u16, String> {
    let n = crate::goflag::parse_int(s)?;
    u16::try_from(n).map_err(|_| format!("{n} is not a TCP port (0 to 65535; 0 = off)"))
}

/// The agent's options. Each is also read from `NETBOOT_<OPTION>`; the
/// ones flanneld has take its names, and [`crate::flanneld`] reads its
/// command-line syntax and `FLANNELD_*` variables.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    #[command(flatten)]
    pub ext: IfaceArgs,
    /// flannel's subnet file, read by the CNI plugin.
    #[arg(
        long,
        env = "NETBOOT_SUBNET_FILE",
        default_value = "/run/flannel/subnet.env",
        value_name = "FILE"
    )]
    pub subnet_file: PathBuf,
    /// Masquerade pod traffic that leaves the cluster network.
    #[arg(long, env = "NETBOOT_IP_MASQ", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set)]
    pub ip_masq: bool,
    /// Leave transmit checksum offload on the vxlan devices as the kernel
    /// set it. By default the agent turns it off (through ethtool's
    /// netlink interface), the fix for vxlan packets that are dropped with
    /// bad checksums on some drivers and kernels (flannel #1279, #2152).
    #[arg(long, env = "NETBOOT_KEEP_TX_CHECKSUM_OFFLOAD", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true", default_value = "false",
          value_parser = go_bool, action = ArgAction::Set)]
    pub keep_tx_checksum_offload: bool,
    /// TTL of the subnet lease (flannel: 24h).
    #[arg(long, env = "NETBOOT_LEASE_TTL", default_value = "24h", value_parser = parse_duration, value_name = "DURATION")]
    pub lease_ttl: Duration,
    /// Renew this long before the lease expires (flannel:
    /// -subnet-lease-renew-margin=60).
    #[arg(long, env = "NETBOOT_RENEW_MARGIN", default_value = "60m", value_parser = parse_duration, value_name = "DURATION")]
    pub renew_margin: Duration,
    /// flanneld's renewal margin in minutes (1-1439); sets --renew-margin.
    #[arg(long, value_parser = renew_minutes, value_name = "MINUTES")]
    pub subnet_lease_renew_margin: Option<u32>,
    /// How often to compare every route, ARP and FDB entry (and the
    /// firewall rules) with the leases held, in full: a safety net for
    /// drift the kernel's notifications did not report, which the agent
    /// otherwise puts back at once. etcd is not read: the leases come from
    /// the watch (listed at start, and again only when etcd cannot resume
    /// the watch). 0 = never. (Before the watch was resumable, this was a
    /// full list from etcd every 60 s.)
    #[arg(long, env = "NETBOOT_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub resync_interval: Duration,
    /// How often to ask etcd whether the lease watch is alive and up to
    /// date (a progress request: a few bytes, no lease is read). A watch
    /// that does not answer within --etcd-timeout is resumed on another
    /// member. 0 = never.
    #[arg(long, env = "NETBOOT_WATCH_PROGRESS_INTERVAL", default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub watch_progress_interval: Duration,
    /// How often to check that flannel.<VNI> still exists as it was made
    /// (one netlink request; its address and checksum setting with it),
    /// besides the kernel's notifications (which make a deleted device
    /// heal at once).
    #[arg(long, env = "NETBOOT_DEVICE_CHECK_INTERVAL", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub device_check_interval: Duration,
    /// Address of the health server (flanneld's -healthz-ip).
    #[arg(
        long,
        env = "NETBOOT_HEALTHZ_IP",
        default_value = "0.0.0.0",
        value_name = "IP"
    )]
    pub healthz_ip: String,
    /// Port of the health server; 0 = none (flanneld's -healthz-port).
    #[arg(long, env = "NETBOOT_HEALTHZ_PORT", default_value = "0", value_parser = port, value_name = "PORT")]
    pub healthz_port: u16,
    /// Log verbosity (flanneld's -v): without --log-level or RUST_LOG,
    /// 1 and more show the agent's debug lines, 3 and more its trace lines.
    #[arg(
        long,
        visible_alias = "v",
        env = "NETBOOT_VERBOSITY",
        default_value_t = 0,
        value_name = "N"
    )]
    pub verbosity: i32,
}

#[derive(Debug, Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// flannel's subnet file; names this node's subnet. Removed afterwards.
    #[arg(
        long,
        env = "NETBOOT_SUBNET_FILE",
        default_value = "/run/flannel/subnet.env",
        value_name = "FILE"
    )]
    pub subnet_file: PathBuf,
    /// How the agent chose its interface (to find leases by PublicIP).
    #[command(flatten)]
    pub ext: IfaceArgs,
}

/// flanneld's interface options: which interface reaches the other nodes,
/// and the addresses other nodes reach this one at.
#[derive(Debug, Args, Clone, Default)]
pub struct IfaceArgs {
    /// Interface to use, by name or by one of its IP addresses; repeat it
    /// to give candidates in order of preference (flanneld's -iface).
    /// Default: the interface of the default route.
    #[arg(long = "iface", env = "NETBOOT_IFACE", value_name = "IFACE|IP")]
    pub iface: Vec<String>,
    /// Regular expression matched against interface addresses and then
    /// names, when no --iface matched; repeatable (flanneld's
    /// -iface-regex).
    #[arg(
        long = "iface-regex",
        env = "NETBOOT_IFACE_REGEX",
        value_name = "REGEX"
    )]
    pub iface_regex: Vec<String>,
    /// Use the interface the kernel routes this address through
    /// (flanneld's -iface-can-reach).
    #[arg(
        long = "iface-can-reach",
        env = "NETBOOT_IFACE_CAN_REACH",
        value_name = "IP"
    )]
    pub iface_can_reach: Option<IpAddr>,
    /// IPv4 address other nodes reach this one at (default: the chosen
    /// interface's first IPv4 address). With no other interface option it
    /// also picks the interface holding it.
    #[arg(long, env = "NETBOOT_PUBLIC_IP", value_name = "IP")]
    pub public_ip: Option<Ipv4Addr>,
    /// IPv6 address other nodes reach this one at (default: the chosen
    /// interface's first global IPv6 address, else its link-local one).
    #[arg(long, env = "NETBOOT_PUBLIC_IPV6", value_name = "IPV6")]
    pub public_ipv6: Option<Ipv6Addr>,
}

impl IfaceArgs {
    /// Was any interface option given?
    pub fn any(&self) -> bool {
        !self.iface.is_empty()
            || !self.iface_regex.is_empty()
            || self.iface_can_reach.is_some()
            || self.public_ip.is_some()
            || self.public_ipv6.is_some()
    }
}
