#!/usr/bin/env bash
# The agent at cluster scale (issue 20): one etcd, N simulated flanneld
# leases, K real `netboot agent`s each in its own namespace node, on this
# one machine. Reports, per N x K: start-to-converged time; idle etcd
# requests and bytes per agent per minute (from etcd's /metrics) and the
# agents' idle CPU and RSS; the storm after an etcd restart (peak Range
# requests per second, time to reconverge, relists); a burst of leases
# joining at once (time from the last write to the last agent's kernel).
# The code is tests/tests/agent_scale.rs; docs/agent.md has a table it made.
#
# Everything happens in namespaces it creates (prefix
# $NETBOOT_TEST_NETNS_PREFIX, default nbt-) and removes; the root network
# namespace is never touched.
#
# Usage: sudo scripts/scale.sh [--leases 100,1000,5000] [--agents 1,20]
#            [--idle SECS (300)] [--burst 1000] [--out FILE]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
while [[ $# -gt 0 ]]; do
  case $1 in
    --leases) export NETBOOT_SCALE_LEASES=${2:?--leases needs a list}; shift ;;
    --agents) export NETBOOT_SCALE_AGENTS=${2:?--agents needs a list}; shift ;;
    --idle) export NETBOOT_SCALE_IDLE_SECS=${2:?--idle needs seconds}; shift ;;
    --burst) export NETBOOT_SCALE_BURST=${2:?--burst needs a number}; shift ;;
    --out) export NETBOOT_SCALE_OUT=${2:?--out needs a file}; shift ;;
    -h | --help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "scale.sh: run as root (it creates network namespaces)" >&2; exit 1; }
command -v etcd >/dev/null || bash scripts/install-deps.sh
# The agent as it ships (release); the harness in the release profile too,
# so that it finds target/release/netboot beside it.
cargo build --release -p netboot
exec cargo test --release -p netboot-tests --test agent_scale -- --ignored --nocapture
