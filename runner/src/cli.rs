//! Command line: `podrun [FLAGS] COMMAND`, flags named as nerdctl and
//! crictl users expect them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Run pods on containerd, networked through CNI.
#[derive(Debug, Parser)]
#[command(name = "podrun", version = env!("NETBOOT_LONG_VERSION"), about)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub log: logkit::LogArgs,
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
    /// containerd namespace for podrun's containers, images and snapshots
    /// (`CONTAINERD_NAMESPACE`, as ctr and nerdctl read it).
    #[arg(
        long,
        global = true,
        env = "CONTAINERD_NAMESPACE",
        default_value = "netboot"
    )]
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
    /// The `pause` binary; defaults to `pause` beside podrun. Static is
    /// best; a dynamic one gets its loader and libraries copied into the
    /// pause rootfs.
    #[arg(long, global = true, env = "PODRUN_PAUSE")]
    pub pause_bin: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create and start pods from a file: podrun's own pod spec, or
    /// Kubernetes v1 Pod manifests (YAML, JSON, several `---` documents).
    Run {
        /// The pod spec or manifest; `-` reads standard input.
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Warn about manifest fields podrun cannot honour instead of
        /// refusing the pod.
        #[arg(long)]
        ignore_unsupported: bool,
        /// Check the file and print the pods as podrun would run them
        /// (JSON, podrun's own spec format); create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Stay in the foreground streaming the containers' output until
        /// they all exit.
        #[arg(long)]
        attach: bool,
        #[command(flatten)]
        opts: RunOpts,
    },
    /// List pods and their containers.
    Ps {
        /// One JSON array of pods (name, phase, ip, containers with
        /// name, state and exit code) instead of the table.
        #[arg(long)]
        json: bool,
    },
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
        /// Seconds between SIGTERM and SIGKILL. Default: the pod's
        /// terminationGracePeriodSeconds, else 30 for a Kubernetes
        /// manifest and 10 for podrun's own pod spec.
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Stop the pod and remove everything it had. Idempotent.
    Rm {
        pod: String,
        /// As for `stop`.
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
    },
    /// Print a pod as JSON: metadata, phase, IPs, network, sandbox,
    /// restart policy, supervisor, and every container and init container
    /// with its state, exit code, restarts and times.
    Inspect { pod: String },
    /// Keep a pod's restartPolicy (started by `run`; not a user command).
    #[command(hide = true)]
    Supervise { pod: String },
    /// CNI CHECK on the pod's cached attachment.
    Check { pod: String },
    /// CNI GC of this instance's stale attachments; every attachment
    /// that is not provably its own is kept (see docs/podrun.md).
    Gc,
    /// Images in containerd's store.
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// `completions SHELL` and `man DIR` (hidden, for packagers).
    #[command(flatten)]
    Pack(packcmd::PackCmd),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Import the images of an OCI image layout archive (`ctr images
    /// export`, skopeo, buildah) or a `docker save` archive, plain or
    /// gzip-compressed, and unpack them for `podrun run`. Prints each
    /// image name recorded.
    Import {
        /// The archive; `-` reads it from stdin.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// For OCI archives whose entries name only a tag: the repository
        /// to put before it; references not under it are skipped (as
        /// `ctr images import --base-name`).
        #[arg(long, value_name = "NAME")]
        base_name: Option<String>,
    },
}

/// `podrun completions SHELL` and `podrun man DIR`, which need neither
/// containerd nor any state: `None` for every other command.
pub fn generate(cmd: &Cmd) -> Option<std::io::Result<()>> {
    match cmd {
        Cmd::Pack(p) => Some(p.run::<Cli>()),
        _ => None,
    }
}

