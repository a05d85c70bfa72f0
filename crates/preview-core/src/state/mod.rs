//! Stack state: what the engine created last time.
//!
//! [`StackState`] is the in-memory model; [`format`] is the versioned on-disk
//! serialisation, kept separate so the core types can change without breaking
//! stored state. Backends implement [`StateBackend`]; [`file`] is the default.
//!
//! Invariants:
//! - every write is atomic (write-then-rename, or one transaction);
//! - a state with another lineage or an older serial than the stored one is rejected;
//! - unreadable state stops the run; it is never replaced by an empty state.

pub mod file;
pub mod format;

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::plan::Action;
use crate::resource::ResourceId;

/// What the engine recorded about one resource after applying it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRecord {
    /// Identity.
    pub id: ResourceId,
    /// Dependencies at the time of the apply (deletes use them in reverse).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<ResourceId>,
    /// Hash of the desired body that was applied ([`crate::diff::body_hash`]).
    pub desired_hash: String,
    /// Hash of the live object projected onto the desired body right after apply
    /// ([`crate::diff::projection_hash`]): a cheap drift check with no dry-run.
    pub live_hash: String,
    /// The live object's UID, when the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Never delete.
    #[serde(default)]
    pub protect: bool,
    /// Adopted with `import` rather than created.
    #[serde(default)]
    pub imported: bool,
}

/// A step that started but whose outcome was not recorded (the run was interrupted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// Resource.
    pub id: ResourceId,
    /// What was being done.
    pub action: Action,
}

/// A stack output value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", content = "value")]
pub enum Output {
    /// A plain value.
    Plain(Value),
    /// A secret value, sealed by the state's secret provider. Never printed.
    Secret(String),
}

/// Everything recorded for one stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StackState {
    /// Stack name.
    pub stack: String,
    /// Random id fixed when the stack's state is first created.
    pub lineage: String,
    /// Incremented on every write.
    pub serial: u64,
    /// Resources, by identity (stored as a list; each record carries its id).
    #[serde(with = "records_as_list")]
    pub resources: BTreeMap<ResourceId, ResourceRecord>,
    /// Outputs, by name.
    pub outputs: BTreeMap<String, Output>,
    /// Steps in flight; non-empty after an interrupted run.
    #[serde(default)]
    pub pending: Vec<PendingOperation>,
}

impl StackState {
    /// A new, empty state with a fresh lineage.
    pub fn new(stack: &str) -> Self {
        StackState {
            stack: stack.to_owned(),
            lineage: new_lineage(),
            serial: 0,
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
            pending: Vec::new(),
        }
    }

    /// True when the state records nothing (no resources, no outputs, nothing pending).
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.outputs.is_empty() && self.pending.is_empty()
    }
}

mod records_as_list {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::ResourceRecord;
    use crate::resource::ResourceId;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<ResourceId, ResourceRecord>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.values())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<ResourceId, ResourceRecord>, D::Error> {
        let list = Vec::<ResourceRecord>::deserialize(d)?;
        let mut map = BTreeMap::new();
        for record in list {
            if map.insert(record.id.clone(), record).is_some() {
                return Err(serde::de::Error::custom("a resource is recorded twice"));
            }
        }
        Ok(map)
    }
}

fn new_lineage() -> String {
    let bytes: [u8; 16] = rand::random();
    hex::encode(bytes)
}

/// Errors from a state backend.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state backend {backend}: {message}")]
    Io {
        /// Backend description (e.g. `file:///…/preview-pr-1.json`).
        backend: String,
        /// What failed.
        message: String,
        /// Cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The stored state cannot be read; it is left untouched.
    #[error(
        "state of stack {stack} at {location} is unreadable: {message}; it was not modified (restore it, or remove it with `state delete --force` if the stack's resources are gone)"
    )]
    Corrupt {
        /// Stack.
        stack: String,
        /// Where it is stored.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A write would overwrite newer or foreign state.
    #[error("refusing to write state of stack {stack}: {message}")]
    Stale {
        /// Stack.
        stack: String,
        /// What is wrong (lineage or serial mismatch).
        message: String,
    },
    /// Another run holds the stack's lock.
    #[error(
        "stack {stack} is locked by {holder}; wait for it, pass --lock-timeout, or break it with `state break-lock {stack}` if that run is dead"
    )]
    Locked {
        /// Stack.
        stack: String,
        /// Who holds it (host, pid, start time).
        holder: String,
    },
}

/// Reads, writes and locks stack states.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// A human-readable location, e.g. `file:///home/me/.preview/state`.
    fn describe(&self) -> String;
    /// Reads a stack's state; `Ok(None)` when the stack has none.
    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError>;
    /// Writes a stack's state atomically. `state.serial` must be exactly one more
    /// than the stored serial (or 1 for a new stack) and the lineage must match.
    async fn write(&self, state: &StackState) -> Result<(), StateError>;
    /// Removes a stack's state.
    async fn delete(&self, stack: &str) -> Result<(), StateError>;
    /// Lists stacks with state.
    async fn list(&self) -> Result<Vec<String>, StateError>;
    /// Takes the stack's lock; released when the guard is dropped.
    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError>;
}

/// A held stack lock.
#[async_trait]
pub trait StackLock: Send + Sync {
    /// Releases the lock explicitly (dropping also releases, best effort).
    async fn release(self: Box<Self>) -> Result<(), StateError>;
}
