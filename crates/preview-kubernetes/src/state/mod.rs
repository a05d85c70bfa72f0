//! Kubernetes state backend (`kubernetes://NAMESPACE`): one Secret per stack,
//! a Lease as the lock.
//!
//! **State.** Secret `preview-state-<stack>` of type `preview-envs.io/state`,
//! labelled `app.kubernetes.io/managed-by=preview-envs`,
//! `preview-envs.io/stack=<stack>`, `preview-envs.io/state-part=main`. Its data key
//! `state` holds the gzip-compressed [`format`](mod@format) document (encoded by the
//! backend's [`Codec`], authenticated when a state passphrase is set). When that exceeds
//! [`CHUNK_LIMIT`] (900 KiB, under the API server's 1 MiB object limit), it is
//! split into chunk Secrets `preview-state-<stack>-<generation>-<n>` and the main
//! Secret's data key `index` holds `{generation, chunks, size, sha256}` instead.
//!
//! **Atomic writes.** A write reads the main Secret, checks the new state against
//! the stored one ([`check_write`]), writes the chunks of a new generation (if
//! any), then creates the main Secret or replaces it with the `resourceVersion`
//! it read as a precondition: a concurrent writer gets 409 Conflict →
//! [`StateError::Stale`], and removes the chunks it wrote. Only after the index
//! flipped are the previous generation's chunks deleted, so a reader always sees
//! a complete old or a complete new state; a reader that raced a flip retries.
//!
//! **Lock.** [`lease`]: a `coordination.k8s.io/v1` Lease `preview-lock-<stack>`.
//!
//! **Records.** [`records`]: ConfigMaps `preview-<kind>-<name>` (tested images).

pub mod lease;
pub mod records;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use serde::{Deserialize, Serialize};

use crate::FIELD_MANAGER;
use preview_core::state::format::{self, Codec, Purpose};
use preview_core::state::{
    StackLock, StackState, StateBackend, StateError, WriteRule, check_stack_name, check_write,
};

/// Default `leaseDurationSeconds` of the lock Lease.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(20);
/// Longest lease duration accepted (a dead holder's lock must expire within it).
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(60);
/// Largest stored document kept inline in the main Secret, and the size of each
/// chunk beyond it (the API server refuses Secrets over 1 MiB).
pub const CHUNK_LIMIT: usize = 900 * 1024;
/// Secret type of state Secrets.
pub const SECRET_TYPE: &str = "preview-envs.io/state";
/// Label naming the manager.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "preview-envs";
/// Label naming the stack.
pub const LABEL_STACK: &str = "preview-envs.io/stack";
/// Label telling the main Secret (`main`) from chunks (`chunk`).
pub const LABEL_PART: &str = "preview-envs.io/state-part";
/// Label naming a chunk's generation.
pub const LABEL_GENERATION: &str = "preview-envs.io/state-generation";
/// Largest decompressed state accepted (guards against decompression bombs).
const MAX_STATE_BYTES: u64 = 512 * 1024 * 1024;

/// The index stored in a chunked main Secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ChunkIndex {
    generation: String,
    chunks: usize,
    size: usize,
    sha256: String,
}

/// The Kubernetes backend.
#[derive(Clone)]
pub struct KubeBackend {
    client: kube::Client,
    namespace: String,
    lease_duration: Duration,
    chunk_limit: usize,
    codec: Codec,
}

impl std::fmt::Debug for KubeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeBackend")
            .field("namespace", &self.namespace)
            .field("lease_duration", &self.lease_duration)
            .finish()
    }
}

/// Stack names here become object names and label values: lowercase letters,
/// digits, `-` and `.`, at most 63 characters, starting and ending alphanumeric.
pub fn check_kube_stack_name(stack: &str) -> Result<(), StateError> {
    check_stack_name(stack)?;
    let ok = stack.len() <= 63
        && stack
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && stack
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && stack
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(StateError::Io {
            backend: "kubernetes".into(),
            message: format!(
                "stack name {stack:?} cannot name Kubernetes objects: use lowercase letters, digits, '-' and '.', at most 63 characters"
            ),
            source: None,
        })
    }
}

