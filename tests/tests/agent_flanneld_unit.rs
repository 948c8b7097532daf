//! A node run by flanneld's systemd unit and environment file switches to
//! `netboot agent` by changing only the binary: `/usr/bin/flanneld` →
//! `netboot agent`, same arguments, same variables (issue 15). Each agent
//! runs in a node namespace of a namespace cluster (tests/src/cluster.rs);
//! needs root; nothing touches the root namespace.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use netboot_tests::cluster::{ping_within, wait_until, AgentNode, EtcdCluster, Underlay, CONFIG};
use netboot_tests::exec::nsenter;
use netboot_tests::require_root;
use netboot_tests::systemd::{directive, expand, parse_env_file};

const CONVERGE: Duration = Duration::from_secs(30);
/// Packagers' prefix (Fedora's /etc/sysconfig/flanneld), not the default,
/// so an agent that ignored -etcd-prefix would wait for a config forever.
const PREFIX: &str = "/atomic.io/network";

/// As distributions shipped it (Type=notify, EnvironmentFile, options in
/// $FLANNEL_OPTIONS).
const UNIT: &str = "\
[Unit]
Description=Flanneld overlay address etcd agent
After=network-online.target etcd.service

[Service]
Type=notify
EnvironmentFile=/etc/sysconfig/flanneld
ExecStart=/usr/bin/flanneld -etcd-endpoints=${FLANNEL_ETCD_ENDPOINTS} -etcd-prefix=${FLANNEL_ETCD_PREFIX} $FLANNEL_OPTIONS
Restart=on-failure

[Install]
WantedBy=multi-user.target
";

/// CoreOS style: everything in FLANNELD_* variables.
const UNIT_ENV_ONLY: &str = "\
[Service]
EnvironmentFile=/etc/flannel/options.env
ExecStart=/usr/bin/flanneld $FLANNEL_OPTIONS
";

/// The unit with its binary changed, and nothing else.
fn switch_binary(unit: &str) -> String {
    let netboot = netboot_tests::bin_path("netboot");
    let new = unit.replace("/usr/bin/flanneld", &format!("{} agent", netboot.display()));
    assert_eq!(new.lines().count(), unit.lines().count());
    new
}

/// The agent a unit starts: its ExecStart as systemd expands it, in the
/// node's namespace, with only the environment file's variables (systemd
/// gives a service a clean environment) and stderr in the node's log.
struct Service(Child);

