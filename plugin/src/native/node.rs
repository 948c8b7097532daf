//! Node-wide settings of native mode: IP forwarding and the node's pod
//! subnet masquerade rule set (one `nft` transaction).
//!
//! They are redone when the bridge is created or re-addressed, and
//! otherwise only when a marker says they have not been done for this
//! boot, this node netns and these settings. The marker lives in the
//! record directory and names `boot_id` and the netns inode: a reboot or a
//! new netns (rules gone with it) invalidates it, while a steady-state ADD
//! pays one small file read instead of an `nft` exec. This also covers a
//! cni0 created by the reference bridge plugin before the node switched to
//! native mode.

use super::conf::NativeConf;
use crate::ctx::{io_err, kernel, Ctx};
use crate::record;
use cni::error::CniError;
use ipnet::IpNet;
use netkit::firewall;
use netkit::Netns;
use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use std::os::unix::fs::MetadataExt;

/// What the setup was done for; any change means "do it again".
fn setup_key(ctx: &Ctx, nconf: &NativeConf) -> String {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let netns = std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    let subnets: Vec<String> = nconf.ranges.iter().map(|r| r.subnet.to_string()).collect();
    let cluster: Vec<String> = nconf.routes.iter().map(|r| r.dst.to_string()).collect();
    json!({
        "bootId": boot.trim(), "netns": netns, "network": ctx.conf.net.name,
        "forward": nconf.is_gateway, "ipMasq": nconf.ip_masq,
        "subnets": subnets, "cluster": cluster,
    })
    .to_string()
}

/// Runs the node setup if `changed` or the marker does not match. Callers
/// hold the node lock.
pub fn ensure_setup(ctx: &Ctx, nconf: &NativeConf, changed: bool) -> Result<(), CniError> {
    let marker = ctx.conf.data_dir.join(".netboot").join("node-setup.json");
    let key = setup_key(ctx, nconf);
    if !changed && std::fs::read_to_string(&marker).is_ok_and(|k| k == key) {
        return Ok(());
    }
    setup(ctx, nconf)?;
    // Written after the setup succeeded: a crash before this line only
    // means the next ADD does the (idempotent) setup again.
    record::write_synced(&marker, key.as_bytes()).map_err(|e| io_err("write node setup marker", e))
}

fn setup(ctx: &Ctx, nconf: &NativeConf) -> Result<(), CniError> {
    let node = Netns::current().map_err(|e| kernel("open node netns", e))?;
    if nconf.is_gateway {
        for r in &nconf.ranges {
            let key = if r.subnet.addr().is_ipv4() {
                "net/ipv4/ip_forward"
            } else {
                "net/ipv6/conf/all/forwarding"
            };
            netkit::sysctl::set_in(&node, key, "1").map_err(|e| kernel("enable forwarding", e))?;
        }
    }
    if nconf.ip_masq {
        let cluster: Vec<IpNet> = nconf.routes.iter().map(|r| r.dst).collect();
        for r in &nconf.ranges {
            firewall::ensure_node_masquerade(&ctx.conf.net.name, r.subnet, &cluster)
                .map_err(|e| kernel("install masquerade", e))?;
        }
    }
    Ok(())
}

/// Serializes node-wide changes (bridge address, masquerade) between
/// concurrent ADDs, and a DEL's hostPort elements with an ADD that takes
/// a host port over (`ports`). Held only around those steps.
pub fn node_lock(ctx: &Ctx) -> Result<Flock<std::fs::File>, CniError> {
    let path = ctx.conf.data_dir.join(".netboot").join("node.lock");
    if let Some(dir) = path.parent() {
        crate::private_file::create_dir(dir).map_err(|e| io_err("create record directory", e))?;
    }
    let file = crate::private_file::open(&path).map_err(|e| io_err("open node lock", e))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| io_err("lock node", e.into()))
}
