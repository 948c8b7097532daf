#!/usr/bin/env bash
# THE test command: every check netboot has, in order, failing fast.
#
#   install deps -> shellcheck -> cargo fmt --check -> clippy -D warnings
#   -> cargo build (binaries for the integration tests) -> libcni client
#   -> release binaries (scripts/build-release.sh, for the demo test)
#   -> cargo test --workspace (as root) -> no leftover test namespaces
#
# Usage: sudo scripts/test.sh [extra args for cargo test, e.g. -p netboot-tests]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Namespace prefixes of the harness (nbt-), the demo and install-deps.
NETNS_PATTERN='^(nbt-|nbdemo-|nbdeps-)'
CURRENT_STEP="startup"

log() { printf '[test] %s\n' "$*"; }
die() {
  printf '[test] FAILED in step "%s": %s\n' "$CURRENT_STEP" "$*" >&2
  exit 1
}

on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    printf '[test] FAILED in step "%s" (exit %d)\n' "$CURRENT_STEP" "$rc" >&2
  fi
}

step() {
  CURRENT_STEP=$1
  shift
  log "==> $CURRENT_STEP"
  "$@"
}

leftover_netns() { ip netns list | awk '{print $1}' | grep -E "$NETNS_PATTERN" || true; }
root_has_cni0() { ip link show cni0 >/dev/null 2>&1; }

preflight() {
  [[ $(id -u) -eq 0 ]] || die "integration tests create network namespaces: run as root (sudo $0)"
  local stale
  stale=$(leftover_netns)
  [[ -z $stale ]] || die "test namespaces left from an earlier run: $stale (remove with: ip netns delete NAME)"
}

shellcheck_scripts() { shellcheck -x "$REPO"/scripts/*.sh "$REPO"/vagrant/*.sh "$REPO/.ci/run"; }

gofmt_client() {
  local bad
  bad=$(gofmt -l "$REPO/tests/libcni-client")
  [[ -z $bad ]] || die "gofmt needed: $bad"
}

main() {
  trap on_exit EXIT
  export PATH="$HOME/.cargo/bin:$PATH"
  # Tests that build binaries must find them in the default target/.
  unset CARGO_TARGET_DIR
  cd "$REPO"
  step "preflight (root, no stale namespaces)" preflight
  local cni0_before=0
  root_has_cni0 && cni0_before=1
  step "install dependencies" bash scripts/install-deps.sh
  step "shellcheck" shellcheck_scripts
  step "cargo fmt --check" cargo fmt --all -- --check
  step "gofmt libcni-client" gofmt_client
  step "cargo clippy -D warnings" cargo clippy --workspace --all-targets -- -D warnings
  step "cargo build" cargo build --workspace
  step "build libcni client" bash scripts/build-libcni-client.sh
  # The demo test runs README command 1 on the shipped (release) binaries.
  step "build release binaries" bash scripts/build-release.sh
  # --no-fail-fast: one failing test binary must not hide the others' results.
  step "cargo test" cargo test --workspace --no-fail-fast "$@"
  CURRENT_STEP="leftover check"
  local stale
  stale=$(leftover_netns)
  [[ -z $stale ]] || die "tests left network namespaces behind: $stale"
  if [[ $cni0_before -eq 0 ]] && root_has_cni0; then
    die "a cni0 bridge appeared in the ROOT network namespace: a test escaped its netns"
  fi
  log "all checks passed; no test namespaces left"
}

main "$@"
