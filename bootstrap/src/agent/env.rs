//! flannel's `/run/flannel/subnet.env` (flannel `pkg/subnet/subnet.go`
//! WriteSubnetFile): written atomically (temp file, fsync, 0644, rename,
//! fsync of the directory), read back for the previous subnet.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use ipnet::Ipv4Net;

/// The file's text: FLANNEL_NETWORK, FLANNEL_SUBNET (first usable IP of the
/// subnet with its length, e.g. 10.2.3.1/24), FLANNEL_MTU, FLANNEL_IPMASQ.
pub fn render(network: Ipv4Net, subnet: Ipv4Net, mtu: u32, ipmasq: bool) -> String {
    let first = std::net::Ipv4Addr::from(u32::from(subnet.network()) + 1);
    format!(
        "FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={first}/{}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ipmasq}\n",
        subnet.prefix_len()
    )
}

/// Replace `path` with `text` atomically.
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let name = path
        .file_name()
        .map_or("subnet.env".into(), |n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_context(|| format!("write {}", path.display()))
}

/// The subnet named by an existing file's FLANNEL_SUBNET (`10.2.3.1/24` →
/// `10.2.3.0/24`).
pub fn previous_subnet(path: &Path) -> Option<Ipv4Net> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))
        .and_then(|v| v.trim().parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_reads_back() {
        let text = render(
            "10.2.0.0/16".parse().unwrap(),
            "10.2.3.0/24".parse().unwrap(),
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
        assert_eq!(previous_subnet(&p), Some("10.2.3.0/24".parse().unwrap()));
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
