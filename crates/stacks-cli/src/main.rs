//! The `stacks` binary: `stacks up preview-pr --pr 123 --web-image … --api-image …`.
//!
//! The whole program is the library's driver over the built-in stacks
//! ([`stacks_cli::Driver::stacks_binary`]); see the library's docs.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    stacks_cli::Driver::stacks_binary().run().await
}
