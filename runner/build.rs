//! Stamps the git commit and build date into `--version` (see buildstamp).

fn main() {
    buildstamp::emit();
}
