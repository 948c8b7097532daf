//! Deterministic host-side interface names.

/// Linux's IFNAMSIZ minus the NUL: the longest interface name.
pub const MAX_IFNAME_LEN: usize = 15;

/// Prefix of every host-side veth netboot creates. It differs from the
/// reference bridge plugin's random `veth<8 hex>` names, so GC can tell
/// netboot's devices from ones it must leave alone.
pub const HOST_VETH_PREFIX: &str = "nbv";

/// Host-side veth name for a container attachment: `nbv` + 12 lowercase hex
/// digits (15 bytes, the limit), derived from `container_id` and `ifname`
/// with 64-bit FNV-1a folded to 48 bits.
///
/// Deterministic across runs and processes (no random seed), so DEL can find
/// the device from the CNI arguments alone, even without a record.
/// Collisions: 48 bits gives about a 1-in-5·10^10 chance on a node with 100
/// attachments (n²/2⁴⁹); a collision surfaces as an `is_exists()` error from
/// [`crate::LinkHandle::add_veth`], never as silently sharing a device.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The NUL separator keeps ("ab","c") and ("a","bc") apart.
    for b in container_id.bytes().chain([0u8]).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let folded = (h ^ (h >> 48)) & 0xffff_ffff_ffff;
    format!("{HOST_VETH_PREFIX}{folded:012x}")
}

/// Prefix of the reference bandwidth plugin's ifb devices.
const IFB_PREFIX: &str = "bwp";

/// The ifb device that shapes a container's egress, named as the
/// reference bandwidth plugin names it (plugins/meta/bandwidth
/// `getIfbDeviceName`: `bwp` + hex sha512(network + containerID), cut to
/// 15 bytes), so that either can remove what the other made.
pub fn ifb_name(network: &str, container_id: &str) -> String {
    crate::firewall::hash::hash_with_prefix(
        MAX_IFNAME_LEN,
        IFB_PREFIX,
        &format!("{network}{container_id}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_short() {
        let a = host_veth_name("abc123", "eth0");
        assert_eq!(a, host_veth_name("abc123", "eth0"));
        assert_ne!(a, host_veth_name("abc123", "eth1"));
        assert_ne!(host_veth_name("ab", "c"), host_veth_name("a", "bc"));
        assert!(a.starts_with(HOST_VETH_PREFIX) && a.len() == MAX_IFNAME_LEN);
        // Pinned value: a change here renames every existing host veth,
        // breaking DEL of containers created by an older netboot.
        assert_eq!(host_veth_name("abc123", "eth0"), PINNED);
    }

    #[test]
    fn ifb_name_is_the_reference_plugins() {
        // python3: ("bwp" + sha512(b"cbr0abc123").hexdigest())[:15]
        assert_eq!(ifb_name("cbr0", "abc123"), "bwp3e9a3d0f9583");
    }

    const PINNED: &str = "nbvc05124233adc";
}
