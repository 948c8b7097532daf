#!/usr/bin/env bash
# Shared by the netboot node scripts, and runnable on its own:
#
#   vagrant/common.sh packages etcd|worker   install the node's Debian packages
#   vagrant/common.sh binaries [--bin-src DIR] [--dest DIR]
#                                            install netboot, netboot-cni, podrun
#                                            and pause (default from
#                                            /vagrant/target/release into
#                                            /usr/local/bin, netboot-cni also
#                                            into /opt/cni/bin)
#
# provision.sh sources this file for its helpers. Nothing here touches the
# network: it installs packages and copies files.

# Debian packages per role. Workers run containerd + runc for podrun, the
# reference plugins (used by upstream flannel's CNI plugin in the mixed
# cluster), nftables for the agent's and the plugin's rules, busybox-static
# for the demo image, curl to reach etcd and download upstream flannel.
NB_PACKAGES_ETCD=(etcd-server etcd-client curl ca-certificates)
NB_PACKAGES_WORKER=(containerd runc containernetworking-plugins iproute2 nftables
  jq curl ca-certificates busybox-static etcd-client)

nb_log() { printf '[%s] %s\n' "${NB_WHO:-netboot-node}" "$*"; }
nb_die() {
  printf '[%s] ERROR: %s\n' "${NB_WHO:-netboot-node}" "$*" >&2
  exit 1
}

nb_require_root() {
  [[ $(id -u) -eq 0 ]] || nb_die "must run as root"
}

# nb_packages ROLE: install what ROLE needs, if missing (apt-get update once).
nb_packages() {
  local role=$1 pkg status missing=()
  local -a want
  case $role in
    etcd) want=("${NB_PACKAGES_ETCD[@]}") ;;
    worker) want=("${NB_PACKAGES_WORKER[@]}") ;;
    *) nb_die "unknown role '$role' (etcd or worker)" ;;
  esac
  for pkg in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$pkg")
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    nb_log "packages for $role already installed"
    return
  fi
  nb_log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" </dev/null
}

# nb_binaries SRC DEST [PAUSE]: copy the four netboot binaries from SRC into
# DEST (pause from PAUSE when given). Fails naming what is missing.
nb_binaries() {
  local src=$1 dest=$2 pause=${3:-} b from
  mkdir -p "$dest"
  for b in netboot netboot-cni podrun pause; do
    from=$src/$b
    [[ $b == pause && -n $pause ]] && from=$pause
    [[ -x $from ]] || nb_die "$from not found: build it first (scripts/build-release.sh)"
    install -m 0755 "$from" "$dest/$b.tmp.$$"
    mv -f "$dest/$b.tmp.$$" "$dest/$b"
  done
  nb_log "installed netboot, netboot-cni, podrun, pause into $dest"
}

# nb_iface_of ADDR: the interface carrying ADDR in this network namespace.
nb_iface_of() {
  ip -o -4 addr show | awk -v a="$1" '{split($4, p, "/"); if (p[1] == a) {print $2; exit}}'
}

# nb_wait SECONDS WHAT CMD...: retry CMD every 0.2 s until it succeeds.
nb_wait() {
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  nb_die "timed out after ${secs}s waiting for $what"
}

# nb_wait_daemon PIDFILE LOG SECONDS WHAT CMD...: nb_wait, but fail at once
# (with the end of LOG) when the daemon recorded in PIDFILE has exited.
nb_wait_daemon() {
  local pidfile=$1 logf=$2 secs=$3 what=$4 i pid
  shift 4
  pid=$(cat "$pidfile" 2>/dev/null || true)
  for ((i = 0; i < secs * 5; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logf" >&2 || true
      nb_die "$what: the process exited (log above, in $logf)"
    fi
    sleep 0.2
  done
  tail -n 20 "$logf" >&2 || true
  nb_die "timed out after ${secs}s waiting for $what (log above, in $logf)"
}

# nb_spawn PIDFILE LOG CMD...: start CMD detached (own session, stdio to
# LOG), record its PID. Used instead of systemd inside a netns "node".
nb_spawn() {
  local pidfile=$1 logf=$2
  shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logf")"
  setsid "$@" </dev/null >>"$logf" 2>&1 &
  echo $! >"$pidfile"
}

# nb_stop PIDFILE: SIGTERM the recorded PID (only if it is still the
# process we started: its command line must mention MARK), wait up to 10 s,
# then SIGKILL. Removes the pidfile.
nb_stop() {
  local pidfile=$1 mark=$2 pid i
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$mark"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

nb_common_main() {
  local cmd=${1:-}
  shift || true
  NB_WHO=common
  case $cmd in
    packages)
      nb_require_root
      nb_packages "${1:?usage: common.sh packages etcd|worker}"
      ;;
    binaries)
      local src=/vagrant/target/release dest=/usr/local/bin
      while [[ $# -gt 0 ]]; do
        case $1 in
          --bin-src) src=$2; shift ;;
          --dest) dest=$2; shift ;;
          *) nb_die "unknown option $1" ;;
        esac
        shift
      done
      nb_require_root
      nb_binaries "$src" "$dest"
      install -D -m 0755 "$dest/netboot-cni" /opt/cni/bin/netboot-cni
      ;;
    *)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 2
      ;;
  esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  nb_common_main "$@"
fi
