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
//!
//! A namespace from [`components`](https://docs.rs/components) deployed to the
//! cluster of the current kubeconfig, with state in a directory (`no_run`: it
//! needs a cluster; `examples/custom_stack.rs` does the same through the
//! `stacks_cli::Driver` and its test runs it on the test kit's cluster):
//!
//! ```no_run
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//!
//! use preview_envs::core::ProviderName;
//! use preview_envs::core::engine::{Engine, EngineOptions, Providers};
//! use preview_envs::core::events::EventSink;
//! use preview_envs::core::graph::DesiredGraph;
//! use preview_envs::kubernetes::KubeProvider;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // As kubectl finds the cluster: $KUBECONFIG, ~/.kube/config, in-cluster.
//! let kube = KubeProvider::connect(None, None).await?;
//! let providers = Providers::new().with(ProviderName::KUBERNETES, Arc::new(kube));
//! let backend = preview_envs::open_backend("file://.preview/state", None).await?;
//! let engine = Engine::new(providers, backend, EventSink::none(), EngineOptions::default());
//!
//! let namespace = components::PreviewNamespace::new("demo").build()?;
//! let graph = DesiredGraph::new("demo", namespace.into_resources())?;
//! let report = engine.up(&graph, BTreeMap::new()).await?;
//! println!("{} steps", report.plan.steps.len());
//! engine.destroy("demo").await?; // and verifies nothing of the stack is left
//! # Ok(())
//! # }
//! ```

// Errors carry the full ResourceId they are about, so every message can name it;
// the size of the Err variant is irrelevant next to a network round trip.
#![allow(clippy::result_large_err)]

pub mod backend;

pub use preview_core as core;
pub use preview_digitalocean as digitalocean;
pub use preview_kubernetes as kubernetes;
pub use preview_postgres as postgres;

pub use backend::{BackendOptions, BackendUrl, open_backend, open_backend_with, redact_url};
