//! `netboot leave`: release this node's lease and undo the agent's setup.
//!
//! Stop the agent first (SIGTERM keeps everything in place); a running
//! agent would simply acquire a lease again.
//!
//! Order: the etcd lease first (other nodes then drop their routes to us),
//! then the local state: flannel.<VNI> (its routes, ARP and FDB entries go
//! with it), the forward/masquerade rules, subnet.env. The local part runs
//! even when etcd cannot be reached, and the command then fails saying the
//! lease stays until it expires.

use std::net::Ipv4Addr;

use anyhow::{anyhow, Context, Result};
use ipnet::Ipv4Net;
use netkit::{firewall, Netlink};

use super::iface::{find_external, Families};
use super::store::Store;
use super::{env, log, LeaveArgs, RULE_TAG};
use crate::lease::{parse_subnet_key, RemoteLease};
use crate::netconfig::{NetConfig, DEFAULT_VNI};

pub fn leave_cmd(a: &LeaveArgs) -> Result<()> {
    let _ = super::WHO.set("netboot leave");
    if let Some((pid, text)) = super::lock::holder() {
        let pid = super::lock::field(&text, "pid").map_or(pid.to_string(), str::to_string);
        return Err(anyhow!(
            "a netboot agent (PID {pid}) is running in this network namespace; it would \
             acquire the lease again right away. Stop it first (SIGTERM keeps everything), \
             then run `netboot leave`"
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let mut nl = Netlink::open()?;
    let subnet = env::previous_subnet(&a.subnet_file);
    let ip = if a.ext.any() {
        find_external(
            &mut nl,
            &a.ext,
            Families {
                v4: true,
                v6: false,
            },
        )?
        .ip
    } else {
        None
    };
    let released = rt.block_on(release(a, subnet, ip));
    let vni = released.as_ref().ok().and_then(|r| *r);
    cleanup_local(&mut nl, a, vni)?;
    match released {
        Ok(_) => {
            log("left the network: lease released, local setup removed");
            Ok(())
        }
        Err(e) => Err(e.context(
            "the local setup was removed, but the lease could not be released; it stays \
             in etcd until its TTL runs out",
        )),
    }
}

/// Delete (and revoke) every lease of this node: the subnet of subnet.env
/// and any lease naming our public IP. Returns the config's VNI.
async fn release(
    a: &LeaveArgs,
    subnet: Option<Ipv4Net>,
    ip: Option<Ipv4Addr>,
) -> Result<Option<u32>> {
    let cfg_key = a.etcd.key("config");
    let opts = a.etcd.opts()?;
    let mut store = Store::new(&opts, cfg_key.clone())?;
    store.connect_within(opts.timeout).await?;
    let vni = store
        .get(&cfg_key)
        .await?
        .and_then(|kv| NetConfig::parse(&kv.value).ok())
        .and_then(|c| c.check().ok())
        .map(|e| e.vni.unwrap_or(DEFAULT_VNI));
    if subnet.is_none() && ip.is_none() {
        return Err(anyhow!(
            "{} is missing and neither --iface nor --public-ip was given: cannot tell \
             which lease is this node's",
            a.subnet_file.display()
        ));
    }
    let (kvs, _) = store.list(&a.etcd.key("subnets/")).await?;
    let mut n = 0;
    for kv in kvs {
        let by_subnet = subnet.is_some() && parse_subnet_key(&kv.key) == subnet;
        let by_ip = ip.is_some()
            && RemoteLease::parse(&kv.key, &kv.value).is_ok_and(|l| Some(l.public_ip) == ip);
        if !(by_subnet || by_ip) {
            continue;
        }
        store.delete(&kv.key).await?;
        if kv.lease != 0 {
            store.revoke(kv.lease).await?;
        }
        log(&format!("released lease {}", kv.key));
        n += 1;
    }
    if n == 0 {
        log("no lease of this node found in etcd (already released or expired)");
    }
    Ok(Some(vni.unwrap_or(DEFAULT_VNI)))
}

fn cleanup_local(nl: &mut Netlink, a: &LeaveArgs, vni: Option<u32>) -> Result<()> {
    for l in nl.links()? {
        let ours = match vni {
            Some(v) => l.name == format!("flannel.{v}"),
            None => l.name.starts_with("flannel."),
        };
        if ours && l.kind.as_deref() == Some("vxlan") {
            nl.del_link(l.index)?;
            log(&format!(
                "deleted {} with its routes, ARP and FDB entries",
                l.name
            ));
        }
    }
    firewall::remove_node_masquerade(RULE_TAG)?;
    firewall::remove_forward_accept(RULE_TAG)?;
    firewall::remove_iptables_forward_accept()?;
    match std::fs::remove_file(&a.subnet_file) {
        Ok(()) => log(&format!("removed {}", a.subnet_file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", a.subnet_file.display())),
    }
    Ok(())
}
