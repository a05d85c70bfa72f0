//! Stack state: what the engine created last time, and where it is kept.
//!
//! [`StackState`] is the in-memory model; [`format`](mod@format) is the versioned stored
//! serialisation (with a SHA-256 checksum since format 2, authenticated with a
//! key derived from the state passphrase in format 3, [`auth`]), kept separate
//! so the core types can change without breaking stored state. Backends implement
//! [`StateBackend`] and are chosen by URL with `preview_envs::open_backend`:
//!
//! | URL | backend | lock |
//! |---|---|---|
//! | `file://DIR` | [`file`](mod@file): `DIR/<stack>.json`, write-then-rename | `DIR/<stack>.lock` (`O_EXCL`) |
//! | `kubernetes://NAMESPACE` | `preview_kubernetes::state`: Secret `preview-state-<stack>` (chunked when large) | Lease `preview-lock-<stack>` |
//! | `postgres://…` | `preview_postgres::state`: row in `preview_envs_state` | per-stack session advisory lock |
//!
//! Secret outputs are sealed with a per-stack data key ([`crypto`]). Every
//! backend reads and writes through its [`format::Codec`]: with a state
//! passphrase, documents that do not verify are refused as
//! [`StateError::NotAuthentic`], and hashes of secret bodies are keyed per
//! stack ([`auth::RecordHasher`]).
//!
//! Invariants, on every backend:
//! - every write is atomic (write-then-rename, a `resourceVersion` precondition,
//!   or one transaction);
//! - a write is checked against the stored state by the one function
//!   [`check_write`]: another lineage or a serial that does not follow the stored
//!   one is rejected with [`StateError::Stale`];
//! - unreadable or tampered state stops the run with [`StateError::Corrupt`]
//!   (or [`StateError::NotAuthentic`] when its tag does not verify); it is never
//!   replaced by an empty state, and never overwritten: writes decode the stored
//!   document first, through the same codec;
//! - one lock per stack, never a global one: stacks never block each other.
//!   A lock names its holder ([`LockHolder`]); [`lock_with_timeout`] waits for it,
//!   [`StateBackend::break_lock`] removes it.
//!
//! Beside the states, a backend keeps small durable *records* that outlive the
//! stacks ([`StateBackend::read_record`]; `delete` and destroy never touch them):
//! [`tested`] keeps the images each successful preview ran, for promotion.

pub mod auth;
pub mod crypto;
pub mod file;
pub mod format;
mod lock;
mod redact;
pub mod tested;

use std::collections::BTreeMap;

use std::time::SystemTime;

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
    /// Steps a run has planned and not yet recorded as done: all of a run's
    /// mutating steps are recorded here before the first one starts, and each
    /// leaves when its outcome is recorded. Non-empty after an interrupted run.
    #[serde(default)]
    pub pending: Vec<PendingOperation>,
    /// The stack's wrapped data key, once a secret output has been sealed
    /// ([`crypto::Sealer`]). Absent in states written before encryption existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<crypto::Encryption>,
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
            encryption: None,
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
        /// Backend description (e.g. `file:///…/preview-pr-1.json`), never with a password.
        backend: String,
        /// What failed.
        message: String,
        /// Cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The backend URL or its settings are not usable.
    #[error("state backend {url}: {message}")]
    Config {
        /// The URL with any password removed.
        url: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The stored state cannot be read; it is left untouched.
    #[error(
        "state of stack {stack} at {location} is unreadable: {message}; it was not modified (restore it{})",
        crate::remedy::suffix(", or ", &crate::remedy::Remedy::RemoveUnreadableState)
    )]
    Corrupt {
        /// Stack.
        stack: String,
        /// Where it is stored.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A state passphrase is set and the stored document is not authenticated
    /// by it (edited, moved, written with another passphrase, or in an older
    /// unauthenticated format); it is left untouched.
    #[error(
        "state of stack {stack} at {location} is not authentic: {message}; it was not modified"
    )]
    NotAuthentic {
        /// Stack.
        stack: String,
        /// Where it is stored.
        location: String,
        /// Why, and how to re-authenticate it if its content is trusted.
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
        "stack {stack} is locked by {holder}{}",
        crate::remedy::suffix("; ", &crate::remedy::Remedy::Locked { stack })
    )]
    Locked {
        /// Stack.
        stack: String,
        /// Who holds it (host, pid, start time).
        holder: String,
    },
    /// A sealed value or the stack's data key could not be decrypted (or sealed).
    #[error("cannot decrypt {what} of stack {stack}: {reason}")]
    Decrypt {
        /// Stack.
        stack: String,
        /// What (`secret output db_password`, `the data key`).
        what: String,
        /// Why (usually "wrong passphrase or tampered state").
        reason: String,
    },
    /// The state passphrase is missing or unusable.
    #[error("state passphrase: {0}")]
    Passphrase(String),
}

