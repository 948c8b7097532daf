//! `podrun`: pods on containerd, networked through CNI. See `podrun --help`.

use clap::Parser;

mod attachments;
mod cgroup;
mod cli;
mod commands;
mod converge;
mod ctrd;
mod ctx;
mod devices;
mod dns;
mod elf;
mod etc;
mod exits;
mod follow;
mod gc;
mod hostnet;
mod image;
mod import;
mod inspect;
mod kube;
mod lifecycle;
mod limits;
mod lock;
mod logdriver;
mod manifest;
mod network;
mod oci;
mod pause_root;
mod pod;
mod podnet;
mod security;
mod shims;
mod spec;
mod state;
mod teardown;
mod volumes;

use cli::{Cmd, ImageCmd};

fn main() {
    // The shim's logging binary (see logdriver): not a user command.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 3 && args[1] == "log-driver" {
        let code = match logdriver::run(&args[2].to_string_lossy()) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("podrun log-driver: {e:#}");
                1
            }
        };
        std::process::exit(code);
    }
    let cli = cli::Cli::parse();
    // Diagnostics go to stderr through `tracing` (see logkit); command
    // output stays plain on stdout. Errors are printed below, plainly.
    if let Err(e) = cli.log.init("info") {
        eprintln!("podrun: {e:#}");
        std::process::exit(2);
    }
    if let Some(res) = cli::generate(&cli.command) {
        if let Err(e) = res {
            eprintln!("podrun: {e}");
            std::process::exit(1);
        }
        return;
    }
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
    // The pod file is read and checked before containerd is contacted.
    let specs = match &cli.command {
        Cmd::Run {
            file,
            ignore_unsupported,
            dry_run,
            ..
        } => {
            let specs = manifest::load(file, *ignore_unsupported)?;
            if *dry_run {
                println!("{}", serde_json::to_string_pretty(&specs)?);
                return Ok(0);
            }
            specs
        }
        _ => Vec::new(),
    };
    let ctx = ctx::Ctx::new(cli.global).await?;
    match cli.command {
        Cmd::Run {
            file,
            attach,
            mut opts,
            ..
        } => {
            if attach && specs.len() > 1 {
                anyhow::bail!(
                    "{}: --attach takes one pod, the file has {}",
                    file.display(),
                    specs.len()
                );
            }
            opts.attach = attach;
            let recs = pod::run_all(&ctx, specs, &opts).await?;
            for rec in &recs {
                println!("{}\t{}", rec.spec.name, rec.ip.as_deref().unwrap_or("-"));
            }
            if attach {
                return lifecycle::attach(&ctx, &recs[0]).await;
            }
        }
        Cmd::Ps { json } => commands::ps(&ctx, json).await?,
        Cmd::Logs { pod, container } => commands::logs(&ctx, &pod, container.as_deref())?,
        Cmd::Exec {
            pod,
            container,
            cmd,
        } => return commands::exec(&ctx, &pod, &container, &cmd).await,
        Cmd::Stop { pod, grace } => commands::stop(&ctx, &pod, grace).await?,
        Cmd::Rm { pod, grace } => commands::rm(&ctx, &pod, grace).await?,
        Cmd::Check { pod } => commands::check(&ctx, &pod).await?,
        Cmd::Inspect { pod } => {
            let rec = commands::record(&ctx, &pod)?;
            let v = inspect::inspect(&ctx, &rec).await?;
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Cmd::Supervise { pod } => return lifecycle::supervise_main(&ctx, &pod).await,
        Cmd::Gc => gc::gc(&ctx).await?,
        Cmd::Image {
            cmd: ImageCmd::Import { file, base_name },
        } => {
            for name in import::import(&ctx.ctrd, &file, base_name.as_deref()).await? {
                println!("{name}");
            }
        }
        // Answered in main before containerd is contacted.
        Cmd::Pack(_) => {}
    }
    Ok(0)
}
