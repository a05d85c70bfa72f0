//! # components
//!
//! Typed builders for the pieces of a preview environment. Components only build
//! [`preview_core::Resource`]s from typed objects; they never call an API.
