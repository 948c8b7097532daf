//! The packagers' subcommands every netboot binary with subcommands has,
//! hidden from help: `completions SHELL` prints a shell completion script
//! and `man DIR` writes one man page per visible command (`BIN.1`,
//! `BIN-SUBCOMMAND.1`). A binary flattens [`PackCmd`] into its own
//! subcommand enum and runs it against its own CLI:
//!
//! ```text
//! #[derive(Subcommand)]
//! enum Cmd {
//!     Run(RunArgs),
//!     #[command(flatten)]
//!     Pack(packcmd::PackCmd),
//! }
//! // in main, before any other work:
//! Cmd::Pack(p) => p.run::<Cli>()?,
//! ```
//!
//! Neither needs any state, so a binary answers them before it reads its
//! configuration or contacts a daemon.

use std::io;
use std::path::PathBuf;

use clap::{CommandFactory, Subcommand};

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum PackCmd {
    /// Print a shell completion script (for packagers).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages (BIN.1, BIN-SUBCOMMAND.1) into DIR (for
    /// packagers).
    #[command(hide = true)]
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

impl PackCmd {
    /// Runs the command for the CLI `C` (completions on stdout, named after
    /// `C`'s command name).
    pub fn run<C: CommandFactory>(&self) -> io::Result<()> {
        match self {
            PackCmd::Completions { shell } => {
                let mut cmd = C::command();
                let name = cmd.get_name().to_string();
                clap_complete::generate(*shell, &mut cmd, name, &mut io::stdout());
                Ok(())
            }
            PackCmd::Man { dir } => std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(C::command(), dir))
                .map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("write the man pages into {}: {e}", dir.display()),
                    )
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    /// A demo CLI with one visible command.
    #[derive(Debug, Parser)]
    #[command(name = "demo")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Debug, Subcommand)]
    enum Cmd {
        /// Say hello.
        Hello,
        #[command(flatten)]
        Pack(PackCmd),
    }

    #[test]
    fn man_writes_a_page_per_visible_command_and_none_for_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("man1");
        let cli = Cli::parse_from(["demo", "man", out.to_str().unwrap()]);
        let Cmd::Pack(p) = cli.cmd else {
            panic!("man is not a packager's command: {cli:?}");
        };
        p.run::<Cli>().unwrap();
        assert!(out.join("demo.1").is_file());
        assert!(out.join("demo-hello.1").is_file());
        assert!(!out.join("demo-man.1").exists());
        assert!(!out.join("demo-completions.1").exists());
    }

    #[test]
    fn man_names_the_directory_it_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = PackCmd::Man {
            dir: file.join("x"),
        }
        .run::<Cli>()
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(&format!(
                "write the man pages into {}",
                file.join("x").display()
            )),
            "{e}"
        );
    }

    #[test]
    fn the_commands_are_hidden_from_help() {
        let help = Cli::command().render_long_help().to_string();
        let listed = |name: &str| {
            help.lines()
                .any(|l| l.split_whitespace().next() == Some(name))
        };
        assert!(listed("hello"), "{help}");
        assert!(!listed("completions"), "{help}");
        assert!(!listed("man"), "{help}");
    }
}
