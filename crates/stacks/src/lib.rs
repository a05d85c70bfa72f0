//! # stacks
//!
//! The four stacks — `local`, `preview-base`, `preview-pr`, `production` — each a
//! composition of the same [`components`] with its own configuration.
