//! # openapi-fake
//!
//! What every local fake of a third-party HTTP API in this workspace shares
//! (`github-fake`, `digitalocean-fake`):
//!
//! - [`Spec`]: the API's official OpenAPI 3.0 description, read at run time (never
//!   copied into the repository), with operation lookup by method and concrete path
//!   and the checks a fake applies to every exchange — path and query parameters,
//!   request bodies, response bodies per status;
//! - [`schema::Validator`]: a focused JSON-schema validator for the OpenAPI 3.0
//!   subset those descriptions use, which reports (rather than ignores) keywords it
//!   does not implement;
//! - [`fake`]: a fake's shared state (description, state, base URL) and its
//!   start-up on a free loopback port;
//! - [`faults`]: the count-down of injected failures;
//! - [`pages`]: page-number pagination of lists;
//! - [`http`]: the accept loop, request reading and query-string decoding.
//!
//! Each fake keeps its own endpoint behaviour, state and contract headers; problems
//! found by these checks are turned into error responses and recorded as
//! violations that the tests assert to be empty.

pub mod fake;
pub mod faults;
pub mod http;
pub mod pages;
pub mod schema;
pub mod spec;

pub use schema::Validator;
pub use spec::{Operation, Spec, SpecError};