impl Service {
    fn start(node: &AgentNode, unit: &str, env_file: &str) -> Service {
        let vars = parse_env_file(env_file);
        let argv = expand(&directive(unit, "ExecStart").expect("ExecStart"), &vars);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())
            .unwrap();
        let child = nsenter(node.ns.path(), &argv)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the unit's ExecStart");
        Service(child)
    }

    /// Its exit status, if it exits within `timeout`.
    fn exit_within(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, || {
            status = self.0.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_flanneld_unit_and_environment_file_run_the_agent_with_only_the_binary_changed() {
    require_root();
    let ul = Underlay::new();
    let etcd = EtcdCluster::start(&ul, 1);
    let ep = etcd.endpoints();
    etcd.put(&format!("{PREFIX}/config"), CONFIG);
    let mut n1 = AgentNode::new(&ul, "n1", 11);
    let mut n2 = AgentNode::new(&ul, "n2", 12);

    // Fedora style: endpoints and prefix on the ExecStart line, the rest
    // in FLANNEL_OPTIONS. FLANNELD_ETCD_PREFIX loses to the command line.
    let env1 = format!(
        "# Flanneld configuration options\n\
         FLANNEL_ETCD_ENDPOINTS=\"{ep}\"\n\
         FLANNEL_ETCD_PREFIX=\"{PREFIX}\"\n\
         FLANNELD_ETCD_PREFIX=/coreos.com/network\n\
         FLANNEL_OPTIONS=\"-iface=eth0 -subnet-file={} -ip-masq -subnet-lease-renew-margin=30 \
         -iptables-resync=5 -v=2 -healthz-port=0 -public-ip=\"\n",
        n1.subnet_file().display()
    );
    // CoreOS style: FLANNELD_* variables only, flanneld's packaging names.
    let env2 = format!(
        "FLANNELD_ETCD_ENDPOINTS={ep}\n\
         FLANNELD_ETCD_PREFIX={PREFIX}\n\
         FLANNELD_IFACE=eth0\n\
         FLANNELD_IP_MASQ=true\n\
         FLANNELD_SUBNET_FILE={}\n\
         FLANNELD_PUBLIC_IP=\n",
        n2.subnet_file().display()
    );
    let _s1 = Service::start(&n1, &switch_binary(UNIT), &env1);
    let _s2 = Service::start(&n2, &switch_binary(UNIT_ENV_ONLY), &env2);

    let s1 = n1.wait_subnet(CONVERGE);
    let s2 = n2.wait_subnet(CONVERGE);
    assert_ne!(s1, s2);
    for (n, s) in [(&n1, &s1), (&n2, &s2)] {
        assert_eq!(
            read(&n.subnet_file()),
            format!(
                "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET={s}\nFLANNEL_MTU=1450\n\
                 FLANNEL_IPMASQ=true\n"
            ),
            "-ip-masq / FLANNELD_IP_MASQ on {}",
            n.ip
        );
        let nft = n.exec(&["nft", "list", "table", "inet", "netboot"]).stdout;
        assert!(
            nft.contains("masquerade"),
            "no masquerade on {}:\n{nft}",
            n.ip
        );
    }
    // Both leases under the unit's prefix, none under the default one.
    let leases = etcd.keys(&format!("{PREFIX}/subnets/"));
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(etcd.keys("/coreos.com/network/").is_empty());
    for (n, want) in [
        (&n1, "ignoring -iptables-resync"),
        (
            &n2,
            "from the environment: FLANNELD_ETCD_ENDPOINTS, FLANNELD_ETCD_PREFIX",
        ),
        (&n2, "FLANNELD_IP_MASQ"),
    ] {
        assert!(
            n.log().contains(want),
            "{want:?} not in the log of {}:\n{}",
            n.ip,
            n.log()
        );
    }

    // And the overlay works between them.
    let (p1, _) = n1.add_pod("p1");
    let (_, ip2) = n2.add_pod("p2");
    assert!(
        ping_within(n1.pod(p1), &ip2, CONVERGE),
        "no ping from a pod on {} to {ip2}:\n{}\n{}",
        n1.ip,
        n1.log(),
        n2.log()
    );
}

#[test]
fn a_unit_asking_for_what_netboot_cannot_do_stops_at_once_naming_it() {
    require_root();
    let ul = Underlay::new();
    let n1 = AgentNode::new(&ul, "n1", 11);
    let unit = switch_binary(UNIT_ENV_ONLY);
    for (env, want) in [
        (
            "FLANNEL_OPTIONS=-kube-subnet-mgr -kubeconfig-file=/etc/kubernetes/kubeconfig",
            "-kube-subnet-mgr=true: netboot uses etcd",
        ),
        (
            "FLANNELD_KUBE_SUBNET_MGR=true",
            "FLANNELD_KUBE_SUBNET_MGR=true: netboot uses etcd",
        ),
        (
            "FLANNEL_OPTIONS=\"-iptables-forward-rules=false\"",
            "-iptables-forward-rules=false: netboot always installs forward-accept rules",
        ),
    ] {
        let before = n1.log().len();
        let mut s = Service::start(&n1, &unit, env);
        let status = s.exit_within(Duration::from_secs(20));
        let log = &n1.log()[before..];
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{env}: {log}");
        assert!(log.contains(want), "{env}: {log}");
        assert!(!n1.subnet_file().exists());
    }
}
