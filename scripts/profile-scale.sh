#!/usr/bin/env bash
# Where does a native ADD's cost grow with the pods on a node? CPU time
# (perf stat task-clock: not inflated by other load like wall time) of
# netboot-cni ADD and DEL on a node netns with 1 pod and one with N pods,
# calls alternating between the two, and the same kernel operations done
# by hand (`ip link add`, `ip link set master cni0`, `nft add element` into
# the hostPort map, `ip link del` of the port) on the same two nodes, to
# tell our code from the kernel's.
#
# Everything happens in namespaces this script creates (prefix
# $NETBOOT_TEST_NETNS_PREFIX, default nbp-) and deletes on exit, also on
# failure or Ctrl-C; the root network namespace is never touched.
#
# Usage: sudo scripts/profile-scale.sh [PODS (500)] [REPS (15)]
#   installs what it needs (the project's deps, linux-perf) and builds
#   target/release/netboot-cni when missing.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PODS=${1:-500}
REPS=${2:-15}
BIN="${CARGO_TARGET_DIR:-$REPO/target}/release/netboot-cni"
[[ $(id -u) -eq 0 ]] || { echo "profile-scale: run as root" >&2; exit 1; }
# The project's dependencies, then perf (only this script needs it).
bash "$REPO/scripts/install-deps.sh"
if ! command -v perf >/dev/null; then
  apt-get install -y --no-install-recommends linux-perf >/dev/null ||
    { echo "profile-scale: cannot install perf (apt-get install linux-perf)" >&2; exit 1; }
fi
[[ -x $BIN ]] || bash "$REPO/scripts/build-release.sh"

PFX="${NETBOOT_TEST_NETNS_PREFIX:-nbp-}$$-"
WORK=$(mktemp -d /tmp/netboot-profile-XXXXXX)
cleanup() {
    local ns
    for ns in $(ip netns list | awk '{print $1}'); do
        if [[ $ns == "$PFX"* ]]; then ip netns del "$ns" || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# node TAG: a node netns with its own dirs and subnet.env.
node() {
    mkdir -p "$WORK/$1/empty"
    ip netns add "${PFX}$1"
    ip -n "${PFX}$1" link set lo up
    printf 'FLANNEL_NETWORK=10.2.0.0/16\nFLANNEL_SUBNET=10.2.0.1/21\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n' \
        >"$WORK/$1/subnet.env"
}

# cni TAG CMD CID PORT [wrapper...]: one netboot-cni call in node TAG.
cni() {
    local tag=$1 cmd=$2 cid=$3 port=$4 d="$WORK/$1"
    shift 4
    printf '%s' "{\"cniVersion\":\"1.0.0\",\"name\":\"cbr0\",\"type\":\"netboot-cni\",\"mode\":\"native\",
\"subnetFile\":\"$d/subnet.env\",\"dataDir\":\"$d/flannel\",\"ipam\":{\"dataDir\":\"$d/ipam\"},
\"delegate\":{\"hairpinMode\":true,\"isDefaultGateway\":true},
\"runtimeConfig\":{\"portMappings\":[{\"hostPort\":$port,\"containerPort\":80,\"protocol\":\"tcp\"}]}}" |
        CNI_COMMAND=$cmd CNI_CONTAINERID=$cid CNI_NETNS="/run/netns/${PFX}$tag-$cid" \
            CNI_IFNAME=eth0 CNI_PATH="$d/empty" \
            nsenter --net="/run/netns/${PFX}$tag" "$@" "$BIN" >/dev/null
}

# fill TAG N: N pods attached.
fill() {
    local k
    for ((k = 0; k < $2; k++)); do
        ip netns add "${PFX}$1-f$k"
        cni "$1" ADD "f$k" $((20000 + k))
    done
    ip netns add "${PFX}$1-x"
}

# cpu FILE CMD...: append CMD's task-clock (ms) to FILE.
cpu() {
    local out=$1
    shift
    perf stat -x, -e task-clock -o "$WORK/stat" -- "$@" >/dev/null
    grep task-clock "$WORK/stat" | cut -d, -f1 >>"$out"
}

# cni_cpu TAG CMD: the extra pod's CMD, its task-clock appended to TAG.cmd.
cni_cpu() {
    cni "$1" "$2" x 40000 perf stat -x, -e task-clock -o "$WORK/stat"
    grep task-clock "$WORK/stat" | cut -d, -f1 >>"$WORK/$1.${2,,}"
}

# bare TAG: the ADD's kernel operations by hand, each timed, then undone.
bare() {
    local n="/run/netns/${PFX}$1"
    cpu "$WORK/$1.veth" nsenter --net="$n" ip link add nbpbare0 type veth peer name eth9 netns "${PFX}$1-x"
    cpu "$WORK/$1.master" nsenter --net="$n" ip link set nbpbare0 master cni0
    cpu "$WORK/$1.nft" nsenter --net="$n" nft add element inet netboot hostports_ip_tcp \
        '{ 45000 : 10.2.7.250 . 80 }'
    nsenter --net="$n" nft delete element inet netboot hostports_ip_tcp '{ 45000 }'
    cpu "$WORK/$1.linkdel" nsenter --net="$n" ip link del nbpbare0
}

median() { sort -n "$1" | awk '{v[NR] = $1} END {printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "filling: 1 pod on node a, $PODS pods on node b"
node a
node b
fill a 1
fill b "$PODS"
echo "measuring: $REPS alternating rounds"
for ((r = 0; r < REPS; r++)); do
    for t in a b; do
        cni_cpu "$t" ADD
        cni_cpu "$t" DEL
        bare "$t"
    done
done
printf '\nCPU time (task-clock), ms, median of %s: node with 1 pod / node with %s pods\n' "$REPS" "$PODS"
for what in add:"netboot-cni ADD" del:"netboot-cni DEL" veth:"ip link add (veth, peer in a pod)" \
    master:"ip link set master cni0" nft:"nft add element (hostport map)" \
    linkdel:"ip link del (bridge port veth)"; do
    f=${what%%:*}
    a=$(median "$WORK/a.$f")
    b=$(median "$WORK/b.$f")
    printf '%-36s %8s %8s  %sx\n' "${what#*:}" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", b / a}')"
done
