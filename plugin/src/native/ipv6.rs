//! IPv6 specifics of a native attachment, as the reference bridge plugin
//! handles them (containernetworking/plugins `plugins/main/bridge/bridge.go`
//! cmdAdd and `pkg/ipam/ipam_linux.go` ConfigureIface):
//! - before the pod's addresses are added: IPv6 enabled on `lo` and the
//!   pod interface (`disable_ipv6=0`), `keep_addr_on_down=1`, and duplicate
//!   address detection off (`accept_dad=0`) unless `enabledad` asks for it
//!   (then `enhanced_dad=1`, `accept_dad=1`);
//! - after the link is up: wait until no IPv6 address of the pod interface
//!   is tentative, so the address is usable when ADD returns (pkg/ip
//!   `SettleAddresses`, 5 s in ConfigureIface).
//!
//! The gateway address on the bridge is added without DAD (`nodad`): it is
//! this node's by its flannel lease, and a tentative gateway would leave
//! the node's first pod without IPv6 routing for a second.

use crate::ctx::kernel;
use cni::error::CniError;
use netkit::Netlink;
use std::time::{Duration, Instant};

/// ConfigureIface's `dadSettleTimeout`.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two looks (pkg/ip `SETTLE_INTERVAL`).
const SETTLE_INTERVAL: Duration = Duration::from_millis(50);

/// The sysctls the pod interface needs before it gets IPv6 addresses. Runs
/// in the calling thread's namespace: call it on a thread inside the pod
/// netns ([`netkit::Netns::run`]).
pub fn prepare_pod(ifname: &str, enable_dad: bool) -> Result<(), CniError> {
    for iface in ["lo", ifname] {
        let key = format!("net/ipv6/conf/{iface}/disable_ipv6");
        // Unreadable (a kernel without IPv6 for this link): left alone, as
        // the bridge plugin does; adding the address then says why.
        match netkit::sysctl::get(&key) {
            Ok(v) if v != "0" => netkit::sysctl::set(&key, "0")
                .map_err(|e| kernel(&format!("enable IPv6 on {iface}"), e))?,
            _ => {}
        }
    }
    netkit::sysctl::set(&format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1")
        .map_err(|e| kernel(&format!("keep_addr_on_down on {ifname}"), e))?;
    // Best effort, as in the bridge plugin: the settle step below is what
    // guarantees a usable address either way.
    if enable_dad {
        let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
        let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
    } else {
        let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
    }
    Ok(())
}

/// Waits until no IPv6 address of link `index` (`ifname`, in the
/// namespace `nl` is bound to) is tentative. With DAD off the kernel still
/// clears the flag from a work queue, so the first look may see it.
pub fn settle(nl: &mut Netlink, index: u32, ifname: &str) -> Result<(), CniError> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        let addrs = nl
            .addr()
            .list(Some(index))
            .map_err(|e| kernel(&format!("list addresses of {ifname}"), e))?;
        let v6 = || addrs.iter().filter(|a| a.addr.addr().is_ipv6());
        if let Some(a) = v6().find(|a| a.is_dad_failed()) {
            return Err(CniError::internal(format!(
                "{ifname} has address {} in DADFAILED state",
                a.addr
            )));
        }
        let Some(waiting) = v6().find(|a| a.is_tentative()) else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(CniError::internal(format!(
                "{ifname} still has tentative address {} after {} s",
                waiting.addr,
                SETTLE_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(SETTLE_INTERVAL);
    }
}

/// The bridge owns its routes (the bridge plugin sets `accept_ra=0` on
/// it). Best effort: only router advertisements on the pod LAN are at
/// stake, and a forwarding node ignores them anyway. Runs in the node
/// netns, where the plugin already is.
pub fn bridge_owns_routes(bridge: &str) {
    let _ = netkit::sysctl::set(&format!("net/ipv6/conf/{bridge}/accept_ra"), "0");
}
