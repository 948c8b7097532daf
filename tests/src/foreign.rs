//! A "foreign" node for the backend tests (`tests/agent_backends.rs`): a
//! namespace on the underlay whose kernel side the test builds with `ip`
//! commands exactly as flanneld would (`pkg/backend/vxlan` device.go and
//! vxlan_network.go, `pkg/backend/hostgw`, `route_network.go`), with a pod
//! behind a `cni0` bridge as flannel's CNI plugin and the bridge plugin
//! make it, and whose lease the test writes as flanneld writes it.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::cluster::Underlay;
use crate::cluster6::{
    add_underlay6, flannel_key, flannel_value, underlay4, underlay6, vxlan_dev, Backend, PeerLease,
    NETWORK4, NETWORK6, VNI, VXLAN_PORT,
};
use crate::netns::Netns;

/// A node running flanneld's data plane, set up by hand, with one pod.
pub struct ForeignNode {
    pub ns: Netns,
    pub pod: Netns,
    pub host: u8,
    pub backend: Backend,
    pub subnet4: Option<Ipv4Net>,
    pub subnet6: Option<Ipv6Net>,
    pub mac4: String,
    pub mac6: String,
    /// vxlan's DirectRouting: peers get a route via their public address
    /// (every peer shares the underlay segment).
    pub direct: bool,
}

fn nth4(n: Ipv4Net, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(n.network()) + i)
}

fn nth6(n: Ipv6Net, i: u128) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(n.network()) + i)
}

