#!/usr/bin/env bash
# Release build of netboot's binaries, the way they are meant to ship.
#
# netboot-cni and pause are linked statically (glibc, crt-static): the
# plugin is exec'd for every pod operation, and a static binary skips the
# dynamic loader and maps no shared libc, which takes its peak RSS from
# ~2.9 MiB to ~2 MiB; a static pause is its rootfs' only file (podrun
# also runs a dynamic one, as `cargo build` makes it, by copying its
# loader and libraries into the pause rootfs). They are built
# with `cargo rustc` because crt-static cannot go into RUSTFLAGS for the
# whole build (proc-macro crates cannot be linked statically).
#
# Usage: scripts/build-release.sh   -> target/release/
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
static() { cargo rustc --release "$@" -- -C target-feature=+crt-static; }
static -p netboot-cni --bin netboot-cni
static -p podrun --bin pause
cargo build --release -p netboot -p podrun --bin netboot --bin podrun
echo "built: target/release/{netboot-cni,netboot,podrun,pause}"