pub(crate) fn kube_io(backend: &str, what: String, e: kube::Error) -> StateError {
    let message = match &e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "{what}: forbidden ({}); the credentials need get/list/create/update/delete on secrets and leases (and get/list/create/update on configmaps, for tested-image records) in this namespace",
            s.message
        ),
        kube::Error::Api(s) if s.code == 404 && s.message.contains("namespaces") => format!(
            "{what}: {}; create the namespace first (kubectl create namespace …)",
            s.message
        ),
        kube::Error::Api(s) => format!("{what}: {} ({})", s.message, s.code),
        other => format!("{what}: {}", crate::errors::describe(other)),
    };
    // A transport error's causes are in the message once each
    // (`errors::describe`); its chain would repeat them.
    let source: Option<Box<dyn std::error::Error + Send + Sync>> =
        if crate::errors::is_transport(&e) {
            None
        } else {
            Some(Box::new(e))
        };
    StateError::Io {
        backend: backend.to_owned(),
        message,
        source,
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

pub(crate) fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    }
}

impl KubeBackend {
    /// A backend keeping states in `namespace` (which must exist).
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        KubeBackend {
            client,
            namespace: namespace.to_owned(),
            lease_duration: DEFAULT_LEASE_DURATION,
            chunk_limit: CHUNK_LIMIT,
            codec: Codec::plain(),
        }
    }

    /// The same backend reading and writing through `codec` (authenticated
    /// with a state passphrase).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// Sets the lock Lease's duration (1–60 s; tests use a few seconds).
    pub fn with_lease_duration(mut self, duration: Duration) -> Result<Self, String> {
        if duration < Duration::from_secs(1) || duration > MAX_LEASE_DURATION {
            return Err(format!(
                "lease duration {} is out of range (1 s to {} s)",
                humantime::format_duration(duration),
                MAX_LEASE_DURATION.as_secs()
            ));
        }
        self.lease_duration = Duration::from_secs(duration.as_secs());
        Ok(self)
    }

    /// Lowers the inline/chunk size (tests exercise chunking with small states).
    pub fn with_chunk_limit(mut self, bytes: usize) -> Self {
        self.chunk_limit = bytes.clamp(1024, CHUNK_LIMIT);
        self
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Name of a stack's main Secret.
    pub fn secret_name(stack: &str) -> String {
        format!("preview-state-{stack}")
    }

    fn chunk_name(stack: &str, generation: &str, n: usize) -> String {
        format!("preview-state-{stack}-{generation}-{n}")
    }

    fn labels(stack: &str, part: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
            (LABEL_STACK.to_owned(), stack.to_owned()),
            (LABEL_PART.to_owned(), part.to_owned()),
        ])
    }

    fn location(&self, stack: &str) -> String {
        format!(
            "kubernetes://{}/secrets/{}",
            self.namespace,
            Self::secret_name(stack)
        )
    }

    fn corrupt(&self, stack: &str, message: impl Into<String>) -> StateError {
        StateError::Corrupt {
            stack: stack.to_owned(),
            location: self.location(stack),
            message: message.into(),
        }
    }

    /// Reads the main Secret and the stored document (decompressed); retries
    /// when a concurrent write replaced the chunks it was reading.
    async fn read_raw(&self, stack: &str) -> Result<Option<(Secret, Vec<u8>)>, StateError> {
        let api = self.secrets();
        let name = Self::secret_name(stack);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(main) = api
                .get_opt(&name)
                .await
                .map_err(|e| kube_io(&self.describe(), format!("reading secret {name}"), e))?
            else {
                return Ok(None);
            };
            if main.type_.as_deref() != Some(SECRET_TYPE) {
                return Err(self.corrupt(
                    stack,
                    format!(
                        "the Secret exists but is not a state Secret (type {:?}, expected {SECRET_TYPE})",
                        main.type_.as_deref().unwrap_or("")
                    ),
                ));
            }
            let data = main.data.clone().unwrap_or_default();
            let stored = if let Some(ByteString(bytes)) = data.get("state") {
                bytes.clone()
            } else if let Some(ByteString(raw)) = data.get("index") {
                let index: ChunkIndex = serde_json::from_slice(raw)
                    .map_err(|e| self.corrupt(stack, format!("unreadable chunk index: {e}")))?;
                match self.read_chunks(stack, &index).await? {
                    Some(bytes) => bytes,
                    None if attempts < 4 => {
                        // A chunk vanished: a concurrent write probably flipped the
                        // index and removed the old generation. Read again.
                        tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
                        continue;
                    }
                    None => {
                        return Err(self.corrupt(
                            stack,
                            format!("a chunk of generation {} is missing", index.generation),
                        ));
                    }
                }
            } else {
                return Err(
                    self.corrupt(stack, "the Secret has neither a `state` nor an `index` key")
                );
            };
            let bytes = format::gunzip_if_compressed(&stored, MAX_STATE_BYTES)
                .map_err(|m| self.corrupt(stack, m))?;
            return Ok(Some((main, bytes)));
        }
    }

    /// The chunks of `index`, concatenated and verified; `None` when one is missing.
    async fn read_chunks(
        &self,
        stack: &str,
        index: &ChunkIndex,
    ) -> Result<Option<Vec<u8>>, StateError> {
        if index.chunks == 0 || index.chunks > 4096 {
            return Err(self.corrupt(stack, format!("invalid chunk count {}", index.chunks)));
        }
        let api = self.secrets();
        let mut out = Vec::with_capacity(index.size.min(MAX_STATE_BYTES as usize));
        for n in 0..index.chunks {
            let name = Self::chunk_name(stack, &index.generation, n);
            let Some(chunk) = api
                .get_opt(&name)
                .await
                .map_err(|e| kube_io(&self.describe(), format!("reading secret {name}"), e))?
            else {
                return Ok(None);
            };
            let Some(ByteString(bytes)) = chunk.data.as_ref().and_then(|d| d.get("chunk")) else {
                return Err(self.corrupt(stack, format!("chunk {name} has no data")));
            };
            out.extend_from_slice(bytes);
        }
        if out.len() != index.size || format::sha256_hex(&out) != index.sha256 {
            return Err(self.corrupt(
                stack,
                format!(
                    "the chunks of generation {} do not match their index (size or sha256)",
                    index.generation
                ),
            ));
        }
        Ok(Some(out))
    }

    fn decode(
        &self,
        stack: &str,
        bytes: &[u8],
        purpose: Purpose,
    ) -> Result<StackState, StateError> {
        self.codec
            .decode(bytes, stack, purpose)
            .map_err(|e| e.at(stack, self.location(stack)))
    }

    /// Writes the chunk Secrets of a new generation; returns the index.
    async fn write_chunks(&self, stack: &str, bytes: &[u8]) -> Result<ChunkIndex, StateError> {
        let generation = hex::encode(rand::random::<[u8; 4]>());
        let api = self.secrets();
        let pieces: Vec<&[u8]> = bytes.chunks(self.chunk_limit).collect();
        for (n, piece) in pieces.iter().enumerate() {
            let name = Self::chunk_name(stack, &generation, n);
            let mut labels = Self::labels(stack, "chunk");
            labels.insert(LABEL_GENERATION.to_owned(), generation.clone());
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                type_: Some(SECRET_TYPE.to_owned()),
                data: Some(BTreeMap::from([(
                    "chunk".to_owned(),
                    ByteString(piece.to_vec()),
                )])),
                ..Default::default()
            };
            if let Err(e) = api.create(&post_params(), &secret).await {
                self.delete_generation(stack, &generation).await;
                return Err(kube_io(
                    &self.describe(),
                    format!("creating secret {name}"),
                    e,
                ));
            }
        }
        Ok(ChunkIndex {
            generation,
            chunks: pieces.len(),
            size: bytes.len(),
            sha256: format::sha256_hex(bytes),
        })
    }

    /// Deletes the chunks of one generation (best effort: leftovers are harmless
    /// and removed with the stack's state).
    async fn delete_generation(&self, stack: &str, generation: &str) {
        let selector =
            format!("{LABEL_STACK}={stack},{LABEL_PART}=chunk,{LABEL_GENERATION}={generation}");
        if let Err(e) = self
            .secrets()
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels(&selector),
            )
            .await
        {
            tracing::warn!(stack, generation, error = %e, "could not delete old state chunks");
        }
    }
}