impl StateError {
    /// True for [`StateError::Locked`].
    pub fn is_locked(&self) -> bool {
        matches!(self, StateError::Locked { .. })
    }
}

/// How a write must relate to the stored state. Checked by [`check_write`]
/// atomically with the write, on every backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteRule {
    /// The normal rule: same lineage and exactly the next serial (1 for a new
    /// stack).
    Next,
    /// Same lineage and a higher serial; any serial ≥ 1 when the stack has no
    /// state (importing a state file keeps its serial).
    Newer,
    /// Replace whatever is stored, provided it is still exactly the state that
    /// was inspected (`None`: still absent) and the new serial is higher. Used by
    /// a forced import, which may change the lineage.
    Replace {
        /// `(lineage, serial)` of the state the caller inspected.
        expected: Option<(String, u64)>,
    },
}

/// The one integrity check every backend applies, inside its atomic write:
/// `stored` is the state currently stored (`None`: the stack has none).
pub fn check_write(
    stored: Option<&StackState>,
    next: &StackState,
    rule: &WriteRule,
) -> Result<(), StateError> {
    let stale = |message: String| {
        Err(StateError::Stale {
            stack: next.stack.clone(),
            message,
        })
    };
    if next.serial == 0 {
        return stale("serial 0 is never stored (the first write has serial 1)".into());
    }
    if let WriteRule::Replace { expected } = rule {
        let actual = stored.map(|s| (s.lineage.clone(), s.serial));
        if &actual != expected {
            let show = |v: &Option<(String, u64)>| match v {
                Some((l, s)) => format!("lineage {l} serial {s}"),
                None => "no state".to_owned(),
            };
            return stale(format!(
                "the stored state changed since it was inspected (expected {}, found {})",
                show(expected),
                show(&actual)
            ));
        }
        return match stored {
            Some(s) if next.serial <= s.serial => stale(format!(
                "stored serial is {}, this write has {} (a replacement must have a higher serial)",
                s.serial, next.serial
            )),
            _ => Ok(()),
        };
    }
    let Some(stored) = stored else {
        return match rule {
            WriteRule::Next if next.serial != 1 => stale(format!(
                "no stored state, but this write has serial {} (expected 1; was the state deleted while this run was going?)",
                next.serial
            )),
            _ => Ok(()),
        };
    };
    if stored.lineage != next.lineage {
        return stale(format!(
            "stored state has lineage {}, this write has {} (it belongs to another state history)",
            stored.lineage, next.lineage
        ));
    }
    match rule {
        WriteRule::Next if next.serial != stored.serial + 1 => stale(format!(
            "stored serial is {}, this write has {} (another run wrote in between?)",
            stored.serial, next.serial
        )),
        WriteRule::Newer if next.serial <= stored.serial => stale(format!(
            "stored serial is {}, this write has {} (it is not newer)",
            stored.serial, next.serial
        )),
        _ => Ok(()),
    }
}

/// Checks a stack name common to all backends (some add stricter rules):
/// 1–253 characters, letters, digits, `-`, `_` and `.`, not starting with `.`.
pub fn check_stack_name(stack: &str) -> Result<(), StateError> {
    let ok = !stack.is_empty()
        && stack.len() <= 253
        && stack
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !stack.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(StateError::Io {
            backend: "state".into(),
            message: format!("invalid stack name {stack:?}: use letters, digits, '-', '_' and '.'"),
            source: None,
        })
    }
}

/// Who holds a stack lock: written into the lock (file, Lease, table row) so that
/// a second run can name it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Host name of the holder.
    pub host: String,
    /// Process id on that host.
    pub pid: u32,
    /// When the lock was taken (RFC 3339, UTC).
    pub started: String,
    /// Random id of this acquisition: a process that takes the same lock twice
    /// (or a pid reused later) is told apart. Not shown in messages.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

