//! `podrun`: pods on containerd, networked through CNI. See `podrun --help`.

use clap::Parser;

mod cli;
mod spec;

fn main() {
    let cli = cli::Cli::parse();
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podrun: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn run(cli: cli::Cli) -> anyhow::Result<i32> {
    match cli.command {
        cli::Cmd::Run { file, .. } => {
            let spec = spec::PodSpec::load(&file)?;
            anyhow::bail!("pod {:?}: run is not implemented yet", spec.name)
        }
        other => anyhow::bail!("{other:?}: not implemented yet"),
    }
}
