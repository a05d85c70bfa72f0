//! # stacks
//!
//! The four application stacks — `local`, `preview-base`, `preview-pr`,
//! `production` — each a composition of the same [`components`] with its own
//! configuration, and `preview-cluster`, the optional DigitalOcean Kubernetes
//! cluster they can run on.
//!
//! A stack is built by [`build`] from a [`StackRequest`] (the stack and its per-run
//! parameters), a [`config::StackConfig`] (per-stack config file plus environment),
//! the outputs of the stacks it references (read by the caller from the state
//! backend) and a [`SecretSource`]. Building is pure: no cluster, no state access.

pub mod config;
pub mod params;
pub mod redact;
pub mod stack;
pub mod state_cmd;

use std::collections::BTreeMap;

use preview_core::Resource;
use preview_core::secret::SecretString;
use preview_core::state::Output;
use preview_core::validate::Policy;

pub use params::{PinnedImage, PrNumber};

/// Which stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StackKind {
    /// Everything on a local cluster, locally built images, self-signed TLS.
    Local,
    /// The persistent shared base.
    PreviewBase,
    /// One pull request's environment.
    PreviewPr,
    /// Production.
    Production,
    /// The DigitalOcean Kubernetes cluster the previews run on (optional; the
    /// alternative to bringing your own kubeconfig).
    PreviewCluster,
}

impl StackKind {
    /// The kebab-case name (`preview-pr`), also the config file's stem.
    pub fn as_str(self) -> &'static str {
        match self {
            StackKind::Local => "local",
            StackKind::PreviewBase => "preview-base",
            StackKind::PreviewPr => "preview-pr",
            StackKind::Production => "production",
            StackKind::PreviewCluster => "preview-cluster",
        }
    }
}

/// The per-run parameters of a stack (already parsed and checked).
#[derive(Clone, Debug)]
pub struct StackRequest {
    /// Which stack.
    pub kind: StackKind,
    /// Pull-request number (preview-pr).
    pub pr: Option<PrNumber>,
    /// Web image (preview-pr, production; local may use an unpinned local tag).
    pub web_image: Option<String>,
    /// API image (preview-pr, production).
    pub api_image: Option<String>,
}

impl StackRequest {
    /// The state name of the stack instance: `preview-pr-123`, `preview-base`, …
    /// Needs only the kind and PR number, so `destroy` and `outputs` work without images.
    pub fn instance_name(&self) -> Result<String, StackError> {
        match (self.kind, &self.pr) {
            (StackKind::PreviewPr, Some(pr)) => Ok(format!("preview-pr-{pr}")),
            (StackKind::PreviewPr, None) => Err(StackError::Missing {
                what: "--pr".into(),
                hint: "preview-pr needs the pull-request number, e.g. --pr 123".into(),
            }),
            (kind, _) => Ok(kind.as_str().to_owned()),
        }
    }
}

/// Where secret values come from (environment variables or files; tests use a map).
pub trait SecretSource {
    /// The secret named `name` (e.g. `DB_PASSWORD`), or `None` when it is not provided.
    fn get(&self, name: &str) -> Option<SecretString>;
    /// How a user provides `name`, for error messages (e.g. "set PREVIEW_DB_PASSWORD or PREVIEW_DB_PASSWORD_FILE").
    fn hint(&self, name: &str) -> String;
}

/// Secrets from the environment: `PREVIEW_<NAME>` or the file named by `PREVIEW_<NAME>_FILE`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvSecrets;

impl SecretSource for EnvSecrets {
    fn get(&self, name: &str) -> Option<SecretString> {
        let var = format!("PREVIEW_{name}");
        if let Ok(v) = std::env::var(&var) {
            return (!v.is_empty()).then(|| SecretString::new(v));
        }
        let path = std::env::var(format!("{var}_FILE")).ok()?;
        let text = std::fs::read_to_string(path).ok()?;
        let trimmed = text.trim_end_matches(['\n', '\r']);
        (!trimmed.is_empty()).then(|| SecretString::new(trimmed))
    }

    fn hint(&self, name: &str) -> String {
        format!("set PREVIEW_{name}, or PREVIEW_{name}_FILE to a file containing it")
    }
}

/// A built stack: what the engine needs to plan and apply it.
#[derive(Clone, Debug)]
pub struct StackBuild {
    /// State name (`preview-pr-123`).
    pub name: String,
    /// Desired resources (the engine builds the graph from them).
    pub resources: Vec<Resource>,
    /// Outputs to record on success (secret outputs as [`Output::Secret`]).
    pub outputs: BTreeMap<String, Output>,
    /// Notes every rendering of the stack's plan shows (e.g. a relaxed
    /// PodSecurity level).
    pub notes: Vec<String>,
    /// Static checks for this stack (e.g. digests required for preview-pr and production).
    pub policy: Policy,
}

/// Errors building a stack: each names the flag, config key or secret to fix.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A required parameter, config key, secret or referenced stack is missing.
    #[error("missing {what}: {hint}")]
    Missing {
        /// What is missing (`--pr`, config key `domain` in config/preview-pr.yaml, secret DB_PASSWORD…).
        what: String,
        /// How to provide it.
        hint: String,
    },
    /// A parameter or config value is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A component rejected its parameters.
    #[error(transparent)]
    Component(#[from] components::ComponentError),
}

/// Outputs of referenced stacks, by stack name (`preview-base` → its outputs).
pub type References = BTreeMap<String, BTreeMap<String, Output>>;

/// Builds the requested stack.
pub fn build(
    request: &StackRequest,
    config: &config::StackConfig,
    references: &References,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    stack::build(request, config, references, secrets)
}

/// The namespace of the PostgreSQL server whose Jobs the in-cluster database
/// executor of stack `kind` may run and read: `database.namespace` of the
/// stack's own configuration for the stacks that run the server, the base
/// stack's `dbNamespace` output for `preview-pr`. Never taken from the stack's
/// own state. `None` when there is none (no in-cluster server, no
/// configuration, or the base stack's outputs are missing).
pub fn database_server_namespace(
    kind: StackKind,
    config: Option<&config::StackConfig>,
    references: &References,
) -> Option<String> {
    match kind {
        StackKind::PreviewPr => stack::preview_base::BaseOutputs::from_references(references)
            .ok()
            .map(|base| base.db_namespace),
        StackKind::PreviewCluster => None,
        StackKind::Local | StackKind::PreviewBase | StackKind::Production => config
            .filter(|c| c.database.external.is_none())
            .map(|c| c.database.namespace.clone()),
    }
}

/// The stacks a request reads outputs from (the caller loads them from state).
pub fn references_of(kind: StackKind) -> &'static [&'static str] {
    match kind {
        StackKind::PreviewPr => &["preview-base"],
        _ => &[],
    }
}
