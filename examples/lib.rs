//! Examples of using the engine as a library, as `[[example]]` targets:
//!
//! - `local_files` (`examples/local_files.rs`): a provider of one's own
//!   (objects kept as files in a directory), registered by name with
//!   `Providers::with`, planned, applied, updated and destroyed by the engine
//!   with no change to the core. `cargo run -p preview-examples --example local_files`.
//!
//! The GitHub Actions workflows in `examples/github/` show the `stacks` and
//! `preview` binaries in CI.
