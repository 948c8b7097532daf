#!/usr/bin/env bash
# Turn this machine (a VM, or a network namespace "node") into a netboot
# cluster node.
#
#   provision.sh etcd   --addr A [--name N]
#   provision.sh worker --addr A --etcd URL [--name N] [--network CIDR]
#                       [--flannel netboot|upstream] [--bin-src DIR] [--pause-bin FILE]
#   provision.sh down   --root DIR        (stop what --no-systemd started there)
#
# Common options:
#   --no-systemd   (or NETBOOT_NO_SYSTEMD=1) do not use systemd or the
#                  standard paths: every file lives under --root DIR and the
#                  daemons (etcd; agent or flanneld; containerd) are started
#                  detached from this script, PIDs in DIR/pids, logs in
#                  DIR/log. Run the script inside the node's netns
#                  (nsenter --net=/run/netns/NODE provision.sh ...): the
#                  daemons stay there. This is how scripts/demo.sh and the
#                  multi-node tests use it.
#   --root DIR     the node's directory in --no-systemd mode.
#
# Worker: installs the binaries, runs `netboot init` (network config in etcd
# once, conflist, netboot-cni), starts `netboot agent` (or, with --flannel
# upstream, upstream flanneld + the flannel CNI plugin, downloaded at the
# pinned versions below), waits for subnet.env, then starts containerd.
# Pods are run with podrun (in --no-systemd mode: DIR/bin/podrun-node, a
# wrapper with the node's containerd socket, CNI dirs and state dir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$HERE/common.sh"

# Upstream flannel for the mixed cluster (pinned; override to test others).
FLANNEL_VERSION=${FLANNEL_VERSION:-v0.28.9}
FLANNEL_CNI_VERSION=${FLANNEL_CNI_VERSION:-v1.9.1-flannel1}

ROLE=""
ADDR=""
NAME=""
ETCD=""
NETWORK=10.2.0.0/16
FLAVOR=netboot
BIN_SRC=/vagrant/target/release
PAUSE_BIN=""
ROOT=""
NO_SYSTEMD=${NETBOOT_NO_SYSTEMD:-0}

