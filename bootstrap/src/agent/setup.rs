//! What the agent builds before it leases: the network config as it runs
//! it ([`NetSetup`], vxlan or host-gw, IPv4 and/or IPv6), the VtepMACs of
//! this node's existing lease, and the data planes of the enabled families.

use anyhow::{bail, Context, Result};
use ipnet::IpNet;

use super::backend::routes::Routes;
use super::backend::vxlan::{random_mac, DeviceSpec, Vtep};
use super::backend::{remove_stale_devices, Plane};
use super::iface::{External, Families};
use super::AgentArgs;
use crate::etcd::Kv;
use crate::lease::{random_seed, Lease, Range};
use crate::netconfig::{NetConfig, VxlanOptions};

/// What the agent takes from the network config.
#[derive(Debug, Clone)]
pub struct NetSetup {
    pub backend: String,
    pub v4: Option<Range>,
    pub v6: Option<Range>,
    pub vxlan: VxlanOptions,
}

impl NetSetup {
    pub fn families(&self) -> Families {
        Families {
            v4: self.v4.is_some(),
            v6: self.v6.is_some(),
        }
    }

    pub fn range(&self, v6: bool) -> Option<&Range> {
        if v6 {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        }
    }
}

/// The config as the agent runs it: vxlan or host-gw, IPv4 and/or IPv6.
pub fn usable(kv: &Kv) -> Result<NetSetup> {
    let cfg = NetConfig::parse(&kv.value)?;
    let eff = cfg.check().map_err(|e| anyhow::anyhow!(e.join("; ")))?;
    if eff.backend != "vxlan" && eff.backend != "host-gw" {
        bail!(
            "backend is {:?}; `netboot agent` implements vxlan and host-gw",
            eff.backend
        );
    }
    let v4 = eff.v4.as_ref().map(|v| Range {
        network: IpNet::V4(v.network),
        len: v.subnet_len,
        min: v.subnet_min.into(),
        max: v.subnet_max.into(),
    });
    let v6 = eff.v6.as_ref().map(|v| Range {
        network: IpNet::V6(v.network),
        len: v.subnet_len,
        min: v.subnet_min.into(),
        max: v.subnet_max.into(),
    });
    if v4.is_none() && v6.is_none() {
        bail!("both IPv4 and IPv6 are disabled");
    }
    Ok(NetSetup {
        backend: eff.backend.clone(),
        vxlan: eff.vxlan(),
        v4,
        v6,
    })
}

/// The VtepMACs of this node's existing lease (same public address) in
/// `kvs` (the list at start), so other nodes' FDB entries stay right even
/// if our devices are gone.
pub fn stored_macs(kvs: &[Kv], ext: &External) -> [Option<[u8; 6]>; 2] {
    let mine = kvs.iter().find_map(|kv| {
        Lease::parse(&kv.key, &kv.value)
            .ok()
            .filter(|l| super::iface::names_us(&l.attrs, ext))
    });
    [
        mine.as_ref().and_then(|l| l.attrs.data).map(|d| d.vtep_mac),
        mine.as_ref()
            .and_then(|l| l.attrs.data6)
            .map(|d| d.vtep_mac),
    ]
}

/// Build the planes of the enabled families and remove what another
/// backend or family left.
pub fn build_planes(
    a: &AgentArgs,
    ext: &External,
    net: &NetSetup,
    macs: [Option<[u8; 6]>; 2],
) -> Result<Vec<Plane>> {
    let mut planes = Vec::new();
    let mut keep = Vec::new();
    let mut nl = netkit::Netlink::open()?;
    // Every address the interface holds: a public address among them is
    // not behind NAT, even when it is not the interface's preferred one.
    let held: Vec<std::net::IpAddr> = nl
        .addr()
        .list(Some(ext.index))?
        .iter()
        .map(|a| a.addr.addr())
        .collect();
    for v6 in [false, true] {
        let Some(range) = net.range(v6) else { continue };
        let local = if v6 {
            ext.ip6.map(Into::into)
        } else {
            ext.ip.map(Into::into)
        };
        let local = local.context("no public address for an enabled family")?;
        let routes = Routes::new(v6, ext.index, &ext.name, range.network)?;
        if net.backend == "host-gw" {
            let own_ip = if v6 {
                ext.iface_ip6.map(Into::into)
            } else {
                ext.iface_ip.map(Into::into)
            };
            if !held.contains(&local) {
                bail!(
                    "the public address {local} is not an address of {} (its own is {}): a \
                     node behind NAT cannot use host-gw (as flanneld refuses it); use vxlan",
                    ext.name,
                    own_ip.map_or("none".into(), |a: std::net::IpAddr| a.to_string())
                );
            }
            planes.push(Plane::HostGw(routes));
            continue;
        }
        let o = &net.vxlan;
        let spec = DeviceSpec {
            v6,
            vni: o.vni,
            port: o.port,
            gbp: o.gbp,
            learning: o.learning,
            out_mtu: o.mtu.unwrap_or(ext.mtu),
            local,
            ext_index: ext.index,
            ext_name: ext.name.clone(),
            tx_csum_off: !a.keep_tx_checksum_offload,
        };
        let mac =
            macs[usize::from(v6)].unwrap_or_else(|| random_mac(random_seed() ^ u64::from(v6)));
        let vtep = Vtep::new(spec, mac)?;
        keep.push(vtep.name.clone());
        planes.push(Plane::Vxlan {
            vtep: Box::new(vtep),
            direct: routes,
            direct_routing: o.direct_routing,
        });
    }
    let why = if net.backend == "host-gw" {
        "the network now uses host-gw".to_string()
    } else {
        format!("the network now uses vxlan VNI {}", net.vxlan.vni)
    };
    remove_stale_devices(&mut nl, &keep, &why)?;
    for p in &mut planes {
        p.ensure_device()?;
    }
    Ok(planes)
}
