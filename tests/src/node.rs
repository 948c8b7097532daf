//! `Node`: a network namespace standing in for one machine of a cluster,
//! plus a private temp dir for its config and state files.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use crate::exec::{self, CmdOutput};
use crate::netns::Netns;
use crate::plugin::{PluginCall, REFERENCE_CNI_PATH};

/// The content of flannel's `/run/flannel/subnet.env`. An empty network
/// or subnet leaves that family out (IPv6-only: empty `network`/`subnet`).
#[derive(Debug, Clone)]
pub struct SubnetEnv {
    pub network: String,
    pub subnet: String,
    /// `FLANNEL_IPV6_NETWORK`; empty: no IPv6.
    pub ipv6_network: String,
    /// `FLANNEL_IPV6_SUBNET`, e.g. `fd10:2:1::1/64`; empty: no IPv6.
    pub ipv6_subnet: String,
    pub mtu: u32,
    pub ipmasq: bool,
}

impl Default for SubnetEnv {
    fn default() -> Self {
        SubnetEnv {
            network: "10.2.0.0/16".into(),
            subnet: "10.2.1.1/24".into(),
            ipv6_network: String::new(),
            ipv6_subnet: String::new(),
            mtu: 1450,
            ipmasq: true,
        }
    }
}

impl SubnetEnv {
    /// The file text, in flanneld's key order (flannel `WriteSubnetFile`:
    /// each family only when enabled).
    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.subnet.is_empty() {
            s += &format!(
                "FLANNEL_NETWORK={}\nFLANNEL_SUBNET={}\n",
                self.network, self.subnet
            );
        }
        if !self.ipv6_subnet.is_empty() {
            s += &format!(
                "FLANNEL_IPV6_NETWORK={}\nFLANNEL_IPV6_SUBNET={}\n",
                self.ipv6_network, self.ipv6_subnet
            );
        }
        s + &format!("FLANNEL_MTU={}\nFLANNEL_IPMASQ={}\n", self.mtu, self.ipmasq)
    }
}

/// A "node": its netns (where plugins run and the bridge lives) and a temp
/// dir holding `net.d/`, the libcni cache, IPAM stores and `subnet.env`.
/// Both are removed on drop.
#[derive(Debug)]
pub struct Node {
    pub ns: Netns,
    dir: TempDir,
}

impl Node {
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("netboot-node-{tag}-"))
            .tempdir()
            .expect("create node temp dir");
        Node {
            ns: Netns::new(tag),
            dir,
        }
    }

    /// `/run/netns/<name>` of the node.
    pub fn path(&self) -> &Path {
        self.ns.path()
    }

    /// The node's private temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `<dir>/<name>`, created if missing (IPAM stores, plugin data dirs).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        let p = self.dir().join(name);
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("create {}: {e}", p.display()));
        p
    }

    /// Write `<dir>/subnet.env` and return its path.
    pub fn write_subnet_env(&self, env: &SubnetEnv) -> PathBuf {
        let p = self.dir().join("subnet.env");
        fs::write(&p, env.render()).expect("write subnet.env");
        p
    }

    /// Write `<dir>/net.d/<file>` (a conflist for the libcni client).
    pub fn write_conf(&self, file: &str, conf: &Value) -> PathBuf {
        let p = self.data_dir("net.d").join(file);
        let text = serde_json::to_string_pretty(conf).expect("serialize conf");
        fs::write(&p, text).expect("write conf");
        p
    }

    /// A new pod namespace, `nbt-…-<tag>`.
    pub fn pod(&self, tag: &str) -> Netns {
        Netns::new(tag)
    }

    /// Run `argv` inside the node namespace.
    pub fn exec(&self, argv: &[&str]) -> CmdOutput {
        self.ns.exec(argv)
    }

    /// `ip -j <args>` inside the node namespace.
    #[track_caller]
    pub fn ip_json(&self, args: &[&str]) -> Value {
        self.ns.ip_json(args)
    }

    /// `iptables-save` of the node namespace.
    pub fn iptables_save(&self) -> String {
        self.ns.iptables_save()
    }

    /// `nft list ruleset` of the node namespace.
    pub fn nft_ruleset(&self) -> String {
        self.exec(&["nft", "list", "ruleset"]).expect_ok().stdout
    }

    /// Names of the veth links on the node.
    pub fn veths(&self) -> Vec<String> {
        crate::netns::json_strings(&self.ip_json(&["link", "show", "type", "veth"]), "ifname")
    }

    /// A plugin call for `pod`, run inside this node: container id derived
    /// from the pod's name, ifname eth0, CNI_PATH = reference plugins.
    pub fn plugin_call(&self, command: &str, pod: &Netns, conf: &Value) -> PluginCall {
        PluginCall {
            command: command.into(),
            container_id: format!("ctr-{}", pod.name()),
            netns: Some(pod.path().to_owned()),
            stdin: conf.to_string(),
            host_netns: Some(self.path().to_owned()),
            ..PluginCall::default()
        }
    }

    /// Run the libcni client inside the node, with this node's `net.d`
    /// and result cache: `libcni-client <command> <network> <pod netns>`.
    pub fn libcni(&self, call: &LibcniCall) -> CmdOutput {
        let bin = crate::bins::bin_path("libcni-client");
        let bin = bin.to_string_lossy();
        let netns = call.pod.to_string_lossy();
        let mut cmd = exec::nsenter(self.path(), &[&bin, call.command, call.network, &netns]);
        cmd.env("NETCONFPATH", self.data_dir("net.d"))
            .env("CNI_CACHE_DIR", self.data_dir("cni-cache"))
            .env("CNI_PATH", call.cni_path.unwrap_or(REFERENCE_CNI_PATH))
            .env("CNI_IFNAME", call.ifname)
            .env_remove("CNI_CONTAINERID")
            .env_remove("CNI_ARGS")
            .env_remove("CAP_ARGS");
        if let Some(id) = call.container_id {
            cmd.env("CNI_CONTAINERID", id);
        }
        if let Some(cap) = call.cap_args {
            cmd.env("CAP_ARGS", cap.to_string());
        }
        if let Some(args) = call.cni_args {
            cmd.env("CNI_ARGS", args);
        }
        exec::run(cmd, None, exec::DEFAULT_TIMEOUT)
    }
}

impl AsRef<Path> for Node {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// Arguments of one libcni-client run (see `tests/libcni-client/main.go`).
#[derive(Debug, Clone, Copy)]
pub struct LibcniCall<'a> {
    /// add, check, del, gc or status.
    pub command: &'a str,
    /// The conflist's `name`.
    pub network: &'a str,
    /// The pod netns path.
    pub pod: &'a Path,
    /// CNI_CONTAINERID; `None` lets the client derive it like cnitool.
    pub container_id: Option<&'a str>,
    pub ifname: &'a str,
    /// CAP_ARGS, e.g. `{"portMappings":[...]}`.
    pub cap_args: Option<&'a Value>,
    pub cni_args: Option<&'a str>,
    /// CNI_PATH; `None` = the reference plugins.
    pub cni_path: Option<&'a str>,
}

impl<'a> LibcniCall<'a> {
    pub fn new(command: &'a str, network: &'a str, pod: &'a Path) -> Self {
        LibcniCall {
            command,
            network,
            pod,
            container_id: None,
            ifname: "eth0",
            cap_args: None,
            cni_args: None,
            cni_path: None,
        }
    }
}