impl ForeignNode {
    /// Attach a node to the underlay (`host`; IPv6 too when `subnet6`),
    /// create the backend's devices as flanneld does, `cni0` with each
    /// subnet's `.1`, and a pod with `.2` routed to the cluster networks
    /// through it.
    pub fn new(
        ul: &Underlay,
        host: u8,
        backend: Backend,
        subnet4: Option<Ipv4Net>,
        subnet6: Option<Ipv6Net>,
    ) -> ForeignNode {
        let ns = ul.attach("fgn", host);
        if subnet6.is_some() {
            add_underlay6(&ns, host);
        }
        let f = ForeignNode {
            pod: Netns::new("fpod"),
            ns,
            host,
            backend,
            subnet4,
            subnet6,
            mac4: format!("0e:f0:00:00:04:{host:02x}"),
            mac6: format!("0e:f0:00:00:06:{host:02x}"),
            direct: false,
        };
        f.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        f.sh(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        if backend == Backend::Vxlan {
            f.vxlan_devices();
        }
        f.pod_and_bridge();
        f
    }

    fn sh(&self, argv: &[&str]) {
        self.ns.exec(argv).expect_ok();
    }

    /// flannel `pkg/backend/vxlan/device.go`: `flannel.1` / `flannel-v6.1`
    /// with the MAC the lease names, MTU = outgoing MTU - 50 (both
    /// families), no learning, the kernel's port, local = the public
    /// address, dev = the external interface; `<subnet>/32` and
    /// `<subnet6>/128` on them (`Configure`, `ConfigureIPv6`: plain address
    /// adds, so the IPv6 one goes through DAD); `accept_ra=0` on the v6 one.
    fn vxlan_devices(&self) {
        for v6 in [false, true] {
            let (local, mac, addr) = match v6 {
                false => match self.subnet4 {
                    Some(n) => (
                        underlay4(self.host).to_string(),
                        &self.mac4,
                        format!("{}/32", n.network()),
                    ),
                    None => continue,
                },
                true => match self.subnet6 {
                    Some(n) => (
                        underlay6(self.host).to_string(),
                        &self.mac6,
                        format!("{}/128", n.network()),
                    ),
                    None => continue,
                },
            };
            let dev = vxlan_dev(v6);
            let port = VXLAN_PORT.to_string();
            let vni = VNI.to_string();
            self.sh(&[
                "ip",
                "link",
                "add",
                &dev,
                "address",
                mac,
                "mtu",
                "1450",
                "type",
                "vxlan",
                "id",
                &vni,
                "local",
                &local,
                "dev",
                "eth0",
                "dstport",
                &port,
                "nolearning",
            ]);
            if v6 {
                self.sh(&["sysctl", "-qw", &format!("net/ipv6/conf/{dev}/accept_ra=0")]);
            }
            self.sh(&["ip", "addr", "add", &addr, "dev", &dev]);
            self.sh(&["ip", "link", "set", &dev, "up"]);
        }
    }

    /// The bridge plugin's `cni0` (gateway `.1` of each subnet, no DAD)
    /// and a pod veth with `.2`, routed to the cluster networks via `.1`
    /// (flannel's CNI plugin puts a route per FLANNEL_NETWORK in ipam).
    fn pod_and_bridge(&self) {
        self.sh(&["ip", "link", "add", "cni0", "type", "bridge"]);
        self.sh(&["ip", "link", "set", "cni0", "up"]);
        self.ns.add_veth_to("vethf", &self.pod);
        self.sh(&["ip", "link", "set", "vethf", "master", "cni0", "up"]);
        let pod = |argv: &[&str]| self.pod.exec(argv).expect_ok();
        pod(&["ip", "link", "set", "eth0", "up"]);
        if let Some(n) = self.subnet4 {
            let gw = nth4(n, 1).to_string();
            self.sh(&[
                "ip",
                "addr",
                "add",
                &format!("{gw}/{}", n.prefix_len()),
                "dev",
                "cni0",
            ]);
            let ip = format!("{}/{}", nth4(n, 2), n.prefix_len());
            pod(&["ip", "addr", "add", &ip, "dev", "eth0"]);
            pod(&["ip", "route", "add", NETWORK4, "via", &gw]);
        }
        if let Some(n) = self.subnet6 {
            let gw = nth6(n, 1).to_string();
            let len = n.prefix_len();
            self.sh(&[
                "ip",
                "addr",
                "add",
                &format!("{gw}/{len}"),
                "dev",
                "cni0",
                "nodad",
            ]);
            let ip = format!("{}/{len}", nth6(n, 2));
            pod(&["ip", "addr", "add", &ip, "dev", "eth0", "nodad"]);
            pod(&["ip", "-6", "route", "add", NETWORK6, "via", &gw]);
        }
    }

    /// Give the vxlan devices new MACs with `tag` in them (as when flanneld
    /// recreates them without a stored MAC); the lease value follows. The
    /// kernel flushes a device's neighbour entries, permanent ones too,
    /// when its MAC changes (NETDEV_CHANGEADDR → `neigh_changeaddr`):
    /// program the peers again afterwards, as flanneld does for a new
    /// device.
    pub fn change_macs(&mut self, tag: u8) {
        self.mac4 = format!("0e:f0:00:{tag:02x}:04:{:02x}", self.host);
        self.mac6 = format!("0e:f0:00:{tag:02x}:06:{:02x}", self.host);
        for (on, v6) in [
            (self.subnet4.is_some(), false),
            (self.subnet6.is_some(), true),
        ] {
            if on {
                let mac = if v6 { &self.mac6 } else { &self.mac4 };
                self.sh(&["ip", "link", "set", &vxlan_dev(v6), "address", mac]);
            }
        }
    }

    pub fn public_ip(&self) -> Option<Ipv4Addr> {
        self.subnet4.map(|_| underlay4(self.host))
    }

    pub fn public_ipv6(&self) -> Option<Ipv6Addr> {
        self.subnet6.map(|_| underlay6(self.host))
    }

    /// The pod's address in a family.
    pub fn pod_ip(&self, v6: bool) -> Option<String> {
        if v6 {
            self.subnet6.map(|n| nth6(n, 2).to_string())
        } else {
            self.subnet4.map(|n| nth4(n, 2).to_string())
        }
    }

    /// Its lease key, as flanneld's MakeSubnetKey.
    pub fn key(&self) -> String {
        flannel_key(self.subnet4, self.subnet6)
    }

    /// Its lease value, as flanneld writes it.
    pub fn value(&self) -> String {
        let vx = self.backend == Backend::Vxlan;
        flannel_value(
            self.public_ip(),
            self.public_ipv6(),
            self.backend,
            self.subnet4.filter(|_| vx).map(|_| self.mac4.as_str()),
            self.subnet6.filter(|_| vx).map(|_| self.mac6.as_str()),
        )
    }

    /// What flanneld does for a lease that joined (vxlan
    /// `handleSubnetEvents`: ARP, FDB, then the onlink route; host-gw
    /// `RouteNetwork`: a route via the public address on the external
    /// interface), for each family both sides run.
    pub fn program(&self, p: &PeerLease) {
        let families = [
            (
                false,
                p.subnet4
                    .filter(|_| self.subnet4.is_some())
                    .map(ipnet::IpNet::V4),
                p.public_ip.map(|a| a.to_string()),
                &p.mac4,
            ),
            (
                true,
                p.subnet6
                    .filter(|_| self.subnet6.is_some())
                    .map(ipnet::IpNet::V6),
                p.public_ipv6.map(|a| a.to_string()),
                &p.mac6,
            ),
        ];
        for (v6, sn, public, mac) in families {
            let (Some(sn), Some(public)) = (sn, public) else {
                continue;
            };
            let fam = if v6 { "-6" } else { "-4" };
            let dst = sn.to_string();
            // host-gw's route; DirectRouting's has no device (the kernel
            // finds eth0).
            if self.direct {
                self.sh(&["ip", fam, "route", "replace", &dst, "via", &public]);
                continue;
            }
            if self.backend == Backend::HostGw {
                self.sh(&[
                    "ip", fam, "route", "replace", &dst, "via", &public, "dev", "eth0",
                ]);
                continue;
            }
            let mac = mac.as_deref().expect("a vxlan lease names its VtepMAC");
            let dev = vxlan_dev(v6);
            let gw = sn.network().to_string();
            self.sh(&[
                "ip",
                "neigh",
                "replace",
                &gw,
                "lladdr",
                mac,
                "dev",
                &dev,
                "nud",
                "permanent",
            ]);
            self.sh(&[
                "bridge",
                "fdb",
                "replace",
                mac,
                "dev",
                &dev,
                "dst",
                &public,
                "self",
                "permanent",
            ]);
            self.sh(&[
                "ip", fam, "route", "replace", &dst, "via", &gw, "dev", &dev, "onlink",
            ]);
        }
    }
}
