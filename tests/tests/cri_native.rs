//! The kubelet path in native mode: containerd 1.6's CRI plugin, inside a
//! node netns, runs netboot-cni (mode `native`) for sandboxes a CRI v1
//! client creates (see `netboot_tests::cri`).

use netboot_tests::crash_support::Mode;
use netboot_tests::cri::round_trip::{plain_round_trip, ports_and_bandwidth_round_trip};

#[test]
fn cri_native_sandbox_round_trip() {
    plain_round_trip("cri-na", Mode::Native);
}

#[test]
fn cri_native_host_ports_and_bandwidth() {
    ports_and_bandwidth_round_trip("cri-na-hp", Mode::Native);
}
