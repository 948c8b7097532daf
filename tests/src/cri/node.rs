//! [`CriNode`]: a node netns (a [`PluginNode`]: subnet.env, data dirs,
//! snapshots), a CNI bin dir and conf dir of its own, and a containerd with
//! CRI running inside the node; plus the pod sandbox configs the tests
//! send.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, LinuxContainerConfig, LinuxPodSandboxConfig,
    PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
};
use serde_json::{json, Value};
use tempfile::TempDir;

use super::client::Cri;
use super::daemon::{CniDirs, CriContainerd};
use crate::crash_support::Mode;
use crate::plugin_support::{PluginNode, NET};
use crate::{bin_path, REFERENCE_CNI_PATH};

/// A node whose pods are made by containerd's CRI. Fields drop in order:
/// the client, then containerd (which removes every sandbox through CRI,
/// so it needs the CNI dirs), the CNI dirs, and the node netns last.
pub struct CriNode {
    pub cri: Cri,
    pub ctd: CriContainerd,
    cni: TempDir,
    pub pn: PluginNode,
}

impl std::ops::Deref for CriNode {
    type Target = PluginNode;
    fn deref(&self) -> &PluginNode {
        &self.pn
    }
}

impl CriNode {
    /// A node running netboot-cni in `mode` (see [`netboot_conflist`]);
    /// the CNI bin dir holds what that mode needs and nothing else:
    /// native: netboot-cni; bridge: + the reference bridge, host-local,
    /// portmap, bandwidth; flannel: + the real upstream `flannel` plugin.
    /// `loopback` is always there (CRI runs it for every sandbox).
    pub fn new(tag: &str, mode: Mode) -> CriNode {
        CriNode::build(tag, |pn, bin| {
            link(bin, "netboot-cni", &bin_path("netboot-cni"));
            if mode != Mode::Native {
                for p in ["bridge", "host-local", "portmap", "bandwidth"] {
                    link(bin, p, &Path::new(REFERENCE_CNI_PATH).join(p));
                }
            }
            if mode == Mode::Flannel {
                link(bin, "flannel", &crate::upstream::flannel_plugin());
            }
            netboot_conflist(pn, mode)
        })
    }

    /// A node whose CNI setup is made by `setup` (given the node and the
    /// bin dir, which already holds `loopback`; it returns the conflist).
    pub fn build(tag: &str, setup: impl FnOnce(&PluginNode, &Path) -> Value) -> CriNode {
        let pn = PluginNode::new(tag);
        let cni = tempfile::Builder::new()
            .prefix("netboot-cri-cni-")
            .tempdir()
            .expect("temp dir");
        let dirs = CniDirs {
            bin_dir: cni.path().join("bin"),
            conf_dir: cni.path().join("net.d"),
        };
        fs::create_dir_all(&dirs.bin_dir).expect("bin dir");
        fs::create_dir_all(&dirs.conf_dir).expect("conf dir");
        link(
            &dirs.bin_dir,
            "loopback",
            &Path::new(REFERENCE_CNI_PATH).join("loopback"),
        );
        let conflist = setup(&pn, &dirs.bin_dir);
        fs::write(
            dirs.conf_dir.join("10-netboot.conflist"),
            serde_json::to_string_pretty(&conflist).expect("json"),
        )
        .expect("write conflist");
        let ctd = CriContainerd::start(pn.path(), &dirs);
        let cri = ctd.client();
        CriNode { cri, ctd, cni, pn }
    }

    /// The CNI bin dir containerd execs plugins from.
    pub fn bin_dir(&self) -> PathBuf {
        self.cni.path().join("bin")
    }

    /// A sandbox config for pod `name` in namespace `default`, with
    /// `ports` and `annotations`.
    pub fn sandbox_config(
        &self,
        name: &str,
        ports: &[PortMapping],
        annotations: &[(&str, &str)],
    ) -> PodSandboxConfig {
        sandbox_config(name, &self.ctd.pod_log_dir(name), ports, annotations)
    }
}

/// A kubelet-like `ContainerConfig`: container `name` running `command`
/// in the busybox test image ([`crate::containerd::BUSYBOX`], which the
/// node must have imported: [`CriContainerd::import`]).
pub fn busybox_container(name: &str, command: &[&str]) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(super::client::image_spec(crate::containerd::BUSYBOX)),
        command: command.iter().map(|s| s.to_string()).collect(),
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig::default()),
        ..ContainerConfig::default()
    }
}

/// A conflist whose only plugin is netboot-cni in `mode`, declaring the
/// capabilities kubelet's hostPorts and bandwidth annotations travel in.
pub fn netboot_conflist(pn: &PluginNode, mode: Mode) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": NET,
        "plugins": [{
            "type": "netboot-cni",
            "mode": mode.name(),
            "subnetFile": pn.subnet_file,
            "dataDir": pn.data_dir,
            "ipam": {"dataDir": pn.ipam_dir},
            "delegate": {"isDefaultGateway": true, "hairpinMode": true},
            "capabilities": {"portMappings": true, "bandwidth": true},
        }],
    })
}

/// A kubelet-like `PodSandboxConfig`: metadata (`default/<name>`, a UID),
/// hostname, log directory, Linux defaults (pod network namespace).
pub fn sandbox_config(
    name: &str,
    logs: &Path,
    ports: &[PortMapping],
    annotations: &[(&str, &str)],
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        port_mappings: ports.to_vec(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        linux: Some(LinuxPodSandboxConfig::default()),
        ..PodSandboxConfig::default()
    }
}

/// A hostPort mapping (`host_ip` empty: every address).
pub fn port(protocol: Protocol, container_port: u16, host_port: u16, host_ip: &str) -> PortMapping {
    PortMapping {
        protocol: protocol as i32,
        container_port: i32::from(container_port),
        host_port: i32::from(host_port),
        host_ip: host_ip.into(),
    }
}

fn link(dir: &Path, name: &str, target: &Path) {
    std::os::unix::fs::symlink(target, dir.join(name))
        .unwrap_or_else(|e| panic!("link {} as {name}: {e}", target.display()));
}
