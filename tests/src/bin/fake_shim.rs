//! A stand-in for a `containerd-shim-runc-v2` daemon, for podrun's fault
//! tests: copied to a file of that name and started with a shim's flags
//! (`-namespace NS -id ID -address SOCK`) in a bundle directory, it does
//! nothing until killed. Its arguments are only there for /proc readers.

fn main() {
    loop {
        std::thread::park();
    }
}
