//! The provider boundary: how the engine reads, dry-runs, writes and waits.
//!
//! Each [`crate::resource::ProviderName`] registered in [`crate::engine::Providers`]
//! has one implementation of [`Provider`] (the built-in ones live in the
//! `preview-kubernetes`, `preview-postgres` and `preview-digitalocean` crates;
//! `examples/local_files.rs` adds one of its own). The engine never talks to an
//! API except through this trait.
//!
//! Besides reading and writing, a provider may compute **outputs** of a ready
//! resource ([`Provider::outputs`], e.g. a cluster's endpoint and kubeconfig):
//! the engine records them with the stack's outputs at the end of an `up`,
//! sealing the secret ones itself ([`crate::engine::EngineOptions::sealer`]).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::events::EventSink;
use crate::observe::DryRun;
use crate::remedy::{Remedy, suffix};
use crate::resource::{Resource, ResourceId};
use crate::secret::SecretString;
use crate::state::Output;
use crate::values::ValueFrom;

/// A cause kept inside an error.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Errors from a provider, each naming the resource. A failure caused by
/// another error ([`ProviderError::Failed`]) keeps it: its message ends with
/// the cause's, and [`std::error::Error::source`] returns the cause itself (a
/// printer of the whole chain stops at a `ProviderError`, whose text already
/// has it).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The API answered with an error status.
    #[error("{id}: {verb} failed: {message} (HTTP {code})")]
    Api {
        /// Resource.
        id: ResourceId,
        /// What was attempted (`get`, `apply`, `delete`…).
        verb: &'static str,
        /// HTTP status code.
        code: u16,
        /// The API's message.
        message: String,
    },
    /// Another field manager owns fields this apply sets.
    #[error("{id}: field-manager conflict: {}{}", conflicts.join("; "), suffix("; ", &Remedy::ApplyConflict))]
    Conflict {
        /// Resource.
        id: ResourceId,
        /// One entry per field: `.spec.replicas (owned by "kubectl")`.
        conflicts: Vec<String>,
    },
    /// The resource did not become ready (or gone) in time, or failed.
    #[error("{id}: {message}")]
    NotReady {
        /// Resource.
        id: ResourceId,
        /// What was seen last (e.g. the pod's ImagePullBackOff message).
        message: String,
    },
    /// Anything else (unknown kind, bad body…).
    #[error("{id}: {message}")]
    Other {
        /// Resource.
        id: ResourceId,
        /// What failed.
        message: String,
    },
    /// A failure caused by another error (transport, encoding…), kept as the
    /// [`source`](std::error::Error::source): `{id}: {message}: {source}`
    /// (`{id}: {source}` when `message` is empty).
    #[error("{id}: {}{source}", if message.is_empty() { String::new() } else { format!("{message}: ") })]
    Failed {
        /// Resource.
        id: ResourceId,
        /// What was attempted (`apply failed`, `cannot encode object`), or empty.
        message: String,
        /// The cause.
        #[source]
        source: Cause,
    },
}

impl ProviderError {
    /// The resource the error is about.
    pub fn id(&self) -> &ResourceId {
        match self {
            ProviderError::Api { id, .. }
            | ProviderError::Conflict { id, .. }
            | ProviderError::NotReady { id, .. }
            | ProviderError::Other { id, .. }
            | ProviderError::Failed { id, .. } => id,
        }
    }

    /// A failure of `id` caused by `source` ([`ProviderError::Failed`]).
    pub fn failed(
        id: &ResourceId,
        message: impl Into<String>,
        source: impl Into<Cause>,
    ) -> ProviderError {
        ProviderError::Failed {
            id: id.clone(),
            message: message.into(),
            source: source.into(),
        }
    }
}

/// How long and how patiently to wait.
#[derive(Clone, Copy, Debug)]
pub struct WaitOptions {
    /// Give up after this long.
    pub timeout: Duration,
    /// Fail once a known failure (ImagePullBackOff, quota rejection…) persists this long.
    pub failure_grace: Duration,
    /// For deletes: remove the finalizers of a namespace stuck Terminating, or
    /// of a stack's object whose deletion they hold.
    pub force_finalize: bool,
}

