#!/usr/bin/env bash
# netboot demo: a three-node cluster in network namespaces, pods on two
# nodes talking across the vxlan overlay, one published on a hostPort.
#
#   1. install what is missing (scripts/install-deps.sh)
#   2. build (scripts/build-release.sh)
#   3. create the cluster: an underlay (a bridge inside its own netns), an
#      etcd node and two workers, each a netns with eth0 on the underlay
#   4. on each node, the same script a Vagrant VM runs
#      (vagrant/provision.sh --no-systemd): etcd; `netboot init`, then
#      `netboot agent`, then containerd on each worker
#   5. import the busybox test image; `podrun run` an HTTP server pod on
#      worker1 (hostPort 8080) and a client pod on worker2
#   6. the client fetches from the server across nodes; worker1 and worker2
#      reach worker1's hostPort
#
# The root network namespace is never touched: every link, address, route
# and rule lives in the namespaces this script creates. Everything is torn
# down at the end, even on failure, unless --keep is given.
#
# Usage: sudo scripts/demo.sh [--keep] [--no-install] [--no-build]
#        sudo scripts/demo.sh --down DIR     tear down a cluster left by --keep
#   --keep        leave the cluster running; prints how to use and remove it
#   --no-install  skip step 1;  --no-build  skip step 2 (use built binaries)
# Environment: NETBOOT_DEMO_PREFIX (default nbdemo-) prefixes the namespace
# names; CARGO_TARGET_DIR is honoured for the build and the binaries.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROVISION=$REPO/vagrant/provision.sh
PREFIX=${NETBOOT_DEMO_PREFIX:-nbdemo-}
[[ $PREFIX =~ ^[a-z0-9-]{1,10}$ ]] || {
  echo "NETBOOT_DEMO_PREFIX must be 1-10 of [a-z0-9-]" >&2
  exit 2
}
UL_NS="${PREFIX}ul-$$"
ETCD_NS="${PREFIX}etcd-$$"
W1_NS="${PREFIX}w1-$$"
W2_NS="${PREFIX}w2-$$"
# The same addresses as the Vagrantfile's private network.
ETCD_IP=192.168.56.10
W1_IP=192.168.56.11
W2_IP=192.168.56.12
ETCD_URL=http://$ETCD_IP:2379
HOST_PORT=8080
IMAGE=docker.io/library/busybox:netboot

KEEP=0
INSTALL=1
BUILD=1
TMP=""
CURRENT_STEP="startup"
STEP_NO=0
STEPS_TOTAL=12
CREATED_NS=()
T0=0
declare -A SUMMARY=()

if [[ -t 1 ]]; then
  B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'
else
  B="" G="" R="" N=""
fi
log() { printf '[demo] %s\n' "$*"; }
die() {
  printf '%s[demo] FAILED in step "%s": %s%s\n' "$R" "$CURRENT_STEP" "$*" "$N" >&2
  exit 1
}
usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { printf '%d.%02d s' $(($1 / 1000)) $(($1 % 1000 / 10)); }

# step NAME CMD...: one numbered step with its duration.
step() {
  local name=$1 start
  shift
  STEP_NO=$((STEP_NO + 1))
  CURRENT_STEP=$name
  printf '%s[demo] [%d/%d] %s%s\n' "$B" "$STEP_NO" "$STEPS_TOTAL" "$name" "$N"
  start=$(now_ms)
  "$@"
  printf '%s[demo]       ok (%s, %s total)%s\n' "$G" "$(secs $(($(now_ms) - start)))" \
    "$(secs $(($(now_ms) - T0)))" "$N"
}

in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" -- "$@"
}

# ---------------------------------------------------------------- teardown

# What --down needs, kept in the temp dir.
save_state() {
  {
    printf 'NAMESPACES="%s"\n' "${CREATED_NS[*]}"
    printf 'PROVISION="%s"\n' "$PROVISION"
  } >"$TMP/demo.state"
}

# teardown DIR: remove pods, stop the daemons (by their PID files), delete
# the namespaces, remove DIR.
teardown() {
  local dir=$1 node ns NAMESPACES="" PROVISION_SAVED=$PROVISION
  if [[ -f $dir/demo.state ]]; then
    # shellcheck disable=SC1091
    source "$dir/demo.state"
    PROVISION_SAVED=$PROVISION
  fi
  for node in worker1 worker2 etcd; do
    [[ -d $dir/$node ]] || continue
    ns=$(cat "$dir/$node/netns" 2>/dev/null || true)
    if [[ -n $ns && -e /run/netns/$ns ]]; then
      in_ns "$ns" bash "$PROVISION_SAVED" down --root "$dir/$node" || true
    else
      bash "$PROVISION_SAVED" down --root "$dir/$node" || true
    fi
  done
  for ns in $NAMESPACES; do
    ip netns delete "$ns" 2>/dev/null || true
  done
  rm -rf -- "$dir"
  log "removed: namespaces ${NAMESPACES:-none}, daemons, $dir"
}

