//! Tested-image records: which images a successful preview deployment ran, kept
//! so that production can be given exactly those images after the preview is gone.
//!
//! One record per pull request, stored by the state backend beside (not inside) the
//! stack states, under kind [`KIND`] and name `pr-<N>` (see
//! [`StateBackend::read_record`]): `DIR/tested-images/pr-N.json` in a `file://`
//! backend, ConfigMap `preview-tested-images-pr-N` in a `kubernetes://` backend,
//! a row of `preview_envs_records` in a `postgres://` backend. `destroy` and
//! `state delete` never touch it.
//!
//! The record is a history, oldest first: every successful `up` of `preview-pr-N`
//! appends one [`TestedEntry`] (full `NAME@sha256:` references by component, the
//! commit SHA, the preview state's lineage and serial, the time), unless the last
//! entry already names the same commit and images, in which case nothing is
//! written (a no-op `up` stays write-free). Entries are never changed or removed:
//! [`append`] replaces the stored document only with a compare-and-swap on the
//! exact bytes it read, and its new history starts with the stored one.
//!
//! Stored form (format 1), checksummed like the state ([`super::format`]):
//!
//! ```text
//! {
//!   "format": 1,
//!   "kind": "tested-images",
//!   "sha256": "<hex SHA-256 of the exact bytes of the record value>",
//!   "record": {
//!     "pr": 12,
//!     "entries": [
//!       {"commit": "<40 or 64 hex>" | null,
//!        "images": {"api": "REG/api@sha256:…", "web": "REG/web@sha256:…"},
//!        "stack": "preview-pr-12", "lineage": "…", "serial": 4,
//!        "recordedAt": "2026-05-01T12:00:00Z"}
//!     ]
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{StateBackend, StateError, format::sha256_hex};

/// Record kind of tested images.
pub const KIND: &str = "tested-images";

/// Current format of a stored record.
pub const FORMAT_VERSION: u32 = 1;

/// How often [`append`] tries before giving up while other writers keep changing
/// the record (each round one writer wins; previews of one PR are serialised by
/// their stack lock anyway, so contention is rare).
const CAS_ATTEMPTS: u32 = 32;

/// One successful preview deployment: what it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestedEntry {
    /// The commit the images were built from (lowercase hex, 40 or 64
    /// characters); `None` when the run was not told (`--commit`).
    pub commit: Option<String>,
    /// Image references by component (`web`, `api`), each `NAME@sha256:<64 hex>`.
    pub images: BTreeMap<String, String>,
    /// The preview stack (`preview-pr-12`).
    pub stack: String,
    /// Lineage of the preview's state at the time.
    pub lineage: String,
    /// Serial of the preview's state after the run.
    pub serial: u64,
    /// When it was recorded (RFC 3339, UTC).
    pub recorded_at: String,
}

impl TestedEntry {
    /// An entry recorded now.
    pub fn now(
        commit: Option<String>,
        images: BTreeMap<String, String>,
        stack: &str,
        lineage: &str,
        serial: u64,
    ) -> Self {
        TestedEntry {
            commit,
            images,
            stack: stack.to_owned(),
            lineage: lineage.to_owned(),
            serial,
            recorded_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        }
    }

    /// True when `other` names the same commit and images (what "unchanged" means).
    pub fn same_test(&self, other: &TestedEntry) -> bool {
        self.commit == other.commit && self.images == other.images
    }

    /// The first problem with this entry, if any.
    pub fn problem(&self) -> Option<String> {
        if self.images.is_empty() {
            return Some("it names no image".into());
        }
        for (component, image) in &self.images {
            if !is_component_name(component) {
                return Some(format!("component name {component:?} is not valid"));
            }
            if let Some(p) = pinned_problem(image) {
                return Some(format!("image {component}: {p}"));
            }
        }
        if let Some(commit) = &self.commit
            && let Err(e) = check_commit(commit)
        {
            return Some(e);
        }
        None
    }

    /// The commit, shortened to 12 characters, or `unknown commit`.
    pub fn short_commit(&self) -> String {
        match &self.commit {
            Some(c) => c.chars().take(12).collect(),
            None => "unknown commit".into(),
        }
    }
}

/// Everything recorded for one pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestedRecord {
    /// Pull-request number.
    pub pr: u64,
    /// Successful deployments, oldest first.
    pub entries: Vec<TestedEntry>,
}

impl TestedRecord {
    /// The last entry (what the PR's preview last ran).
    pub fn latest(&self) -> Option<&TestedEntry> {
        self.entries.last()
    }

