//! `netboot leave`: release this node's lease and undo the agent's setup.
//!
//! Stop the agent first (SIGTERM keeps everything in place); a running
//! agent would simply acquire a lease again.
//!
//! A reservation (a key with no TTL, an operator's) is kept, without this
//! node's backend data; a key that subnet.env names but that now names
//! another node's address is left alone.
//!
//! Order: the etcd lease first (other nodes then drop their routes to us),
//! then the local state: flannel.<VNI> and flannel-v6.<VNI> (their routes,
//! neighbour and FDB entries go with them), the gateway routes host-gw or
//! DirectRouting wrote, the forward/masquerade rules, subnet.env. The local part runs
//! even when etcd cannot be reached, and the command then fails saying the
//! lease stays until it expires.

use anyhow::{anyhow, Context, Result};
use ipnet::IpNet;
use netkit::{firewall, Netlink};

use super::backend::remove_stale_devices;
use super::backend::routes::Routes;
use super::iface::{find_external, names_us, External, Families};
use super::setup::usable;
use super::store::Store;
use super::sync::{forward_tag, RULE_TAG};
use super::{log, LeaveArgs};
use crate::lease::{parse_key, Attrs, Lease, SubnetKey};
use crate::subnet_env::SubnetEnv;

pub fn leave_cmd(a: &LeaveArgs) -> Result<()> {
    let _ = super::log::WHO.set("netboot leave");
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
    // subnet.env, read once: this node's subnets, and the networks
    // (replaced by the config when etcd answers).
    let file = SubnetEnv::read(&a.subnet_file).unwrap_or_default();
    let subnet = file.subnet_key();
    let mut networks = file.all_networks();
    let released = rt.block_on(release(a, &mut nl, subnet, &mut networks));
    cleanup_local(&mut nl, a, &networks)?;
    match released {
        Ok(()) => {
            log("left the network: lease released, local setup removed");
            Ok(())
        }
        Err(e) => Err(e.context(
            "the local setup was removed, but the lease could not be released; it stays \
             in etcd until its TTL runs out",
        )),
    }
}

/// This node's interface, when the interface options were given.
fn external(nl: &mut Netlink, a: &LeaveArgs, networks: &[IpNet]) -> Result<Option<External>> {
    if !a.ext.any() {
        return Ok(None);
    }
    let fams = Families {
        v4: networks.iter().any(|n| matches!(n, IpNet::V4(_))) || networks.is_empty(),
        v6: networks.iter().any(|n| matches!(n, IpNet::V6(_))),
    };
    find_external(nl, &a.ext, fams).map(Some)
}