#[async_trait]
impl StateBackend for KubeBackend {
    fn describe(&self) -> String {
        format!("kubernetes://{}", self.namespace)
    }

    fn codec(&self) -> &Codec {
        &self.codec
    }

    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError> {
        check_kube_stack_name(stack)?;
        match self.read_raw(stack).await? {
            Some((_, bytes)) => Ok(Some(self.decode(stack, &bytes, Purpose::Read)?)),
            None => Ok(None),
        }
    }

    async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
        let stack = state.stack.as_str();
        check_kube_stack_name(stack)?;
        let current = self.read_raw(stack).await?;
        let stored = match &current {
            Some((_, bytes)) => Some(self.decode(stack, bytes, Purpose::Write)?),
            None => None,
        };
        check_write(stored.as_ref(), state, rule)?;
        let encoded = self.codec.encode(state).map_err(|m| StateError::Io {
            backend: self.describe(),
            message: format!("cannot encode state: {m}"),
            source: None,
        })?;
        let packed = format::gzip(&encoded).map_err(|m| StateError::Io {
            backend: self.describe(),
            message: format!("cannot compress state: {m}"),
            source: None,
        })?;
        let (data, new_generation) = if packed.len() <= self.chunk_limit {
            (
                BTreeMap::from([("state".to_owned(), ByteString(packed))]),
                None,
            )
        } else {
            let index = self.write_chunks(stack, &packed).await?;
            let raw = serde_json::to_vec(&index).map_err(|e| StateError::Io {
                backend: self.describe(),
                message: format!("cannot encode chunk index: {e}"),
                source: None,
            })?;
            let generation = index.generation.clone();
            (
                BTreeMap::from([("index".to_owned(), ByteString(raw))]),
                Some(generation),
            )
        };
        let name = Self::secret_name(stack);
        let old_main = current.as_ref().map(|(main, _)| main);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(Self::labels(stack, "main")),
                annotations: Some(BTreeMap::from([
                    ("preview-envs.io/lineage".to_owned(), state.lineage.clone()),
                    (
                        "preview-envs.io/serial".to_owned(),
                        state.serial.to_string(),
                    ),
                ])),
                resource_version: old_main.and_then(|m| m.metadata.resource_version.clone()),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data),
            ..Default::default()
        };
        let api = self.secrets();
        let result = match old_main {
            Some(_) => api.replace(&name, &post_params(), &secret).await,
            None => api.create(&post_params(), &secret).await,
        };
        if let Err(e) = result {
            if let Some(generation) = &new_generation {
                self.delete_generation(stack, generation).await;
            }
            return Err(match status_code(&e) {
                Some(409) => StateError::Stale {
                    stack: stack.to_owned(),
                    message: format!(
                        "another writer changed secret {name} after this run read it (resourceVersion conflict); read the state again"
                    ),
                },
                _ => kube_io(&self.describe(), format!("writing secret {name}"), e),
            });
        }
        // The index flipped: the previous generation's chunks are garbage now.
        let old_generation = old_main
            .and_then(|m| m.data.as_ref()?.get("index").cloned())
            .and_then(|ByteString(raw)| serde_json::from_slice::<ChunkIndex>(&raw).ok())
            .map(|i| i.generation);
        if let Some(old) = old_generation
            && Some(&old) != new_generation.as_ref()
        {
            self.delete_generation(stack, &old).await;
        }
        Ok(())
    }

    async fn delete(&self, stack: &str) -> Result<(), StateError> {
        check_kube_stack_name(stack)?;
        let api = self.secrets();
        let name = Self::secret_name(stack);
        let existing = api
            .get_opt(&name)
            .await
            .map_err(|e| kube_io(&self.describe(), format!("reading secret {name}"), e))?;
        if let Some(secret) = &existing
            && secret.type_.as_deref() != Some(SECRET_TYPE)
        {
            return Err(StateError::Io {
                backend: self.describe(),
                message: format!(
                    "secret {name} is not a state Secret (type {:?}); not deleting it",
                    secret.type_.as_deref().unwrap_or("")
                ),
                source: None,
            });
        }
        let dp = DeleteParams {
            preconditions: existing.map(|s| Preconditions {
                uid: s.metadata.uid,
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => {
                return Err(kube_io(
                    &self.describe(),
                    format!("deleting secret {name}"),
                    e,
                ));
            }
        }
        let selector =
            format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_STACK}={stack},{LABEL_PART}=chunk");
        api.delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&selector),
        )
        .await
        .map_err(|e| kube_io(&self.describe(), format!("deleting chunks of {name}"), e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StateError> {
        let selector = format!("{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_PART}=main");
        let list = self
            .secrets()
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| kube_io(&self.describe(), "listing state secrets".into(), e))?;
        let mut stacks: Vec<String> = list
            .items
            .iter()
            .filter_map(|s| s.metadata.labels.as_ref()?.get(LABEL_STACK).cloned())
            .collect();
        stacks.sort();
        stacks.dedup();
        Ok(stacks)
    }

    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError> {
        check_kube_stack_name(stack)?;
        Ok(Box::new(lease::acquire(self, stack).await?))
    }

    async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError> {
        check_kube_stack_name(stack)?;
        lease::break_lease(self, stack).await
    }

    async fn read_record(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.read_record_impl(kind, name).await
    }

    async fn swap_record(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        self.swap_record_impl(kind, name, expected, body).await
    }

    async fn list_records(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.list_records_impl(kind).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_must_name_objects() {
        assert!(check_kube_stack_name("preview-pr-12").is_ok());
        assert!(check_kube_stack_name("a.b").is_ok());
        for bad in ["Upper", "under_score", "-x", "x-", &"a".repeat(64), ""] {
            assert!(check_kube_stack_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(KubeBackend::secret_name("s"), "preview-state-s");
        assert_eq!(
            KubeBackend::chunk_name("s", "ab12", 3),
            "preview-state-s-ab12-3"
        );
    }
}
