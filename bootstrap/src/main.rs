//! `netboot`: not yet wired up; the flannel config model lives in
//! [`netconfig`].
#![allow(dead_code, unused_imports)]

mod netconfig;

fn main() {
    eprintln!("netboot: not yet implemented");
    std::process::exit(2);
}
