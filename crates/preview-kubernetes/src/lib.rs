//! The Kubernetes provider.
//!
//! - [`kinds`] maps `apiVersion`/`kind` to REST paths (a built-in table, then
//!   one discovery request per unknown group-version, cached);
//! - [`reader`] does GETs, lists and server-side dry-run applies;
//! - [`writer`] is the ONLY code that changes the cluster: server-side apply with
//!   the [`FIELD_MANAGER`], delete, and explicit namespace finalisation;
//! - [`waiter`] watches objects until [`crate::readiness`] says they are ready or gone;
//! - [`digest`] explains a failed step: reads (never writes) its object's
//!   events, container states and `pods/log`, redacted and capped;
//! - [`counting`] counts requests by verb, so tests and benchmarks can prove that a
//!   no-op `up` writes nothing;
//! - [`version`] is the supported Kubernetes range; [`KubeProvider::connect`]
//!   reads the server's `/version` first and refuses an older server before any
//!   other request.

// Errors carry the full ResourceId they are about (see preview-core).
#![allow(clippy::result_large_err)]

pub mod connection;
pub mod counting;
pub mod digest;
pub mod errors;
pub mod kinds;
pub mod reader;
pub mod version;
pub mod waiter;
pub mod writer;

pub mod readiness;
pub mod state;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use preview_core::events::EventSink;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::resource::{Resource, ResourceId};

pub use counting::RequestCounts;

/// The one field manager every apply uses.
pub const FIELD_MANAGER: &str = "preview-envs";

/// Errors connecting to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig {
        /// Path (or "default" for the inferred one).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The server's `/version` could not be read.
    #[error("reading the version of the API server at {server}: {message}")]
    Version {
        /// The server URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The server runs a Kubernetes release outside the supported range.
    #[error("the API server at {server}: {source}")]
    Unsupported {
        /// The server URL.
        server: String,
        /// The versions involved.
        #[source]
        source: version::UnsupportedVersion,
    },
}

/// A connection to one cluster.
#[derive(Clone)]
pub struct KubeProvider {
    client: kube::Client,
    server: String,
    kinds: Arc<kinds::KindCache>,
    counts: RequestCounts,
}

impl KubeProvider {
    /// Connects using a kubeconfig file (and optional context), or the default
    /// (`$KUBECONFIG`, `~/.kube/config`, in-cluster) when `path` is `None`, then
    /// checks the server's version ([`KubeProvider::check_version`]).
    pub async fn connect(path: Option<&Path>, context: Option<&str>) -> Result<Self, ConnectError> {
        let fail = |message: String| ConnectError::Kubeconfig {
            path: path.map_or_else(|| "default".to_owned(), |p| p.display().to_string()),
            message,
        };
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = match path {
            Some(p) => {
                let kc = kube::config::Kubeconfig::read_from(p).map_err(|e| fail(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
            None if context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| fail(e.to_string()))?,
            None => kube::Config::infer()
                .await
                .map_err(|e| fail(e.to_string()))?,
        };
        let provider = Self::from_config(config).map_err(fail)?;
        provider.check_version().await?;
        Ok(provider)
    }

    /// Reads `/version` (the first request of a connection, one GET) and
    /// refuses a server older than [`version::OLDEST_SUPPORTED_MINOR`]; a newer
    /// one than [`version::NEWEST_TESTED_MINOR`] is logged as a warning.
    pub async fn check_version(&self) -> Result<(), ConnectError> {
        let server = self.server.clone();
        let info = self
            .client
            .apiserver_version()
            .await
            .map_err(|e| ConnectError::Version {
                server: server.clone(),
                message: e.to_string(),
            })?;
        match version::check(&info) {
            Ok(version::Support::Supported) => Ok(()),
            Ok(version::Support::Untested { version }) => {
                tracing::warn!(%server, %version, "Kubernetes {version} is newer than the newest tested release (1.{})", version::NEWEST_TESTED_MINOR);
                Ok(())
            }
            Err(source) => Err(ConnectError::Unsupported { server, source }),
        }
    }

    /// Builds a provider from a kube config, adding the request-counting layer.
    pub fn from_config(config: kube::Config) -> Result<Self, String> {
        let counts = RequestCounts::default();
        let server = config.cluster_url.to_string();
        let client = if config.proxy_url.is_some() {
            // kube's own stack knows proxies; ours (no-delay sockets) does not.
            kube::client::ClientBuilder::try_from(config)
                .map_err(|e| e.to_string())?
                .with_layer(&counts.layer())
                .build()
        } else {
            connection::client(config, &counts)?
        };
        Ok(KubeProvider {
            client,
            server,
            kinds: Arc::new(kinds::KindCache::default()),
            counts,
        })
    }

    /// The underlying client (requests through it are counted too).
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Requests sent so far, by verb.
    pub fn counts(&self) -> &RequestCounts {
        &self.counts
    }
}

#[async_trait]
impl Provider for KubeProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        reader::get(self, id).await
    }

    async fn dry_run(&self, resource: &Resource, force: bool) -> Result<DryRun, ProviderError> {
        reader::dry_run_apply(self, resource, force).await
    }

    fn create_prerequisite(&self, id: &ResourceId) -> Option<Option<ResourceId>> {
        Some(
            id.namespace
                .as_deref()
                .map(|ns| ResourceId::kubernetes("v1", "Namespace", None, ns)),
        )
    }

    async fn apply(&self, resource: &Resource, force: bool) -> Result<Value, ProviderError> {
        writer::apply(self, resource, force).await
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        writer::delete(self, id, None).await
    }

    async fn delete_checked(
        &self,
        id: &ResourceId,
        uid: Option<&str>,
    ) -> Result<(), ProviderError> {
        writer::delete(self, id, uid).await
    }

    async fn wait_ready(
        &self,
        resource: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        waiter::wait_ready(self, resource, opts, events).await
    }

    async fn wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<(), ProviderError> {
        waiter::wait_gone(self, id, opts, events).await
    }

    async fn list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        reader::list_owned(self, stack, kinds).await
    }
}
