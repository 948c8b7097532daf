#!/usr/bin/env bash
# Build tests/libcni-client (our small libcni-based CNI runtime) offline, with
# Debian's Go and Debian's libcni sources (golang-github-appc-cni-dev), into
# target/libcni-client (or $CARGO_TARGET_DIR/libcni-client).
#
# GOPATH mode (GO111MODULE=off) resolves the import from /usr/share/gocode,
# so no module proxy or network access is needed.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$repo/target}
out=$target_dir/libcni-client
gopath=/usr/share/gocode

log() { printf '[build-libcni-client] %s\n' "$*"; }
die() {
  printf '[build-libcni-client] ERROR: %s\n' "$*" >&2
  exit 1
}

command -v go >/dev/null || die "go not found (run scripts/install-deps.sh)"
[[ -d $gopath/src/github.com/containernetworking/cni/libcni ]] ||
  die "libcni sources missing in $gopath (apt-get install golang-github-appc-cni-dev)"

mkdir -p "$target_dir/go-cache"
log "building $out with $(go version | cut -d' ' -f3) against $gopath"
(
  cd "$repo/tests/libcni-client"
  GO111MODULE=off GOPATH=$gopath GOCACHE=$target_dir/go-cache GOFLAGS='' CGO_ENABLED=0 \
    go build -o "$out" .
)
log "built $out"