    /// The last entry built from `commit` (a full SHA or a prefix).
    pub fn latest_for_commit(&self, commit: &str) -> Option<&TestedEntry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.commit.as_deref().is_some_and(|c| c.starts_with(commit)))
    }
}

/// The record name of a pull request.
pub fn record_name(pr: u64) -> String {
    format!("pr-{pr}")
}

fn is_component_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why `image` is not `NAME@sha256:<64 lowercase hex>`, if it is not.
pub fn pinned_problem(image: &str) -> Option<String> {
    let Some((name, digest)) = image.rsplit_once('@') else {
        return Some(format!("{image:?} is not pinned by digest"));
    };
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("{image:?} has no valid name before '@'"));
    }
    let ok = digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    (!ok).then(|| format!("{image:?}: digest is not sha256:<64 lowercase hex>"))
}

/// Checks a full commit SHA (40 or 64 lowercase hex characters).
pub fn check_commit(commit: &str) -> Result<(), String> {
    let hex = commit
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hex && matches!(commit.len(), 40 | 64) {
        Ok(())
    } else {
        Err(format!(
            "{commit:?} is not a full commit SHA (40 or 64 lowercase hex characters)"
        ))
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    format: u32,
    kind: String,
    sha256: String,
    #[serde(borrow)]
    record: &'a RawValue,
}

/// Serialises a record (pretty JSON, checksummed).
pub fn encode(record: &TestedRecord) -> Result<Vec<u8>, String> {
    let body = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(body.len() + 128);
    out.extend_from_slice(b"{\n  \"format\": ");
    out.extend_from_slice(FORMAT_VERSION.to_string().as_bytes());
    out.extend_from_slice(b",\n  \"kind\": \"");
    out.extend_from_slice(KIND.as_bytes());
    out.extend_from_slice(b"\",\n  \"sha256\": \"");
    out.extend_from_slice(sha256_hex(&body).as_bytes());
    out.extend_from_slice(b"\",\n  \"record\": ");
    out.extend_from_slice(&body);
    out.extend_from_slice(b"\n}\n");
    Ok(out)
}

/// Parses a stored record, checking format, kind, checksum and every entry.
pub fn decode(bytes: &[u8]) -> Result<TestedRecord, String> {
    let env: Envelope<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a record document: {e}"))?;
    if env.format != FORMAT_VERSION {
        return Err(format!(
            "record format {} is not supported by this version (reads {FORMAT_VERSION}); upgrade the tool",
            env.format
        ));
    }
    if env.kind != KIND {
        return Err(format!("it is a {:?} record, not {KIND}", env.kind));
    }
    let actual = sha256_hex(env.record.get().as_bytes());
    if !actual.eq_ignore_ascii_case(&env.sha256) {
        return Err(format!(
            "checksum mismatch (recorded sha256 {}, content has {actual}): the record was modified or damaged outside this tool",
            env.sha256
        ));
    }
    let record: TestedRecord =
        serde_json::from_str(env.record.get()).map_err(|e| format!("invalid record: {e}"))?;
    for (i, entry) in record.entries.iter().enumerate() {
        if let Some(p) = entry.problem() {
            return Err(format!("entry {}: {p}", i + 1));
        }
    }
    Ok(record)
}

fn corrupt(backend: &dyn StateBackend, name: &str, message: String) -> StateError {
    StateError::Io {
        backend: backend.describe(),
        message: format!(
            "tested-images record {name} is unreadable: {message}; it was not modified"
        ),
        source: None,
    }
}

/// What [`append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appended {
    /// The entry was added; the history now has this many entries.
    Added(usize),
    /// The last entry already named the same commit and images; nothing was written.
    Unchanged,
}

/// Reads the record of pull request `pr`.
pub async fn read(backend: &dyn StateBackend, pr: u64) -> Result<Option<TestedRecord>, StateError> {
    let name = record_name(pr);
    match backend.read_record(KIND, &name).await? {
        Some(bytes) => decode_checked(backend, &name, pr, &bytes).map(Some),
        None => Ok(None),
    }
}

fn decode_checked(
    backend: &dyn StateBackend,
    name: &str,
    pr: u64,
    bytes: &[u8],
) -> Result<TestedRecord, StateError> {
    let record = decode(bytes).map_err(|m| corrupt(backend, name, m))?;
    if record.pr != pr {
        return Err(corrupt(
            backend,
            name,
            format!("it records pull request {}", record.pr),
        ));
    }
    Ok(record)
}

