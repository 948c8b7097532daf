#!/usr/bin/env bash
# Benchmark netboot-cni against the reference CNI chain, side by side.
#
# Builds in release mode, then runs the benchmark binary: the reference
# chain (Debian's bridge + host-local + portmap, called directly) and
# netboot-cni doing the same ADD+DEL work (one pod, one port mapping),
# alternating A/B in one run inside a node netns it creates and removes.
# Prints medians, p95 and the netboot/reference ratio.
#
# Usage: sudo scripts/bench.sh [ITERATIONS]   (default 30)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (it creates network namespaces)" >&2; exit 1; }
bash scripts/install-deps.sh
cargo build --release -p netboot-cni -p netboot-tests --bin netboot-cni --bin bench_plugin
exec target/release/bench_plugin "${1:-30}"
