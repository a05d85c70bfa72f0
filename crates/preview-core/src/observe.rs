//! Observations: what the providers reported before planning.
//!
//! The engine reads every resource that is desired or recorded (one GET each)
//! and asks for a server-side dry-run apply only where
//! [`crate::planner::needs_dry_run`] says the desired body changed or the live
//! object drifted, and for objects it will create whose namespace already exists
//! (so the API server's validation, CEL rules included, runs before any write).
//! The planner is a pure function of these values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::resource::ResourceId;

/// The outcome of a server-side dry-run apply of the desired body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum DryRun {
    /// The API server accepted the apply; this is the object it would store.
    Accepted {
        /// The would-be object.
        object: Value,
    },
    /// The API server rejected the change because an immutable field changed.
    Immutable {
        /// The API server's message (names the field).
        message: String,
    },
    /// Another field manager owns fields we set (409 Conflict).
    Conflict {
        /// One entry per conflicting field, e.g. `.spec.replicas owned by "kubectl"`.
        conflicts: Vec<String>,
        /// The API server's message.
        message: String,
    },
    /// The credential may not dry-run this object (403 from RBAC: a dry-run is
    /// authorised as the write it simulates). The planner falls back to a local
    /// diff and marks the step [not validated](crate::plan::Step::unvalidated).
    Forbidden {
        /// The API server's message (names the user and the verb).
        message: String,
    },
    /// The API server rejected the body (422 Invalid, 400 Bad Request, 403 quota…).
    Rejected {
        /// HTTP status code.
        code: u16,
        /// The API server's message.
        message: String,
    },
}

/// What was observed for one resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The live object; `None` when it does not exist.
    pub live: Option<Value>,
    /// A dry-run apply of the desired body, when one was needed.
    pub dry_run: Option<DryRun>,
}

/// Observations for every resource that is desired or recorded.
pub type Observed = BTreeMap<ResourceId, Observation>;
