//! The `stacks` binary: `stacks up preview-pr --pr 123 --web-image … --api-image …`.
//!
//! Parsing has no side effects ([`cli`]); [`run`] reads the environment and
//! drives the engine; [`progress`] shows engine events; [`failure`] explains
//! failed steps (digests on stderr and in `--json`).

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod failure;
mod progress;
mod run;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PREVIEW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
