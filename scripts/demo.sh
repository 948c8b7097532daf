#!/usr/bin/env bash
# netboot demo: network two pods on one "node" with the netboot-cni plugin.
#
# Everything happens in network namespaces this script creates (a node and
# two pods) and in a temp dir; the root network namespace is never touched.
# All of it is removed on exit, even on failure, unless --keep is given.
#
# Usage: sudo scripts/demo.sh [--keep] [--reference]
#   --keep       leave the namespaces and temp dir, print how to remove them
#   --reference  run Debian's reference bridge+host-local plugins with the
#                equivalent config instead of netboot-cni (for comparison)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CNI_PATH=/usr/lib/cni
NET_NAME=cbr0
PREFIX=nbdemo
NODE_NS="$PREFIX-node-$$"
PODS=("$PREFIX-pod1-$$" "$PREFIX-pod2-$$")

KEEP=0
REFERENCE=0
TMP=""
CURRENT_STEP="startup"
CREATED_NS=()

log() { printf '[demo] %s\n' "$*"; }
die() {
  printf '[demo] FAILED in step "%s": %s\n' "$CURRENT_STEP" "$*" >&2
  exit 1
}

usage() {
  sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --keep) KEEP=1 ;;
      --reference) REFERENCE=1 ;;
      -h | --help)
        usage
        exit 0
        ;;
      *)
        usage >&2
        exit 2
        ;;
    esac
    shift
  done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# step NAME CMD...: run one named step, print its duration, name it on error.
step() {
  local name=$1 start
  shift
  CURRENT_STEP=$name
  log "==> $name"
  start=$(now_ms)
  "$@"
  log "    ok: $name ($(($(now_ms) - start)) ms)"
}

on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    printf '[demo] FAILED in step "%s" (exit %d)\n' "$CURRENT_STEP" "$rc" >&2
  fi
  if [[ $KEEP -eq 1 ]]; then
    print_teardown
  else
    cleanup
  fi
  exit "$rc"
}

