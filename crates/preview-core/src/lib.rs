//! # preview-core
//!
//! The engine behind per-pull-request preview environments, without any
//! provider: typed resources form a [`graph::DesiredGraph`]; [`planner::plan`]
//! compares it with the recorded [`state::StackState`] and the
//! [`observe::Observed`] live objects and yields a [`plan::Plan`]; [`render`]
//! shows the plan as text, JSON or Markdown; the [`engine`] applies it through the
//! [`provider::Provider`] registered for each resource's [`ProviderName`]
//! ([`engine::Providers`]), recording state after every step.
//!
//! Pure modules (no IO): `resource`, `graph`, `diff`, `plan`, `planner`,
//! `render`, `validate`, `values`, `schema`, `saved`, `state::format`. Effects live in
//! `engine` (through providers and backends) and `state::file`. The providers
//! are crates of their own (`preview-kubernetes`, `preview-postgres`,
//! `preview-digitalocean`); `preview-envs` wires them.

// Errors carry the full ResourceId they are about, so every message can name it;
// the size of the Err variant is irrelevant next to a network round trip.
#![allow(clippy::result_large_err)]

pub mod diff;
pub mod engine;
pub mod events;
pub mod graph;
pub mod observe;
pub mod plan;
pub mod planner;
pub mod provider;
pub mod remedy;
pub mod render;
pub mod resource;
pub mod retry;
pub mod saved;
pub mod schema;
pub mod secret;
pub mod state;
pub mod validate;
pub mod values;

pub use resource::{ProviderName, Resource, ResourceId, ResourceOptions, WaitRule};
