//! `preview` — see `preview --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Parsing has no side effects; clap exits 2 on usage errors.
    let cli = preview_github::Cli::parse();
    // PREVIEW_LOG, else RUST_LOG, else warnings only.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PREVIEW_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(color)
        .without_time()
        .init();
    let env = preview_github::Environment::from_process();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(preview_github::error::EXIT_FAILURE);
        }
    };
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    match runtime.block_on(preview_github::run(cli, &env, &mut stdout, &mut stderr)) {
        Ok(()) => ExitCode::from(preview_github::error::EXIT_OK),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}
