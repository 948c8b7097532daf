//! `netboot-cni`: not yet implemented (see the project's open issues).

fn main() {
    eprintln!("netboot-cni: not yet implemented");
    std::process::exit(2);
}