impl LockHolder {
    /// This process, now, with a fresh token.
    pub fn current() -> Self {
        let token: [u8; 8] = rand::random();
        LockHolder {
            host: host_name(),
            pid: std::process::id(),
            started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            token: hex::encode(token),
        }
    }
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} since {}",
            self.pid, self.host, self.started
        )
    }
}

/// The host name (from `/proc`; `unknown-host` when unavailable).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Reads, writes and locks stack states.
#[async_trait]
pub trait StateBackend: Send + Sync {
    /// A human-readable location, e.g. `file:///home/me/.preview/state`. Never
    /// contains a password.
    fn describe(&self) -> String;
    /// How this backend encodes and decodes documents (authenticated with a
    /// passphrase or not); also the source of the stack's record hasher.
    fn codec(&self) -> &format::Codec;
    /// Reads a stack's state; `Ok(None)` when the stack has none.
    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError>;
    /// Writes a stack's state atomically under [`WriteRule::Next`]: `state.serial`
    /// must be exactly one more than the stored serial (or 1 for a new stack) and
    /// the lineage must match.
    async fn write(&self, state: &StackState) -> Result<(), StateError> {
        self.write_with(state, &WriteRule::Next).await
    }
    /// Writes a stack's state atomically if [`check_write`] accepts it under `rule`.
    async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError>;
    /// Removes a stack's state (not its lock).
    async fn delete(&self, stack: &str) -> Result<(), StateError>;
    /// Lists stacks with state, sorted.
    async fn list(&self) -> Result<Vec<String>, StateError>;
    /// Takes the stack's lock without waiting ([`StateError::Locked`] names the
    /// holder); released by [`StackLock::release`] or, best effort, on drop.
    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError>;
    /// Removes the stack's lock whoever holds it (`stacks state break-lock STACK`);
    /// returns a description of the holder it removed, `None` when unlocked. Only
    /// for a holder known to be dead: a live holder keeps running unlocked.
    async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError>;
    /// Reads record `kind`/`name` (e.g. `tested-images`/`pr-12`, see [`tested`]);
    /// `Ok(None)` when absent. Records are kept apart from the states: neither
    /// [`StateBackend::delete`] nor `list` sees them.
    async fn read_record(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        check_record_key(kind, name)?;
        Err(records_unsupported(&self.describe()))
    }
    /// Stores `body` as record `kind`/`name`, atomically and only if the stored
    /// record is still exactly `expected` (`None`: still absent): a
    /// compare-and-swap, [`StateError::Stale`] when another writer came first.
    async fn swap_record(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        let _ = (expected, body);
        check_record_key(kind, name)?;
        Err(records_unsupported(&self.describe()))
    }
    /// Every record of `kind` as `(name, body)`, sorted by name.
    async fn list_records(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        check_record_key(kind, "x")?;
        Err(records_unsupported(&self.describe()))
    }
}

fn records_unsupported(backend: &str) -> StateError {
    StateError::Io {
        backend: backend.to_owned(),
        message: "this state backend keeps no records (tested images); use file://, kubernetes:// or postgres://".into(),
        source: None,
    }
}

/// Checks a record's kind and name: each 1–63 lowercase letters, digits and
/// `-`, starting and ending with a letter or digit (they name files, objects and
/// rows on every backend).
pub fn check_record_key(kind: &str, name: &str) -> Result<(), StateError> {
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    if ok(kind) && ok(name) {
        Ok(())
    } else {
        Err(StateError::Io {
            backend: "state".into(),
            message: format!(
                "invalid record {kind:?}/{name:?}: use lowercase letters, digits and '-', at most 63 characters each"
            ),
            source: None,
        })
    }
}

/// A held stack lock.
#[async_trait]
pub trait StackLock: Send + Sync {
    /// Releases the lock explicitly (dropping also releases, best effort).
    async fn release(self: Box<Self>) -> Result<(), StateError>;
    /// True when the backend noticed that the lock is no longer held (expired or
    /// broken lease, lost database session). Writes stay safe regardless: they
    /// are checked against the stored serial.
    fn is_lost(&self) -> bool {
        false
    }
}

pub use lock::{lock_with_timeout, under_lock};
pub use redact::redact_url;

#[cfg(test)]
mod tests;
