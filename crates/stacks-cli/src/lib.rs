//! # stacks-cli
//!
//! The command driver of the `stacks` binary as a library: a Rust program
//! defines its stacks in code ([`stacks::Stack`]) and gets the same commands
//! (`render`, `preview`, `up`, `destroy`, `refresh`, `outputs`, `import`,
//! `state …`, `completions`) with [`Driver`]:
//!
//! ```no_run
//! # use stacks::{Stack, StackBuild, StackError, StackInput};
//! # struct MyStack;
//! # impl Stack for MyStack {
//! #     fn name(&self) -> &str { "my-stack" }
//! #     fn build(&self, input: &StackInput<'_>) -> Result<StackBuild, StackError> {
//! #         Ok(StackBuild::new(input.instance, Vec::new()))
//! #     }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     stacks_cli::Driver::new("mytool").stack(MyStack).run().await
//! }
//! ```
//!
//! The `stacks` binary is this library's [`Driver::stacks_binary`] (`main.rs`).
//!
//! Parsing has no side effects (`cli`); `program` is what the driver
//! knows beside the flags (its stacks and providers) and the command line made
//! from it; `terminal` applies the output options (colour, verbosity, logs);
//! `run` reads the environment and drives the engine; `progress` shows engine
//! events; `step_failures` explains failed steps (digests on stderr and in
//! `--json`); `failure` reports an error (and under `--json` as a JSON
//! document); `hints` adds the next-step lines that name CLI flags to engine
//! errors.

mod cli;
mod driver;
mod failure;
mod hints;
mod program;
mod progress;
mod run;
mod step_failures;
mod terminal;

pub use driver::Driver;
