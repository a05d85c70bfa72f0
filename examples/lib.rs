//! Examples of using the engine and the stacks as a library, as `[[example]]`
//! targets:
//!
//! - `custom_stack` (`examples/custom_stack.rs`): a stack defined in code (a
//!   namespace, a ConfigMap, a Deployment and a Service from `components` and
//!   typed `k8s-openapi` objects) through the `stacks::Stack` trait, with the
//!   commands of the `stacks` binary from `stacks_cli::Driver` in a one-line
//!   `main`. Against a cluster:
//!   `cargo run -p preview-examples --example custom_stack -- up hello`.
//! - `local_files` (`examples/local_files.rs`): a provider of one's own
//!   (objects kept as files in a directory), registered by name with
//!   `Providers::with`, planned, applied, updated and destroyed by the engine
//!   with no change to the core. `cargo run -p preview-examples --example local_files`.
//!
//! `tests/examples.rs` builds and runs both (`custom_stack` on the test kit's
//! cluster: up, no-op up, change, destroy, each checked through the API
//! server), so `cargo test` (and CI, through `scripts/test.sh`) runs them.
//!
//! The GitHub Actions workflows in `examples/github/` show the `stacks` and
//! `preview` binaries in CI.
