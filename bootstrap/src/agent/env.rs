//! flannel's `/run/flannel/subnet.env` (flannel `pkg/subnet/subnet.go`
//! WriteSubnetFile): written atomically (temp file, fsync, 0644, rename,
//! fsync of the directory), read back for the previous subnet.

use std::path::Path;

use anyhow::{Context, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::lease::SubnetKey;
use crate::subnet_env::SubnetEnv;

/// The file's text, as flanneld writes it: for each enabled family its
/// network and the first usable IP of our subnet with the subnet's length
/// (`FLANNEL_SUBNET=10.2.3.1/24`, `FLANNEL_IPV6_SUBNET=fd00:0:0:3::1/64`),
/// then FLANNEL_MTU and FLANNEL_IPMASQ. Each family is (network, subnet).
pub fn render(
    v4: Option<(IpNet, IpNet)>,
    v6: Option<(IpNet, IpNet)>,
    mtu: u32,
    ipmasq: bool,
) -> String {
    let first = |sn: IpNet| match sn.network() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(1))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(1))),
    };
    let mut s = String::new();
    if let Some((net, sn)) = v4 {
        s.push_str(&format!(
            "FLANNEL_NETWORK={net}\nFLANNEL_SUBNET={}/{}\n",
            first(sn),
            sn.prefix_len()
        ));
    }
    if let Some((net, sn)) = v6 {
        s.push_str(&format!(
            "FLANNEL_IPV6_NETWORK={net}\nFLANNEL_IPV6_SUBNET={}/{}\n",
            first(sn),
            sn.prefix_len()
        ));
    }
    s.push_str(&format!("FLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ipmasq}\n"));
    s
}

/// Replace `path` with `text` atomically and durably, mode 0644.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    atomicfile::Options::new()
        .durable(true)
        .mode(0o644)
        .replace(path, text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// The subnets named by an existing file's FLANNEL_SUBNET and
/// FLANNEL_IPV6_SUBNET (`10.2.3.1/24` → `10.2.3.0/24`).
pub fn previous_subnets(path: &Path) -> SubnetKey {
    SubnetEnv::read(path).unwrap_or_default().subnet_key()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn renders_and_reads_back() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        let text = render(
            Some((net("10.2.0.0/16"), net("10.2.3.0/24"))),
            None,
            1450,
            true,
        );
        assert_eq!(
            text,
            "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("run/flannel/subnet.env");
        write_atomic(&p, &text).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let prev = previous_subnets(&p);
        assert_eq!(prev.v4, Some("10.2.3.0/24".parse().unwrap()));
        assert_eq!(prev.v6, None);
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
        let dual = render(
            Some((net("10.2.0.0/16"), net("10.2.3.0/24"))),
            Some((net("fd42:10::/56"), net("fd42:10:0:3::/64"))),
            1430,
            false,
        );
        assert_eq!(
            dual,
            "FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.3.1/24\n\
             FLANNEL_IPV6_NETWORK=fd42:10::/56\nFLANNEL_IPV6_SUBNET=fd42:10:0:3::1/64\n\
             FLANNEL_MTU=1430\nFLANNEL_IPMASQ=false\n"
        );
        write_atomic(&p, &dual).unwrap();
        assert_eq!(
            previous_subnets(&p).v6,
            Some("fd42:10:0:3::/64".parse().unwrap())
        );
        let v6only = render(
            None,
            Some((net("fd42:10::/56"), net("fd42:10:0:3::/64"))),
            1500,
            true,
        );
        assert!(
            v6only.starts_with("FLANNEL_IPV6_NETWORK=fd42:10::/56\n"),
            "{v6only}"
        );
    }
}