/// Every tested-images record in the backend, by PR number.
pub async fn all(backend: &dyn StateBackend) -> Result<Vec<TestedRecord>, StateError> {
    let mut out = Vec::new();
    for (name, bytes) in backend.list_records(KIND).await? {
        let Some(pr) = name.strip_prefix("pr-").and_then(|n| n.parse::<u64>().ok()) else {
            return Err(corrupt(
                backend,
                &name,
                "its name is not pr-<number>".into(),
            ));
        };
        out.push(decode_checked(backend, &name, pr, &bytes)?);
    }
    out.sort_by_key(|r| r.pr);
    Ok(out)
}

/// Appends `entry` to the record of pull request `pr` (creating it), unless the
/// last entry is the [same test](TestedEntry::same_test). Atomic: the stored
/// document is replaced only if it is still exactly what was read; a concurrent
/// writer makes this read again and retry.
pub async fn append(
    backend: &dyn StateBackend,
    pr: u64,
    entry: TestedEntry,
) -> Result<Appended, StateError> {
    let name = record_name(pr);
    if let Some(p) = entry.problem() {
        return Err(StateError::Io {
            backend: backend.describe(),
            message: format!("refusing to record tested images for PR {pr}: {p}"),
            source: None,
        });
    }
    for attempt in 0..CAS_ATTEMPTS {
        if attempt > 0 {
            // Jittered back-off, so that racing writers stop colliding.
            let ms = rand::random_range(5..=25) * u64::from(attempt.min(8));
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        }
        let stored = backend.read_record(KIND, &name).await?;
        let mut record = match &stored {
            Some(bytes) => decode_checked(backend, &name, pr, bytes)?,
            None => TestedRecord {
                pr,
                entries: Vec::new(),
            },
        };
        if record.latest().is_some_and(|last| last.same_test(&entry)) {
            return Ok(Appended::Unchanged);
        }
        record.entries.push(entry.clone());
        let body = encode(&record).map_err(|m| StateError::Io {
            backend: backend.describe(),
            message: format!("cannot encode tested-images record {name}: {m}"),
            source: None,
        })?;
        match backend
            .swap_record(KIND, &name, stored.as_deref(), &body)
            .await
        {
            Ok(()) => return Ok(Appended::Added(record.entries.len())),
            Err(StateError::Stale { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StateError::Stale {
        stack: format!("{KIND}/{name}"),
        message: format!("other writers kept changing the record; tried {CAS_ATTEMPTS} times"),
    })
}

/// Where a promotion's images were found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Pull request.
    pub pr: u64,
    /// The entry.
    pub entry: TestedEntry,
}

/// The latest entry (by record time) built from `commit` (a full SHA, or a prefix
/// of at least 7 characters) across `records`. A prefix naming two different
/// commits is an error.
pub fn find_commit(records: &[TestedRecord], commit: &str) -> Result<Option<Found>, String> {
    let found: Vec<Found> = records
        .iter()
        .flat_map(|r| {
            r.entries
                .iter()
                .filter(|e| e.commit.as_deref().is_some_and(|c| c.starts_with(commit)))
                .map(|e| Found {
                    pr: r.pr,
                    entry: e.clone(),
                })
        })
        .collect();
    let commits: std::collections::BTreeSet<&str> = found
        .iter()
        .filter_map(|f| f.entry.commit.as_deref())
        .collect();
    if commits.len() > 1 {
        return Err(format!(
            "commit {commit} is ambiguous: it is the start of {}; give more characters",
            commits.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(found
        .into_iter()
        .max_by(|a, b| a.entry.recorded_at.cmp(&b.entry.recorded_at)))
}

/// The latest entry (by record time) whose images are exactly `images`.
pub fn find_images(records: &[TestedRecord], images: &BTreeMap<String, String>) -> Option<Found> {
    records
        .iter()
        .flat_map(|r| {
            r.entries
                .iter()
                .filter(|e| &e.images == images)
                .map(|e| Found {
                    pr: r.pr,
                    entry: e.clone(),
                })
        })
        .max_by(|a, b| a.entry.recorded_at.cmp(&b.entry.recorded_at))
}

/// True when some entry of `records` ran `image` (for any component).
pub fn ever_tested(records: &[TestedRecord], image: &str) -> bool {
    records
        .iter()
        .flat_map(|r| &r.entries)
        .any(|e| e.images.values().any(|i| i == image))
}

#[cfg(test)]
mod tests;
