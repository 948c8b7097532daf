//! `podrun`: pods on containerd, networked through CNI. See `podrun --help`.

use clap::Parser;

mod cgroup;
mod cli;
mod commands;
mod ctrd;
mod etc;
mod image;
mod lock;
mod network;
mod oci;
mod pod;
mod spec;
mod state;
mod teardown;

use cli::Cmd;

fn main() {
    let cli = cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podrun: tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("podrun: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn dispatch(cli: cli::Cli) -> anyhow::Result<i32> {
    let ctx = pod::Ctx::new(cli.global).await?;
    match cli.command {
        Cmd::Run { file, attach } => {
            let rec = pod::run(&ctx, &file).await?;
            println!("{}\t{}", rec.spec.name, rec.ip.as_deref().unwrap_or("-"));
            if attach {
                return commands::attach(&ctx, &rec).await;
            }
        }
        Cmd::Ps => commands::ps(&ctx).await?,
        Cmd::Logs { pod, container } => commands::logs(&ctx, &pod, container.as_deref())?,
        Cmd::Exec {
            pod,
            container,
            cmd,
        } => return commands::exec(&ctx, &pod, &container, &cmd).await,
        Cmd::Stop { pod, grace } => commands::stop(&ctx, &pod, grace).await?,
        Cmd::Rm { pod, grace } => commands::rm(&ctx, &pod, grace).await?,
        Cmd::Check { pod } => commands::check(&ctx, &pod)?,
        Cmd::Gc => commands::gc(&ctx)?,
    }
    Ok(0)
}
