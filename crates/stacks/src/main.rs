//! The `stacks` binary: `stacks up preview-pr --pr 123 …`.

use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    eprintln!(
        "stacks: `{:?}` is not wired to the engine yet in this build",
        cli.command
    );
    std::process::ExitCode::from(2)
}
