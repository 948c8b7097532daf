//! The kernel's share of a native DEL's growth: the same bridge-port
//! removal native DEL does (leave cni0, then delete the veth pair, see
//! `netboot_cni::native::del_host_veth`), done by the benchmark itself
//! over netlink on a veth made like a pod's, and timed as this thread's
//! CPU time. Measured in the same rounds as the plugin calls, on the same
//! nodes, so "DEL at N pods / DEL at 1 pod" can be set beside "port
//! removal at N pods / at 1 pod".

use super::datapath::thread_cpu;
use netkit::{Netlink, Netns};
use std::path::Path;
use std::time::Duration;

/// Host end of the probe veth (in the node), and its peer (in the pod).
const HOST: &str = "nbbench0";
const PEER: &str = "eth0";

/// CPU time of removing one bridge port the way native DEL does. The
/// calling thread must be in the node's netns (`BenchNode::enter`);
/// `pod_ns` is a pod netns without an `eth0` (a detached bench pod).
/// `None` when the probe veth could not be made (no cni0 yet, ...).
pub fn bridge_port_removal(pod_ns: &Path) -> Option<Duration> {
    let pod = Netns::open(pod_ns).ok()?;
    let mut nl = Netlink::open().ok()?;
    let bridge = nl.link().by_name("cni0").ok()??;
    let _ = nl.link().del_by_name(HOST);
    nl.link()
        .add_veth(HOST, PEER, &pod, Some(1450), None)
        .ok()?;
    let made = (|| {
        let host = nl.link().by_name(HOST).ok()??;
        // As native ADD leaves a pod's port: no IPv6 on the host end, in
        // the bridge, both ends up.
        let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{HOST}/disable_ipv6"), "1");
        nl.link().set_master(host.index, bridge.index).ok()?;
        nl.link().set_up(host.index).ok()?;
        let mut pnl = pod.netlink().ok()?;
        let peer = pnl.link().by_name(PEER).ok()??;
        pnl.link().set_up(peer.index).ok()
    })();
    if made.is_none() {
        let _ = nl.link().del_by_name(HOST);
        return None;
    }
    let before = thread_cpu();
    let left = nl.link().set_nomaster_by_name(HOST);
    let deleted = nl.link().del_by_name(HOST);
    let took = thread_cpu().saturating_sub(before);
    (left.is_ok() && deleted.is_ok()).then_some(took)
}