usage() { sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

parse_args() {
  ROLE=${1:-}
  [[ -n $ROLE ]] || {
    usage >&2
    exit 2
  }
  shift
  while [[ $# -gt 0 ]]; do
    case $1 in
      --addr) ADDR=$2; shift ;;
      --name) NAME=$2; shift ;;
      --etcd) ETCD=$2; shift ;;
      --network) NETWORK=$2; shift ;;
      --flannel) FLAVOR=$2; shift ;;
      --bin-src) BIN_SRC=$2; shift ;;
      --pause-bin) PAUSE_BIN=$2; shift ;;
      --root) ROOT=$2; shift ;;
      --no-systemd) NO_SYSTEMD=1 ;;
      -h | --help) usage; exit 0 ;;
      *) nb_die "unknown option '$1' (see --help)" ;;
    esac
    shift
  done
  [[ $NO_SYSTEMD == 0 || -n $ROOT ]] || nb_die "--no-systemd needs --root DIR"
  [[ -z $ROOT || $ROOT == /* ]] || nb_die "--root must be an absolute path"
  [[ $FLAVOR == netboot || $FLAVOR == upstream ]] || nb_die "--flannel is netboot or upstream"
  NB_WHO="provision ${NAME:-$ROLE}"
}

need_addr() {
  [[ -n $ADDR ]] || nb_die "--addr is required"
  IFACE=$(nb_iface_of "$ADDR")
  [[ -n $IFACE ]] || nb_die "no interface carries $ADDR here (ip -4 addr)"
}

# ---------------------------------------------------------------- etcd

etcd_role() {
  need_addr
  local name=${NAME:-control}
  local client="http://$ADDR:2379" peer="http://$ADDR:2380"
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_spawn "$ROOT/pids/etcd.pid" "$ROOT/log/etcd.log" \
      etcd --name "$name" --data-dir "$ROOT/etcd" \
      --listen-client-urls "$client,http://127.0.0.1:2379" --advertise-client-urls "$client" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$name=$peer" --initial-cluster-state new \
      --initial-cluster-token netboot
  else
    # Debian's etcd-server reads /etc/default/etcd.
    cat >/etc/default/etcd <<EOF
ETCD_NAME=$name
ETCD_DATA_DIR=/var/lib/etcd/default
ETCD_LISTEN_CLIENT_URLS=$client,http://127.0.0.1:2379
ETCD_ADVERTISE_CLIENT_URLS=$client
ETCD_LISTEN_PEER_URLS=$peer
ETCD_INITIAL_ADVERTISE_PEER_URLS=$peer
ETCD_INITIAL_CLUSTER=$name=$peer
ETCD_INITIAL_CLUSTER_STATE=new
ETCD_INITIAL_CLUSTER_TOKEN=netboot
EOF
    systemctl enable etcd >/dev/null 2>&1 || true
    systemctl restart etcd
  fi
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_wait_daemon "$ROOT/pids/etcd.pid" "$ROOT/log/etcd.log" 30 "etcd at $client" \
      curl -fsS -m 2 "$client/health"
  else
    nb_wait 30 "etcd at $client" curl -fsS -m 2 "$client/health"
  fi
  nb_log "etcd is up at $client"
}

# ---------------------------------------------------------------- worker

# Paths: the standard ones, or under --root.
set_paths() {
  if [[ $NO_SYSTEMD == 1 ]]; then
    BIN=$ROOT/bin
    CNI_BIN=$ROOT/cni/bin
    CNI_CONF=$ROOT/cni/net.d
    CNI_DATA=$ROOT/cni/data
    SUBNET_FILE=$ROOT/run/flannel/subnet.env
  else
    BIN=/usr/local/bin
    CNI_BIN=/opt/cni/bin
    CNI_CONF=/etc/cni/net.d
    CNI_DATA=""
    SUBNET_FILE=/run/flannel/subnet.env
  fi
}

netboot_init() {
  local args=(init --etcd "$ETCD" --network "$NETWORK"
    --cni-conf-dir "$CNI_CONF" --cni-bin-dir "$CNI_BIN")
  [[ $FLAVOR == upstream ]] && args+=(--upstream)
  if [[ $NO_SYSTEMD == 1 ]]; then
    args+=(--subnet-file "$SUBNET_FILE" --cni-data-dir "$CNI_DATA")
  fi
  "$BIN/netboot" "${args[@]}" | sed 's/^/    /'
}

start_agent() {
  local args=(agent --etcd "$ETCD" --iface "$IFACE" --public-ip "$ADDR"
    --subnet-file "$SUBNET_FILE" --ip-masq)
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_spawn "$ROOT/pids/agent.pid" "$ROOT/log/agent.log" "$BIN/netboot" "${args[@]}"
  else
    # The unit and settings file shipped in conf/, as a manual install
    # does (docs/install.md, "Install on a real node").
    install -m 0644 "$HERE/../conf/netboot-agent.service" /etc/systemd/system/
    install -d -m 0755 /etc/netboot
    (
      umask 077
      printf '# Written by vagrant/provision.sh; variables: conf/netboot-agent.env\nNETBOOT_AGENT_ARGS=%s\n' \
        "${args[*]:1}" >/etc/netboot/agent.env
    )
    systemctl daemon-reload
    systemctl enable --now netboot-agent.service
  fi
}

# Upstream flanneld + the upstream flannel CNI plugin (+ Debian's reference
# bridge/host-local/portmap it delegates to), at the pinned versions.
install_upstream_flannel() {
  local tmp url
  tmp=$(mktemp -d)
  url=https://github.com/flannel-io/flannel/releases/download/$FLANNEL_VERSION/flannel-$FLANNEL_VERSION-linux-amd64.tar.gz
  nb_log "downloading $url"
  curl -fsSL --retry 3 "$url" | tar -xz -C "$tmp" flanneld
  install -m 0755 "$tmp/flanneld" "$BIN/flanneld"
  url=https://github.com/flannel-io/cni-plugin/releases/download/$FLANNEL_CNI_VERSION/cni-plugin-flannel-linux-amd64-$FLANNEL_CNI_VERSION.tgz
  nb_log "downloading $url"
  curl -fsSL --retry 3 "$url" | tar -xz -C "$tmp"
  mkdir -p "$CNI_BIN"
  install -m 0755 "$tmp/flannel-amd64" "$CNI_BIN/flannel"
  local p
  for p in bridge host-local portmap loopback; do
    install -m 0755 "/usr/lib/cni/$p" "$CNI_BIN/$p"
  done
  rm -rf "$tmp"
}

start_flanneld() {
  local args=(--etcd-endpoints="$ETCD" --iface="$IFACE" --public-ip="$ADDR"
    --subnet-file="$SUBNET_FILE" --ip-masq)
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_spawn "$ROOT/pids/agent.pid" "$ROOT/log/agent.log" "$BIN/flanneld" "${args[@]}"
  else
    cat >/etc/systemd/system/flanneld.service <<EOF
[Unit]
Description=flanneld $FLANNEL_VERSION (upstream)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$BIN/flanneld ${args[*]}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
EOF
    systemctl daemon-reload
    systemctl enable --now flanneld.service
  fi
}

start_containerd() {
  if [[ $NO_SYSTEMD == 1 ]]; then
    local d=$ROOT/containerd
    mkdir -p "$d"
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$d/containerd.sock"
[ttrpc]
  address = "$d/containerd.sock.ttrpc"
EOF
    nb_spawn "$ROOT/pids/containerd.pid" "$ROOT/log/containerd.log" \
      containerd --config "$d/config.toml"
    CONTAINERD_SOCK=$d/containerd.sock
  else
    # Debian's containerd: its CRI plugin already uses /etc/cni/net.d and
    # /opt/cni/bin; podrun talks to it over /run/containerd/containerd.sock.
    systemctl enable --now containerd
    CONTAINERD_SOCK=/run/containerd/containerd.sock
  fi
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_wait_daemon "$ROOT/pids/containerd.pid" "$ROOT/log/containerd.log" 30 \
      "containerd at $CONTAINERD_SOCK" ctr --address "$CONTAINERD_SOCK" version
  else
    nb_wait 30 "containerd at $CONTAINERD_SOCK" ctr --address "$CONTAINERD_SOCK" version
  fi
}

# containerd namespace of podrun: per node in --no-systemd mode, because
# every containerd on one machine shares runc's state root.
ctr_namespace() { echo "netboot-$(basename "$ROOT")"; }

# DIR/bin/podrun-node: podrun with this node's flags (--no-systemd mode).
write_podrun_wrapper() {
  cat >"$BIN/podrun-node" <<EOF
#!/bin/sh
# podrun for the netboot node under $ROOT (written by vagrant/provision.sh)
exec "$BIN/podrun" --address "$CONTAINERD_SOCK" --namespace "$(ctr_namespace)" \\
  --cni-conf-dir "$CNI_CONF" --cni-bin-dir "$CNI_BIN" \\
  --cni-cache-dir "$ROOT/cni/cache" --state-dir "$ROOT/podrun" \\
  --pause-bin "$BIN/pause" "\$@"
EOF
  chmod 0755 "$BIN/podrun-node"
}

worker_role() {
  need_addr
  [[ -n $ETCD ]] || nb_die "--etcd URL is required for a worker"
  set_paths
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_binaries "$BIN_SRC" "$BIN" "$PAUSE_BIN"
    mkdir -p "$CNI_BIN" "$CNI_CONF" "$CNI_DATA" "$(dirname "$SUBNET_FILE")"
  else
    nb_binaries "$BIN_SRC" "$BIN" "$PAUSE_BIN"
  fi
  nb_wait 60 "etcd at $ETCD" curl -fsS -m 2 "${ETCD%%,*}/health"
  nb_log "netboot init ($FLAVOR)"
  netboot_init
  if [[ $FLAVOR == upstream ]]; then
    install_upstream_flannel
    start_flanneld
  else
    start_agent
  fi
  if [[ $NO_SYSTEMD == 1 ]]; then
    nb_wait_daemon "$ROOT/pids/agent.pid" "$ROOT/log/agent.log" 60 "$SUBNET_FILE from the agent" \
      test -s "$SUBNET_FILE"
  else
    nb_wait 60 "$SUBNET_FILE (is the agent running? journalctl -u netboot-agent)" test -s "$SUBNET_FILE"
  fi
  nb_log "subnet lease: $(grep FLANNEL_SUBNET "$SUBNET_FILE")"
  start_containerd
  [[ $NO_SYSTEMD == 1 ]] && write_podrun_wrapper
  nb_log "worker ${NAME:-$ADDR} ready (iface $IFACE, containerd $CONTAINERD_SOCK)"
}

# ---------------------------------------------------------------- down

down_role() {
  [[ -n $ROOT ]] || nb_die "down needs --root DIR"
  local pods pod
  if [[ -x $ROOT/bin/podrun-node && -f $ROOT/pids/containerd.pid ]]; then
    pods=$(ls "$ROOT/podrun/namespaces/$(ctr_namespace)/pods" 2>/dev/null || true)
    for pod in $pods; do
      "$ROOT/bin/podrun-node" rm --grace 1 "$pod" >/dev/null 2>&1 ||
        nb_log "warning: podrun rm $pod failed"
    done
  fi
  nb_stop "$ROOT/pids/containerd.pid" containerd
  nb_stop "$ROOT/pids/agent.pid" "$ROOT/run/flannel/subnet.env"
  nb_stop "$ROOT/pids/etcd.pid" etcd
  # The runc root the shims used for podrun's containerd namespace.
  rmdir "/run/containerd/runc/$(ctr_namespace)" 2>/dev/null || true
  nb_log "stopped the daemons under $ROOT"
}

main() {
  parse_args "$@"
  nb_require_root
  case $ROLE in
    etcd) etcd_role ;;
    worker) worker_role ;;
    down) down_role ;;
    *) nb_die "unknown role '$ROLE' (etcd, worker or down)" ;;
  esac
}

main "$@"