/// How `run` sets up a pod's files.
#[derive(Debug, Clone, Args)]
pub struct RunOpts {
    /// The node's resolver config, used when the CNI result has no DNS
    /// (loopback nameservers are dropped). "" gives the pod no node DNS.
    /// Default: /etc/resolv.conf, or systemd-resolved's upstream list
    /// (/run/systemd/resolve/resolv.conf) when /etc/resolv.conf only names
    /// its stub.
    #[arg(long, value_name = "FILE", value_parser = parse_path)]
    pub resolv_conf: Option<PathBuf>,
    /// Rotate a container's stdout or stderr log file when it reaches
    /// this size (bytes, or with a unit: 10Mi, 512Ki, 1M).
    #[arg(long, value_name = "SIZE", default_value = "10Mi", value_parser = parse_log_max_size)]
    pub log_max_size: u64,
    /// Log files kept per stream, the one being written included (at
    /// least 2).
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = parse_log_max_files)]
    pub log_max_files: u32,
    /// The cluster's DNS domain, as kubelet's --cluster-domain: a pod
    /// with a `subdomain` gets the FQDN
    /// <hostname>.<subdomain>.<namespace>.svc.<DOMAIN> in /etc/hosts.
    #[arg(long, value_name = "DOMAIN", default_value = "cluster.local", value_parser = parse_domain)]
    pub cluster_domain: String,
    /// The wait before a container's first restart (restartPolicy Always
    /// or OnFailure), doubled after every restart up to 300s, back to
    /// this after a run of 10 minutes. `500ms`, `10s`, `2m`.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = crate::lifecycle::backoff::parse_duration
    )]
    pub restart_backoff: std::time::Duration,
    /// Set from `run --attach`: the pod is supervised by `run` itself.
    #[arg(skip)]
    pub attach: bool,
}

fn parse_domain(s: &str) -> Result<String, String> {
    let d = s.strip_suffix('.').unwrap_or(s);
    if !crate::spec::is_dns_subdomain(d) {
        return Err(format!(
            "{s:?} is not a DNS domain (lowercase letters, digits, '-' and '.')"
        ));
    }
    Ok(d.to_string())
}

/// Smallest `--log-max-size`: below it a rotation per line would be the
/// norm.
pub const MIN_LOG_SIZE: u64 = 1024;

/// clap's own PathBuf parser refuses "", which means "none" here.
fn parse_path(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

fn parse_log_max_size(s: &str) -> Result<u64, String> {
    let n = crate::spec::MemorySize::parse(s)?.0;
    if n < MIN_LOG_SIZE {
        return Err(format!(
            "{s:?} is below the minimum of {MIN_LOG_SIZE} bytes (1Ki)"
        ));
    }
    Ok(n)
}

fn parse_log_max_files(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of files"))?;
    if !(2..=1000).contains(&n) {
        return Err(format!(
            "{n} is not between 2 and 1000 (the file being written counts, as for kubelet)"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<RunOpts, String> {
        let mut argv = vec!["podrun", "run", "-f", "p.yaml"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv) {
            Ok(Cli {
                command: Cmd::Run { opts, .. },
                ..
            }) => Ok(opts),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn log_flags_default_and_validate() {
        let o = run(&[]).unwrap();
        assert_eq!((o.log_max_size, o.log_max_files), (10 << 20, 5));
        assert_eq!(o.restart_backoff, std::time::Duration::from_secs(10));
        let o = run(&["--restart-backoff", "200ms"]).unwrap();
        assert_eq!(o.restart_backoff, std::time::Duration::from_millis(200));
        assert!(run(&["--restart-backoff", "1h"]).is_err());
        assert_eq!(o.resolv_conf, None);
        let o = run(&["--log-max-size", "4Ki", "--log-max-files", "2"]).unwrap();
        assert_eq!((o.log_max_size, o.log_max_files), (4096, 2));
        for (args, want) in [
            (["--log-max-size", "12Q"], "--log-max-size"),
            (["--log-max-size", "100"], "below the minimum"),
            (["--log-max-files", "1"], "not between 2 and 1000"),
            (["--log-max-files", "x"], "not a number of files"),
        ] {
            let e = run(&args).unwrap_err();
            assert!(e.contains(want), "{args:?}: {e}");
        }
        let o = run(&["--resolv-conf", ""]).unwrap();
        assert_eq!(o.resolv_conf, Some(PathBuf::new()));
    }

    #[test]
    fn cluster_domain_defaults_and_validates() {
        assert_eq!(run(&[]).unwrap().cluster_domain, "cluster.local");
        let o = run(&["--cluster-domain", "corp.example."]).unwrap();
        assert_eq!(o.cluster_domain, "corp.example");
        let e = run(&["--cluster-domain", "Bad Domain"]).unwrap_err();
        assert!(e.contains("is not a DNS domain"), "{e}");
    }
}
