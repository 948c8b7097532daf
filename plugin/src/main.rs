//! `netboot-cni`: the CNI plugin binary. All logic lives in the library;
//! this only wires the process's environment, stdin and stdout to it.

use std::io::Read;

fn main() {
    // Run by hand (`netboot-cni`, `netboot-cni --version`): say what this
    // is, without waiting for a config on stdin.
    if std::env::var_os("CNI_COMMAND").is_none_or(|c| c.is_empty()) {
        eprint!("{}", netboot_cni::about());
        return;
    }
    let mut stdin = Vec::new();
    // VERSION may be called with no stdin at all; a read error is treated
    // as an empty config and reported by the parser.
    if std::env::var("CNI_COMMAND").as_deref() != Ok("VERSION") {
        let _ = std::io::stdin().read_to_end(&mut stdin);
    }
    let env = |k: &str| std::env::var(k).ok();
    let code = netboot_cni::run(&env, &stdin, &mut std::io::stdout().lock());
    std::process::exit(code);
}
