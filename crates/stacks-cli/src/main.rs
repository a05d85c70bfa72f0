//! The `stacks` binary: `stacks up preview-pr --pr 123 --web-image … --api-image …`.
//!
//! Parsing has no side effects ([`cli`]); [`terminal`] applies the output
//! options (colour, verbosity, logs); [`run`] reads the environment and drives
//! the engine; [`progress`] shows engine events; [`step_failures`] explains
//! failed steps (digests on stderr and in `--json`); [`failure`] reports an
//! error (and under `--json` as a JSON document); [`hints`] words the next
//! steps the libraries' errors name, with this binary's flags.

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod failure;
mod hints;
mod progress;
mod run;
mod step_failures;
mod terminal;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The libraries' errors name no flag: this binary words the way out.
    preview_core::remedy::install(hints::remedy);
    terminal::init(&cli.global);
    let json = cli.global.json;
    match run::run(cli).await {
        Ok(code) => code,
        Err(error) => failure::report(&error, json),
    }
}
