//! `netboot`: the operator's tool. `init` writes flannel's network config
//! to etcd v3 and the node's CNI conflist; `conflist`, `config` and `status`
//! show what is (or would be) there. See `netboot --help`.

mod agent;
mod cli;
mod conflist;
mod doctor;
mod duration;
mod etcd;
mod flanneld;
mod goflag;
mod init;
mod lease;
mod leases;
mod netconfig;
mod out;
mod show;
mod status;
mod subnet_env;

fn main() {
    let res = flanneld::parse_cli().and_then(|(cli, notes)| {
        if let Err(e) = cli.log.init(default_log_level(&cli.cmd)) {
            eprintln!("netboot: error: {e:#}");
            std::process::exit(2);
        }
        // What the flanneld pre-pass noticed (ignored flags, variables
        // used), once the log is set up.
        for n in &notes {
            agent::log(n);
        }
        run(&cli)
    });
    // The one place errors are printed: the whole context chain, plainly.
    if let Err(e) = res {
        eprintln!("netboot: error: {e:#}");
        std::process::exit(1);
    }
}

/// The log level without `--log-level` or `RUST_LOG`: info, raised by
/// the agent's `-v N` (flanneld's verbosity) to debug from 1, trace from 3.
fn default_log_level(cmd: &cli::Cmd) -> &'static str {
    match cmd {
        cli::Cmd::Agent(a) => agent::verbosity_level(a.verbosity),
        _ => "info",
    }
}

fn run(cli: &cli::Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        cli::Cmd::Init(a) => init::init_cmd(a),
        cli::Cmd::Conflist(a) => init::conflist_cmd(a),
        cli::Cmd::Config(a) => show::config_cmd(a),
        cli::Cmd::Status(a) => status::status_cmd(a),
        cli::Cmd::Agent(a) => agent::agent_cmd(a),
        cli::Cmd::Leave(a) => agent::leave_cmd(a),
        cli::Cmd::Doctor(a) => doctor::doctor_cmd(a),
        cli::Cmd::Pack(p) => Ok(p.run::<cli::Cli>()?),
    }
}
