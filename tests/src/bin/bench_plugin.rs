//! Side-by-side benchmark of the reference CNI chain (Debian's `bridge` +
//! `host-local` + `portmap`) against `netboot-cni` in bridge and native
//! mode; the code lives in `tests/src/bench/`.
//!
//! Run as root: `cargo run --release -p netboot-tests --bin bench_plugin -- --help`
//! (or `scripts/bench.sh`). Everything happens inside namespaces this
//! program creates and deletes.

#[path = "../bench/mod.rs"]
mod bench;

fn main() {
    bench::main();
}