show_logs() {
  local f
  [[ -n $TMP && -d $TMP ]] || return 0
  for f in "$TMP"/*/log/*.log; do
    [[ -f $f ]] || continue
    printf '%s[demo] --- last lines of %s ---%s\n' "$B" "${f#"$TMP"/}" "$N" >&2
    tail -n 15 "$f" | sed 's/^/    /' >&2
  done
}

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ $rc -ne 0 ]]; then
    printf '%s[demo] FAILED in step "%s" (exit %d)%s\n' "$R" "$CURRENT_STEP" "$rc" "$N" >&2
    show_logs
  fi
  if [[ -n $TMP && -d $TMP ]]; then
    if [[ $KEEP -eq 1 && $rc -eq 0 ]]; then
      print_keep
    else
      log "tearing down"
      teardown "$TMP"
    fi
  fi
  exit "$rc"
}

print_keep() {
  log "--keep: the cluster is still running. Try:"
  log "  sudo nsenter --net=/run/netns/$W1_NS $TMP/worker1/bin/podrun-node ps"
  log "  sudo nsenter --net=/run/netns/$W2_NS $TMP/worker2/bin/podrun-node exec client client -- wget -qO- http://${SUMMARY[server_ip]:-SERVER_IP}/"
  log "  sudo nsenter --net=/run/netns/$W1_NS $TMP/worker1/bin/netboot doctor --etcd $ETCD_URL --subnet-file $TMP/worker1/run/flannel/subnet.env --cni-conf-dir $TMP/worker1/cni/net.d --cni-bin-dir $TMP/worker1/cni/bin"
  log "Tear it down with:"
  log "  sudo $REPO/scripts/demo.sh --down $TMP"
}

# ---------------------------------------------------------------- steps

install_deps() { bash "$REPO/scripts/install-deps.sh" | sed 's/^/    /'; }

target_dir() { echo "${CARGO_TARGET_DIR:-$REPO/target}"; }

build_release() {
  export PATH="$HOME/.cargo/bin:$PATH"
  (cd "$REPO" && bash scripts/build-release.sh) 2>&1 | sed 's/^/    /'
  check_binaries
}

check_binaries() {
  local b
  for b in netboot netboot-cni podrun pause; do
    [[ -x $(target_dir)/release/$b ]] || die "$(target_dir)/release/$b not built (run scripts/build-release.sh)"
  done
  log "    binaries in $(target_dir)/release"
}

make_ns() {
  ip netns add "$1"
  CREATED_NS+=("$1")
  save_state
  ip -n "$1" link set lo up
}

# attach NODE-DIR NS IP: a node netns with eth0=IP/24 on the underlay bridge.
attach() {
  local dir=$1 ns=$2 ip=$3 port
  port="ul${ip##*.}"
  make_ns "$ns"
  ip -n "$UL_NS" link add "$port" type veth peer name eth0 netns "$ns"
  ip -n "$UL_NS" link set "$port" master br0 up
  ip -n "$ns" addr add "$ip/24" dev eth0
  ip -n "$ns" link set eth0 up
  mkdir -p "$TMP/$dir"
  echo "$ns" >"$TMP/$dir/netns"
  log "    $dir: netns $ns, eth0 $ip/24"
}

create_cluster() {
  TMP=$(mktemp -d /tmp/netboot-demo.XXXXXX)
  log "    temp dir $TMP (node dirs, logs, PID files)"
  make_ns "$UL_NS"
  ip -n "$UL_NS" link add br0 type bridge
  ip -n "$UL_NS" link set br0 up
  log "    underlay: bridge br0 in netns $UL_NS"
  attach etcd "$ETCD_NS" "$ETCD_IP"
  attach worker1 "$W1_NS" "$W1_IP"
  attach worker2 "$W2_NS" "$W2_IP"
  in_ns "$W1_NS" ping -n -q -c1 -W2 "$W2_IP" >/dev/null || die "worker1 cannot ping worker2 on the underlay"
  log "    underlay works: worker1 -> worker2 ping ok"
}

# provision NODE NS ARGS...: vagrant/provision.sh in the node's netns; on
# failure, its ERROR line is the reason the demo gives.
provision() {
  local node=$1 ns=$2 out
  shift 2
  out=$TMP/$node/provision.out
  if ! in_ns "$ns" bash "$PROVISION" "$@" --no-systemd --root "$TMP/$node" 2>&1 |
    tee "$out" | sed 's/^/    /'; then
    die "$(grep -m1 'ERROR' "$out" || echo "vagrant/provision.sh $1 failed")"
  fi
}

provision_etcd() {
  provision etcd "$ETCD_NS" etcd --addr "$ETCD_IP" --name control
}

provision_worker() {
  local name=$1 ns=$2 ip=$3
  provision "$name" "$ns" worker --addr "$ip" --etcd "$ETCD_URL" --name "$name" \
    --bin-src "$(target_dir)/release"
  SUMMARY[${name}_subnet]=$(sed -n 's/^FLANNEL_SUBNET=//p' "$TMP/$name/run/flannel/subnet.env")
}

podrun_on() {
  local name=$1 ns
  shift
  ns=$(cat "$TMP/$name/netns")
  in_ns "$ns" "$TMP/$name/bin/podrun-node" "$@"
}

import_image() {
  bash "$REPO/scripts/build-test-image.sh" "$TMP/busybox.tar" "$IMAGE" | sed 's/^/    /'
  local name
  for name in worker1 worker2; do
    ctr --address "$TMP/$name/containerd/containerd.sock" -n "netboot-$name" \
      images import "$TMP/busybox.tar" | sed "s/^/    $name: /"
  done
}

show_overlay() {
  local name ns
  for name in worker1 worker2; do
    ns=$(cat "$TMP/$name/netns")
    log "    $name: subnet ${SUMMARY[${name}_subnet]}, $(in_ns "$ns" ip -br addr show flannel.1 | awk '{print $1, $3, $4}')"
    in_ns "$ns" ip route show dev flannel.1 | sed "s/^/      route: /"
  done
}

# start_pod WORKER SPEC KEY: `podrun run -f SPEC` on WORKER; the pod's IP
# into SUMMARY[KEY].
start_pod() {
  local out
  out=$(podrun_on "$1" run -f "$2") || die "podrun run $(basename "$2" .json) failed: $out"
  SUMMARY[$3]=$(awk '{print $2}' <<<"$out")
}

run_server() {
  cat >"$TMP/web.json" <<EOF
{"name": "web", "ports": [{"containerPort": 80, "hostPort": $HOST_PORT}],
 "containers": [{"name": "httpd", "image": "$IMAGE",
   "command": ["sh", "-c", "echo \"hello from pod \$(hostname) on worker1\" > /www/index.html && exec httpd -f -p 80 -h /www"]}]}
EOF
  start_pod worker1 "$TMP/web.json" server_ip
  log "    worker1: pod web at ${SUMMARY[server_ip]} (httpd :80, hostPort $HOST_PORT)"
}

run_client() {
  cat >"$TMP/client.json" <<EOF
{"name": "client", "containers": [{"name": "client", "image": "$IMAGE", "command": ["sleep", "100000"]}]}
EOF
  start_pod worker2 "$TMP/client.json" client_ip
  log "    worker2: pod client at ${SUMMARY[client_ip]}"
}

# retry_out N CMD...: run CMD up to N times (0.5 s apart) until it succeeds;
# prints its output.
retry_out() {
  local n=$1 i out
  shift
  for ((i = 1; i <= n; i++)); do
    if out=$("$@" 2>&1); then
      printf '%s' "$out"
      return 0
    fi
    sleep 0.5
  done
  printf '%s' "$out"
  return 1
}

cross_node_fetch() {
  local url="http://${SUMMARY[server_ip]}/" out
  log "    worker2/client\$ wget -qO- $url"
  # (busybox-static's wget crashes with -T; timeout(1) bounds each try)
  out=$(retry_out 20 timeout 10 nsenter --net="/run/netns/$W2_NS" \
    "$TMP/worker2/bin/podrun-node" exec client client -- wget -qO- "$url") ||
    die "the client pod on worker2 could not fetch $url: $out"
  log "    -> $out"
  SUMMARY[fetch]=$out
}

host_port() {
  local url="http://$W1_IP:$HOST_PORT/" out
  log "    worker1\$ curl $url   (the node, its own address)"
  out=$(retry_out 10 in_ns "$W1_NS" curl -sS -m 3 "$url") || die "worker1 could not reach its hostPort $url: $out"
  log "    -> $out"
  SUMMARY[hostport_self]=$out
  log "    worker2\$ curl $url   (another node, over the underlay)"
  out=$(retry_out 10 in_ns "$W2_NS" curl -sS -m 3 "$url") || die "worker2 could not reach worker1's hostPort $url: $out"
  log "    -> $out"
  SUMMARY[hostport_peer]=$out
}

doctor() {
  local name ns out
  for name in worker1 worker2; do
    ns=$(cat "$TMP/$name/netns")
    if out=$(in_ns "$ns" "$TMP/$name/bin/netboot" doctor --etcd "$ETCD_URL" \
      --subnet-file "$TMP/$name/run/flannel/subnet.env" \
      --cni-conf-dir "$TMP/$name/cni/net.d" --cni-bin-dir "$TMP/$name/cni/bin" 2>&1); then
      log "    $name: $(tail -n 1 <<<"$out")"
      SUMMARY[${name}_doctor]="healthy"
    else
      printf '%s\n' "$out" | sed 's/^/    /'
      die "netboot doctor found a problem on $name"
    fi
  done
}

summary() {
  local total
  total=$(secs $(($(now_ms) - T0)))
  cat <<EOF

${B}[demo] What this proved${N}
  cluster        etcd $ETCD_IP, worker1 $W1_IP, worker2 $W2_IP (network namespaces on one underlay bridge)
  node subnets   worker1 ${SUMMARY[worker1_subnet]}   worker2 ${SUMMARY[worker2_subnet]}   (leased by netboot agent from etcd)
  pods           web ${SUMMARY[server_ip]} on worker1 (hostPort $HOST_PORT)   client ${SUMMARY[client_ip]} on worker2
  cross-node     client (worker2) -> web (worker1) over vxlan: "${SUMMARY[fetch]}"
  hostPort       worker1 -> $W1_IP:$HOST_PORT: "${SUMMARY[hostport_self]}"
                 worker2 -> $W1_IP:$HOST_PORT: "${SUMMARY[hostport_peer]}"
  doctor         worker1 ${SUMMARY[worker1_doctor]}, worker2 ${SUMMARY[worker2_doctor]}
  provisioning   vagrant/provision.sh (the Vagrant VMs' script) in --no-systemd mode
  total time     $total
EOF
}

# ---------------------------------------------------------------- main

parse_args() {
  while [[ $# -gt 0 ]]; do
    case $1 in
      --keep) KEEP=1 ;;
      --no-install) INSTALL=0 ;;
      --no-build) BUILD=0 ;;
      --down)
        [[ -n ${2:-} && -d $2 ]] || die "--down needs the demo's directory (printed by --keep)"
        [[ $(id -u) -eq 0 ]] || die "must run as root"
        teardown "$2"
        exit 0
        ;;
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

main() {
  parse_args "$@"
  [[ $(id -u) -eq 0 ]] || die "must run as root (try: sudo $0)"
  trap on_exit EXIT
  trap 'exit 130' INT TERM
  T0=$(now_ms)
  if [[ $INSTALL -eq 1 ]]; then
    step "install dependencies" install_deps
  else
    step "install dependencies (skipped: --no-install)" true
  fi
  if [[ $BUILD -eq 1 ]]; then
    step "build (scripts/build-release.sh)" build_release
  else
    step "build (skipped: --no-build)" check_binaries
  fi
  step "create the cluster: underlay, etcd node, worker1, worker2" create_cluster
  step "etcd node: vagrant/provision.sh etcd" provision_etcd
  step "worker1: vagrant/provision.sh worker (netboot init, netboot agent, containerd)" \
    provision_worker worker1 "$W1_NS" "$W1_IP"
  step "worker2: vagrant/provision.sh worker (netboot init, netboot agent, containerd)" \
    provision_worker worker2 "$W2_NS" "$W2_IP"
  step "the overlay: subnets, flannel.1, routes to the other node" show_overlay
  step "import the busybox image into both containerds" import_image
  step "podrun: HTTP server pod on worker1 (hostPort $HOST_PORT), client pod on worker2" \
    eval 'run_server && run_client'
  step "client on worker2 fetches from the server on worker1" cross_node_fetch
  step "the hostPort, from worker1 and from worker2" host_port
  step "netboot doctor on both workers" doctor
  CURRENT_STEP="done"
  summary
}

main "$@"
