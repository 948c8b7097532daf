#!/usr/bin/env bash
# Install everything netboot's build, tests and demo need on Debian 12.
#
# Idempotent: packages that are already installed are not touched, and
# `apt-get update` runs only when something is missing. Works unattended
# (no stdin, CI=true). Never changes the root network namespace: the kernel
# feature check happens inside a throwaway netns.
set -euo pipefail

# Debian packages: the tools the tests and the demo call, the reference CNI
# plugins, etcd and containerd, and the Go sources of libcni for the
# third-party client in tests/libcni-client. libprotobuf-dev ships the
# well-known .proto files (google/protobuf/descriptor.proto) that the
# etcd-client crate's build script needs besides protoc. vagrant (~14 MiB
# with its Ruby libraries, no provider) only runs `vagrant validate` on
# vagrant/Vagrantfile in the tests; no VM is started. ethtool cross-checks
# the offload features netkit sets over netlink. systemd (systemd-analyze),
# man-db and strace check conf/netboot-agent.service: `verify` and its
# Documentation= page, and the agent run under the unit's confinement
# (setpriv from util-linux) with every system call traced.
PACKAGES=(
  ca-certificates kmod build-essential pkg-config git
  iproute2 iptables nftables conntrack iputils-ping procps psmisc util-linux
  jq curl socat busybox-static shellcheck ethtool systemd man-db strace
  etcd-server etcd-client containerd runc containernetworking-plugins
  protobuf-compiler libprotobuf-dev openssl golang-go golang-github-appc-cni-dev
  vagrant
)

# Kernel modules we rely on; most kernels have them built in or autoload them.
MODULES=(veth bridge vxlan)

log() { printf '[install-deps] %s\n' "$*"; }
warn() { printf '[install-deps] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[install-deps] ERROR: %s\n' "$*" >&2
  exit 1
}

require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    die "must run as root (try: sudo $0)"
  fi
}

missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ $status != "install ok installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

install_packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#PACKAGES[@]} Debian packages are already installed"
    return
  fi
  command -v apt-get >/dev/null || die "apt-get not found: this script expects Debian 12"
  log "missing packages: ${missing[*]}"
  log "running apt-get update (once)"
  DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
  log "installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" </dev/null
}

ensure_cargo() {
  if [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    log "using rustup's cargo: $(cargo --version)"
    return
  fi
  if command -v cargo >/dev/null; then
    log "using cargo on PATH: $(cargo --version)"
    return
  fi
  warn "no rustup toolchain in ~/.cargo/bin; falling back to Debian's cargo (may be too old: rust-version 1.85 is required)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    cargo rustc </dev/null
  command -v cargo >/dev/null || die "cargo still not available"
  log "using Debian's cargo: $(cargo --version)"
}

ensure_tools() {
  local tool
  for tool in protoc go ip iptables nsenter jq socat busybox etcd etcdctl openssl; do
    command -v "$tool" >/dev/null || die "'$tool' not on PATH after installing packages"
  done
  [[ -x /usr/lib/cni/bridge ]] || die "/usr/lib/cni/bridge missing (containernetworking-plugins)"
  [[ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ]] ||
    die "libcni sources missing (golang-github-appc-cni-dev)"
  log "tools present: protoc ($(protoc --version)), go ($(go version | cut -d' ' -f3)), reference plugins in /usr/lib/cni"
}

load_modules() {
  local mod
  for mod in "${MODULES[@]}"; do
    if modprobe -q "$mod" 2>/dev/null; then
      log "kernel module $mod loaded (or built in)"
    else
      log "could not modprobe $mod (no module tree?); checking the feature directly"
    fi
  done
}

# Create one link of each kind inside a throwaway netns: proves the kernel
# supports what the tests need without touching the root namespace.
check_kernel_features() {
  local ns="nbdeps-$$" failed=""
  ip netns add "$ns"
  ip -n "$ns" link add nbv0 type veth peer name nbv1 2>/dev/null || failed+=" veth"
  ip -n "$ns" link add nbbr0 type bridge 2>/dev/null || failed+=" bridge"
  ip -n "$ns" link add nbvx0 type vxlan id 1 dstport 8472 nolearning 2>/dev/null ||
    failed+=" vxlan"
  ip netns delete "$ns"
  [[ -z $failed ]] || die "kernel lacks support for:$failed"
  log "kernel supports netns, veth, bridge and vxlan (checked in a throwaway netns)"
}

main() {
  require_root
  install_packages
  ensure_cargo
  ensure_tools
  load_modules
  check_kernel_features
  log "done"
}

main "$@"