/// Delete (and revoke) every lease of this node: the subnets of
/// subnet.env and any lease naming our public address.
async fn release(
    a: &LeaveArgs,
    nl: &mut Netlink,
    subnet: SubnetKey,
    networks: &mut Vec<IpNet>,
) -> Result<()> {
    let cfg_key = a.etcd.key("config");
    let opts = a.etcd.opts()?;
    let mut store = Store::new(&opts, cfg_key.clone())?;
    store.connect_within(opts.timeout).await?;
    if let Some(net) = store.get(&cfg_key).await?.and_then(|kv| usable(&kv).ok()) {
        *networks = [net.v4, net.v6]
            .iter()
            .flatten()
            .map(|r| r.network)
            .collect();
    }
    let ext = external(nl, a, networks)?;
    let known = subnet.v4.is_some() || subnet.v6.is_some();
    if !known && ext.is_none() {
        return Err(anyhow!(
            "{} is missing and no interface option (--iface, --public-ip, ...) was given: \
             cannot tell which lease is this node's",
            a.subnet_file.display()
        ));
    }
    let local: Vec<std::net::IpAddr> = nl
        .addr()
        .list(None)?
        .iter()
        .map(|a| a.addr.addr())
        .collect();
    let (kvs, _) = store.list(&a.etcd.key("subnets/")).await?;
    let mut n = 0;
    for kv in kvs {
        let by_subnet = known
            && parse_key(&kv.key).is_some_and(|k| {
                (k.v4.is_some() && k.v4 == subnet.v4) || (k.v6.is_some() && k.v6 == subnet.v6)
            });
        let attrs = Lease::parse(&kv.key, &kv.value).ok().map(|l| l.attrs);
        let by_ip = ext
            .as_ref()
            .zip(attrs.as_ref())
            .is_some_and(|(e, a)| names_us(a, e));
        if !(by_subnet || by_ip) {
            continue;
        }
        // subnet.env names a subnet whose key now names an address this
        // node does not hold: our old lease expired and another node took
        // the subnet.
        let held = attrs.as_ref().is_some_and(|o| {
            [o.public(false), o.public(true)]
                .into_iter()
                .flatten()
                .any(|ip| local.contains(&ip))
        });
        if let (Some(e), false) = (ext.as_ref(), by_ip || held) {
            let named = attrs
                .as_ref()
                .and_then(|o| o.public(false).or(o.public(true)))
                .map_or("no address".into(), |i| i.to_string());
            log(&format!(
                "leaving {} alone: it names {named}, which is not an address of this \
                 node ({} is): our old lease expired and another node took the subnet",
                kv.key,
                e.ip.map(|i| i.to_string())
                    .or(e.ip6.map(|i| i.to_string()))
                    .unwrap_or_default()
            ));
            continue;
        }
        if kv.lease == 0 {
            keep_reservation(&mut store, &kv.key, &kv.value, attrs).await?;
            n += 1;
            continue;
        }
        store.delete(&kv.key).await?;
        store.revoke(kv.lease).await?;
        log(&format!("released lease {}", kv.key));
        n += 1;
    }
    if n == 0 {
        log("no lease of this node found in etcd (already released or expired)");
    }
    Ok(())
}

/// A key with no etcd lease is a reservation, an operator's setting: it
/// stays, so the subnet stays this node's, but without this node's backend
/// data, so the other nodes drop their routes to it (they ignore a lease
/// of another backend) as they do for a released lease.
async fn keep_reservation(
    store: &mut Store,
    key: &str,
    value: &[u8],
    attrs: Option<Attrs>,
) -> Result<()> {
    if let Some(a) = attrs {
        let bare = Attrs {
            backend: String::new(),
            data: None,
            data6: None,
            ..a
        }
        .to_json();
        if bare.as_bytes() != value {
            store.put(key, &bare, 0).await?;
        }
    }
    log(&format!(
        "kept the reservation {key} (it has no TTL: an operator's), without this node's \
         backend data; delete it to free the subnet"
    ));
    Ok(())
}

fn cleanup_local(nl: &mut Netlink, a: &LeaveArgs, networks: &[IpNet]) -> Result<()> {
    remove_stale_devices(nl, &[], "leaving the network")?;
    // Gateway routes into the cluster network on the interface: host-gw's,
    // or DirectRouting's.
    let ext = match external(nl, a, networks) {
        Ok(Some(e)) => Some(e),
        _ => find_external(nl, &Default::default(), Families::V4)
            .or_else(|_| find_external(nl, &Default::default(), Families::V6))
            .ok(),
    };
    if let Some(ext) = ext {
        for net in networks {
            let mut r = Routes::new(matches!(net, IpNet::V6(_)), ext.index, &ext.name, *net)?;
            r.reconcile()?;
        }
    }
    firewall::remove_node_masquerade(RULE_TAG)?;
    for v6 in [false, true] {
        firewall::remove_forward_accept(&forward_tag(v6))?;
    }
    firewall::remove_iptables_forward_accept()?;
    match std::fs::remove_file(&a.subnet_file) {
        Ok(()) => log(&format!("removed {}", a.subnet_file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("remove {}", a.subnet_file.display())),
    }
    Ok(())
}
