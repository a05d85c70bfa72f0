//! # preview-envs
//!
//! The engine with its default providers and state backends, wired: what a
//! program that deploys stacks uses when it does not pick its own parts.
//!
//! - [`core`] ([`preview_core`]): model, graph, plan, render, validation, state
//!   format and the engine, with no provider in it;
//! - [`kubernetes`], [`postgres`], [`digitalocean`]: the built-in providers
//!   (and the `kubernetes://` and `postgres://` state backends);
//! - [`backend`]: a state backend opened by URL (`file://`, `kubernetes://`,
//!   `postgres://`).

// Errors carry the full ResourceId they are about, so every message can name it;
// the size of the Err variant is irrelevant next to a network round trip.
#![allow(clippy::result_large_err)]

pub mod backend;

pub use preview_core as core;
pub use preview_digitalocean as digitalocean;
pub use preview_kubernetes as kubernetes;
pub use preview_postgres as postgres;

pub use backend::{BackendOptions, BackendUrl, open_backend, open_backend_with, redact_url};
