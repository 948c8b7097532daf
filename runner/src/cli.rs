//! Command line: `podrun [FLAGS] COMMAND`, flags named as nerdctl and
//! crictl users expect them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run pods on containerd, networked through CNI.
#[derive(Debug, Parser)]
#[command(name = "podrun", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

/// Where things live. Two podrun instances with different values never
/// see each other's pods.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// containerd's gRPC socket.
    #[arg(
        long,
        global = true,
        env = "CONTAINERD_ADDRESS",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub address: PathBuf,
    /// containerd namespace for podrun's containers, images and snapshots.
    #[arg(long, global = true, default_value = "netboot")]
    pub namespace: String,
    /// Directory of CNI network configurations.
    #[arg(
        long,
        global = true,
        env = "NETCONFPATH",
        default_value = "/etc/cni/net.d"
    )]
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories, `:`-separated.
    #[arg(long, global = true, env = "CNI_PATH", default_value = "/opt/cni/bin")]
    pub cni_bin_dir: String,
    /// libcni's cache root: results are kept in `<dir>/results`.
    #[arg(long, global = true, default_value = "/var/lib/cni")]
    pub cni_cache_dir: PathBuf,
    /// Pod state (records, logs, generated /etc files).
    #[arg(long, global = true, default_value = "/var/lib/podrun")]
    pub state_dir: PathBuf,
    /// The static `pause` binary; defaults to `pause` beside podrun.
    #[arg(long, global = true, env = "PODRUN_PAUSE")]
    pub pause_bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create and start a pod from a spec file (JSON or YAML).
    Run {
        /// The pod spec.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Stay in the foreground streaming the containers' output until
        /// they all exit.
        #[arg(long)]
        attach: bool,
    },
    /// List pods and their containers.
    Ps,
    /// Print the stdout and stderr of a pod's containers.
    Logs {
        pod: String,
        container: Option<String>,
    },
    /// Run a command in a running container.
    Exec {
        pod: String,
        container: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Stop a pod's containers (SIGTERM, then SIGKILL after the grace
    /// period) and release its network. Idempotent.
    Stop {
        pod: String,
        /// Seconds between SIGTERM and SIGKILL.
        #[arg(long, default_value_t = 10)]
        grace: u64,
    },
    /// Stop the pod and remove everything it had. Idempotent.
    Rm {
        pod: String,
        #[arg(long, default_value_t = 10)]
        grace: u64,
    },
    /// CNI CHECK on the pod's cached attachment.
    Check { pod: String },
    /// CNI GC with the attachments of the live pods.
    Gc,
}