/// One output a provider computed for a ready resource ([`Provider::outputs`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ComputedOutput {
    /// A plain value, recorded as it is.
    Plain(Value),
    /// A secret value: the engine seals it with the stack's data key, keeping
    /// the recorded sealed value when it seals the same plain text (so an
    /// unchanged secret writes nothing).
    Secret(SecretString),
    /// Still good: the value the state records under this name stays (none is
    /// recorded when the state has none).
    Kept,
}

/// Reads, dry-runs, writes and waits for one provider's resources.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The live object, or `None` when it does not exist.
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError>;
    /// What applying `resource` would produce (no write).
    async fn dry_run(&self, resource: &Resource, force: bool) -> Result<DryRun, ProviderError>;
    /// Whether a resource that does not exist yet can be validated with
    /// [`Provider::dry_run`] before it is created, and what must exist first:
    /// `None` = creates are not dry-run by this provider (the default);
    /// `Some(None)` = always; `Some(Some(id))` = once `id` exists (for
    /// Kubernetes: the object's namespace). The engine skips the dry-run when
    /// that prerequisite is desired and not live yet (the plan creates it).
    fn create_prerequisite(&self, _id: &ResourceId) -> Option<Option<ResourceId>> {
        None
    }
    /// The fields of `resource`'s body whose value is read from another
    /// resource's live object ([`crate::values`]: e.g. a DNS record's
    /// `dataFrom`). The engine reads those values, and hands
    /// [`Provider::dry_run`] and [`Provider::apply`] only resolved bodies (the
    /// reference removed, the field set). Default: none.
    fn values_from(&self, resource: &Resource) -> Result<Vec<ValueFrom>, ProviderError> {
        let _ = resource;
        Ok(Vec::new())
    }
    /// Applies `resource` (create or update); returns the stored object.
    async fn apply(&self, resource: &Resource, force: bool) -> Result<Value, ProviderError>;
    /// Requests deletion (returns before the object is gone).
    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError>;
    /// Requests deletion of exactly the object the planner checked (its label
    /// and uid, [`crate::planner::ownership`]): `uid` is that object's uid when
    /// the provider reports one. A provider that can make the delete conditional
    /// on it does (Kubernetes: `preconditions.uid`), so an object recreated
    /// after planning is not deleted; the default is [`Provider::delete`].
    async fn delete_checked(
        &self,
        id: &ResourceId,
        uid: Option<&str>,
    ) -> Result<(), ProviderError> {
        let _ = uid;
        self.delete(id).await
    }
    /// Waits until the resource is ready by its rule, reporting progress.
    async fn wait_ready(
        &self,
        resource: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError>;
    /// Waits until the object is really gone.
    async fn wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<(), ProviderError>;
    /// Outputs of `resource` once an `up` has it ready (applied and waited
    /// for in this run, or unchanged), computed from its live object `live`
    /// (the one the wait returned, or the observed one). `recorded` are the
    /// stack's outputs as its state holds them before this run (secret ones
    /// sealed), so a provider can keep values that are still good
    /// ([`ComputedOutput::Kept`]) instead of fetching them again. The engine
    /// records what is returned with the stack's outputs, replacing outputs of
    /// the same name, and seals [`ComputedOutput::Secret`]s. Called only when
    /// every step succeeded. Default: none.
    async fn outputs(
        &self,
        resource: &Resource,
        live: &Value,
        recorded: &BTreeMap<String, Output>,
        events: &EventSink,
    ) -> Result<BTreeMap<String, ComputedOutput>, ProviderError> {
        let _ = (resource, live, recorded, events);
        Ok(BTreeMap::new())
    }
    /// Whether [`Provider::outputs`] of `resource` may return secret values,
    /// so that a run without a sealer is refused ([`crate::engine::EngineError::NoSealer`]).
    /// Default: no.
    fn secret_outputs(&self, resource: &Resource) -> bool {
        let _ = resource;
        false
    }
    /// Objects carrying this stack's ownership label, of the given kinds (orphan/residue checks).
    async fn list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError>;
    /// Destroy with force-finalize: removes the finalizers holding `id` when the
    /// live object carries `stack`'s label and is already being deleted (nothing
    /// otherwise); returns the finalizers removed. The default: the provider's
    /// objects have no finalizers.
    async fn release_finalizers(
        &self,
        stack: &str,
        id: &ResourceId,
    ) -> Result<Vec<String>, ProviderError> {
        let _ = (stack, id);
        Ok(Vec::new())
    }
}