cleanup() {
  local ns
  for ns in "${CREATED_NS[@]}"; do
    ip netns delete "$ns" 2>/dev/null || true
  done
  if [[ -n $TMP && -d $TMP ]]; then
    rm -rf -- "$TMP"
  fi
  [[ ${#CREATED_NS[@]} -eq 0 ]] || log "cleaned up: namespaces ${CREATED_NS[*]} and ${TMP:-no temp dir}"
}

print_teardown() {
  log "--keep: left in place. Look around with:"
  log "  nsenter --net=/run/netns/$NODE_NS ip addr"
  log "Tear down with:"
  local ns
  for ns in "${CREATED_NS[@]}"; do
    log "  ip netns delete $ns"
  done
  [[ -z $TMP ]] || log "  rm -rf $TMP"
}

# in_node CMD...: run a command inside the node namespace. nsenter (not
# `ip netns exec`) keeps /sys as it is, like real CNI runtimes do.
in_node() { nsenter --net="/run/netns/$NODE_NS" -- "$@"; }
in_pod() {
  local pod=$1
  shift
  nsenter --net="/run/netns/$pod" -- "$@"
}

install_deps() { bash "$REPO/scripts/install-deps.sh"; }

build_release() {
  export PATH="$HOME/.cargo/bin:$PATH"
  (cd "$REPO" && bash scripts/build-release.sh)
  [[ -x $REPO/target/release/netboot-cni ]] || die "target/release/netboot-cni not built"
}

make_ns() {
  ip netns add "$1"
  CREATED_NS+=("$1")
  ip -n "$1" link set lo up
}

create_node() {
  make_ns "$NODE_NS"
  TMP=$(mktemp -d /tmp/netboot-demo.XXXXXX)
  log "    node netns $NODE_NS, temp dir $TMP"
}

write_subnet_env() {
  cat >"$TMP/subnet.env" <<EOF
FLANNEL_NETWORK=10.2.0.0/16
FLANNEL_SUBNET=10.2.1.1/24
FLANNEL_MTU=1450
FLANNEL_IPMASQ=true
EOF
  sed 's/^/    /' "$TMP/subnet.env"
}

write_netboot_conf() {
  jq -n --arg tmp "$TMP" --arg name "$NET_NAME" '{
    cniVersion: "1.0.0", name: $name, type: "netboot-cni", mode: "bridge",
    subnetFile: ($tmp + "/subnet.env"), dataDir: ($tmp + "/flannel"),
    ipam: {dataDir: ($tmp + "/ipam")},
    delegate: {isDefaultGateway: true, hairpinMode: true}
  }' >"$TMP/net.json"
}

# What flannel's CNI plugin hands to the bridge plugin for this subnet.env,
# except that the network route names its gateway: bridge 1.1.1 installs
# that route via the gateway but reports it without one, so its CHECK fails
# ("Expected Route {Dst:10.2.0.0/16 GW:<nil>} not found") on flannel's own
# route form.
write_reference_conf() {
  jq -n --arg tmp "$TMP" --arg name "$NET_NAME" '{
    cniVersion: "1.0.0", name: $name, type: "bridge", bridge: "cni0",
    mtu: 1450, isGateway: true, isDefaultGateway: true, hairpinMode: true,
    ipMasq: false,
    ipam: {type: "host-local", dataDir: ($tmp + "/ipam"),
           ranges: [[{subnet: "10.2.1.0/24"}]], routes: [{dst: "10.2.0.0/16", gw: "10.2.1.1"}]}
  }' >"$TMP/net.json"
}

write_conf() {
  if [[ $REFERENCE -eq 1 ]]; then
    PLUGIN=$CNI_PATH/bridge
    write_reference_conf
  else
    PLUGIN=$REPO/target/release/netboot-cni
    write_netboot_conf
  fi
  log "    plugin $PLUGIN, config:"
  jq -c . "$TMP/net.json" | sed 's/^/    /'
}

create_pods() {
  local pod
  for pod in "${PODS[@]}"; do
    make_ns "$pod"
  done
  log "    pods: ${PODS[*]}"
}

# cni COMMAND POD STDIN-FILE: one CNI call, run inside the node.
cni() {
  local command=$1 pod=$2 input=$3
  CNI_COMMAND=$command CNI_CONTAINERID="demo-$pod" CNI_NETNS="/run/netns/$pod" \
    CNI_IFNAME=eth0 CNI_PATH=$CNI_PATH CNI_ARGS="" \
    in_node "$PLUGIN" <"$input"
}

# The config a runtime sends on CHECK/DEL: the network config plus the
# ADD result as prevResult.
with_prev_result() {
  local pod=$1
  jq --slurpfile prev "$TMP/$pod.result.json" '. + {prevResult: $prev[0]}' \
    "$TMP/net.json" >"$TMP/$pod.prev.json"
}

add_pods() {
  local pod out
  for pod in "${PODS[@]}"; do
    if ! out=$(cni ADD "$pod" "$TMP/net.json"); then
      die "ADD for $pod failed: $out"
    fi
    printf '%s\n' "$out" >"$TMP/$pod.result.json"
    log "    $pod: $(jq -r '[.ips[].address] | join(", ")' <<<"$out")" \
      "gateway $(jq -r '.ips[0].gateway // "-"' <<<"$out")"
  done
}

pod_ip() { jq -r '.ips[0].address | split("/")[0]' "$TMP/$1.result.json"; }
pod_gw() { jq -r '.ips[0].gateway // "10.2.1.1"' "$TMP/$1.result.json"; }

show_network() {
  in_node ip -br addr show
  in_pod "${PODS[0]}" ip route show | sed 's/^/    pod1 route: /'
}

ping_from() {
  local pod=$1 ip=$2
  in_pod "$pod" ping -n -q -c1 -W2 "$ip" >/dev/null || die "no ping reply from $ip in $pod"
  log "    $pod -> $ip: reply"
}

ping_all() {
  local p1=${PODS[0]} p2=${PODS[1]}
  ping_from "$p1" "$(pod_ip "$p2")"
  ping_from "$p2" "$(pod_ip "$p1")"
  ping_from "$p1" "$(pod_gw "$p1")"
}

check_pods() {
  local pod out
  for pod in "${PODS[@]}"; do
    with_prev_result "$pod"
    out=$(cni CHECK "$pod" "$TMP/$pod.prev.json") || die "CHECK for $pod failed: $out"
    log "    $pod: CHECK ok"
  done
}

del_pods() {
  local pod out
  for pod in "${PODS[@]}"; do
    with_prev_result "$pod"
    out=$(cni DEL "$pod" "$TMP/$pod.prev.json") || die "DEL for $pod failed: $out"
    log "    $pod: DEL ok"
  done
}

ipam_allocations() {
  find "$TMP/ipam" -type f -regextype posix-extended \
    -regex '.*/[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+' 2>/dev/null || true
}

verify_clean() {
  local veths pod left
  veths=$(in_node ip -j link show type veth | jq -r '.[].ifname')
  [[ -z $veths ]] || die "veths left on the node: $veths"
  for pod in "${PODS[@]}"; do
    if in_pod "$pod" ip link show eth0 >/dev/null 2>&1; then
      die "eth0 left in $pod"
    fi
  done
  left=$(ipam_allocations)
  [[ -z $left ]] || die "IPAM store not empty: $left"
  log "    no veth on the node, no eth0 in the pods, IPAM store empty"
}

main() {
  parse_args "$@"
  [[ $(id -u) -eq 0 ]] || die "must run as root (try: sudo $0)"
  trap on_exit EXIT
  local t0
  t0=$(now_ms)
  step "install dependencies" install_deps
  step "build release" build_release
  step "create node netns" create_node
  step "write subnet.env" write_subnet_env
  step "write network config" write_conf
  step "create pod netns" create_pods
  step "CNI ADD both pods" add_pods
  step "show node and pod network" show_network
  step "ping pod-to-pod and pod-to-gateway" ping_all
  step "CNI CHECK both pods" check_pods
  step "CNI DEL both pods" del_pods
  step "verify nothing is left" verify_clean
  CURRENT_STEP="done"
  log "demo finished in $(($(now_ms) - t0)) ms"
}

main "$@"
