//! `podrun`: not yet implemented (see the project's open issues).

fn main() {
    eprintln!("podrun: not yet implemented");
    std::process::exit(2);
}
