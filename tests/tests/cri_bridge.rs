//! The kubelet path in bridge mode: containerd 1.6's CRI plugin, inside a
//! node netns, runs netboot-cni (mode `bridge`) for sandboxes a CRI v1
//! client creates (see `netboot_tests::cri`).

use netboot_tests::crash_support::Mode;
use netboot_tests::cri::round_trip::{plain_round_trip, ports_and_bandwidth_round_trip};

#[test]
fn cri_bridge_sandbox_round_trip() {
    plain_round_trip("cri-br", Mode::Bridge);
}

#[test]
fn cri_bridge_host_ports_and_bandwidth() {
    ports_and_bandwidth_round_trip("cri-br-hp", Mode::Bridge);
}
