#!/usr/bin/env bash
# Benchmark netboot-cni against the reference CNI chain, side by side.
#
# Builds in release mode, then runs the benchmark binary: the reference
# chain (Debian's bridge + host-local + portmap, called directly) and
# netboot-cni in bridge mode and in native mode (CNI_PATH an empty dir)
# doing the same work (one port mapping per pod), alternating A/B in one
# run inside node netns it creates and removes (also on panic or Ctrl-C).
# Reports ADD/DEL median and p95 and the ratios, ADD+DEL totals, per-ADD
# cost (wall and CPU time) with 1/100/500/1000 pods on the node (pod subnet
# a /21), also side by side with a native node that keeps 1 pod, the data
# path at each level (TCP through a hostPort and pod to pod, new
# connections through the hostPort), N concurrent ADDs/DELs, peak RSS,
# processes and fsyncs per operation, and the goals of issues 3 and 17
# (MET/NOT MET).
# The default run takes about 15 minutes on a 2-core VM (filling the
# reference node to 1000 pods is most of it).
#
# Usage: sudo scripts/bench.sh [ITERATIONS] [--iterations N] [--scale 1,100,500,1000]
#            [--scale-reps N] [--datapath-reps N] [--settle SECS] [--concurrency 20]
#            [--rounds N] [--samples N] [--only ab,rss,procs,concurrent,scale] [--json FILE]
#   (ITERATIONS defaults to 30; `target/release/bench_plugin --help` explains
#   every flag)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
[[ $(id -u) -eq 0 ]] || { echo "bench: run as root (it creates network namespaces)" >&2; exit 1; }
bash scripts/install-deps.sh
bash scripts/build-release.sh
cargo build --release -p netboot-tests --bin bench_plugin
exec "${CARGO_TARGET_DIR:-target}/release/bench_plugin" "$@"
