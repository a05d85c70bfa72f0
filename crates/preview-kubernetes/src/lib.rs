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

/// Includes a file from `tests/fixtures/readiness/` as a string (tests only;
/// defined before the modules so `readiness` and `digest` share it).
#[cfg(test)]
macro_rules! include_fixture {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/readiness/",
            $file
        ))
    };
}

pub mod connection;
pub mod counting;
pub mod digest;
pub mod errors;
pub mod kinds;
pub mod kubeconfig;
pub mod reader;
pub mod retry;
#[cfg(test)]
mod test_support;
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
use preview_core::remedy::{self, Remedy};
use preview_core::resource::{Resource, ResourceId};

pub use counting::RequestCounts;

/// The one field manager every apply uses.
pub const FIELD_MANAGER: &str = "preview-envs";

/// How often a `/version` read that got no answer at all is tried again.
const VERSION_RETRIES: usize = 3;

/// Errors connecting to a cluster. Each names where the kubeconfig came from
/// ([`kubeconfig::KubeconfigSource`]), the context and, once known, the server.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig {source_name}{}: {message}", context_clause(.context.as_deref()))]
    Kubeconfig {
        /// Where it was read from (file, `KUBECONFIG=…` list, default file, in-cluster).
        source_name: String,
        /// The context asked for or the kubeconfig's current one, if any.
        context: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// The server's `/version` could not be read.
    #[error("connecting to the API server at {server}{via}: {message}")]
    Version {
        /// The server URL.
        server: String,
        /// ` (context C, kubeconfig K)` when connected through a kubeconfig, else empty.
        via: String,
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

/// An error and its causes on one line (`a: b: c`), repeats left out: kube's
/// own message for a refused connection does not say why.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn context_clause(context: Option<&str>) -> String {
    context.map_or_else(String::new, |c| format!(" (context {c})"))
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
    /// Connects as kubectl would ([`kubeconfig::KubeconfigSource::from_process`]):
    /// the kubeconfig file `path`, else the files listed in `$KUBECONFIG`
    /// (merged), else `~/.kube/config`, else in-cluster; with `context`, else the
    /// kubeconfig's current one. Then checks the server's version
    /// ([`KubeProvider::check_version`]); a failure names the server, the
    /// context and where the kubeconfig came from.
    pub async fn connect(path: Option<&Path>, context: Option<&str>) -> Result<Self, ConnectError> {
        Self::connect_to(&kubeconfig::KubeconfigSource::from_process(path), context).await
    }

    /// [`KubeProvider::connect`] with the kubeconfig from `source`.
    pub async fn connect_to(
        source: &kubeconfig::KubeconfigSource,
        context: Option<&str>,
    ) -> Result<Self, ConnectError> {
        let fail = |context: Option<&str>, message: String| ConnectError::Kubeconfig {
            source_name: source.to_string(),
            context: context.map(str::to_owned),
            message,
        };
        let (config, context) = match source.load(context).map_err(|m| fail(context, m))? {
            Some(loaded) => {
                let used = loaded.context.clone();
                let options = loaded.options();
                let config = kube::Config::from_custom_kubeconfig(loaded.kubeconfig, &options)
                    .await
                    .map_err(|e| fail(used.as_deref(), e.to_string()))?;
                (config, used.unwrap_or_else(|| "(none)".to_owned()))
            }
            None if context.is_some() => {
                return Err(fail(
                    context,
                    format!(
                        "no kubeconfig found to take the context from{}",
                        remedy::in_parentheses(&Remedy::Kubeconfig)
                    ),
                ));
            }
            None => (
                kube::Config::incluster().map_err(|e| {
                    fail(
                        None,
                        format!(
                            "{e} (no kubeconfig either{})",
                            remedy::suffix(": ", &Remedy::Kubeconfig)
                        ),
                    )
                })?,
                "(in-cluster)".to_owned(),
            ),
        };
        let provider = Self::from_config(config).map_err(|m| fail(Some(&context), m))?;
        provider.check_version().await.map_err(|e| match e {
            ConnectError::Version {
                server, message, ..
            } => ConnectError::Version {
                server,
                via: format!(" (context {context}, kubeconfig {source})"),
                message,
            },
            other => other,
        })?;
        Ok(provider)
    }

    /// Reads `/version` (the first request of a connection, one GET) and
    /// refuses a server older than [`version::OLDEST_SUPPORTED_MINOR`]; a newer
    /// one than [`version::NEWEST_TESTED_MINOR`] is logged as a warning.
    pub async fn check_version(&self) -> Result<(), ConnectError> {
        let server = self.server.clone();
        // A connection that fails before any answer (hundreds of runs dialling
        // one API server at once) is tried again: the GET is a read.
        let mut delays = preview_core::retry::Backoff {
            first: std::time::Duration::from_millis(150),
            max: std::time::Duration::from_secs(1),
        }
        .delays()
        .take(VERSION_RETRIES);
        let info = loop {
            match self.client.apiserver_version().await {
                Ok(info) => break info,
                Err(e) if matches!(e, kube::Error::Service(_) | kube::Error::HyperError(_)) => {
                    match delays.next() {
                        Some(wait) => {
                            tracing::warn!(%server, error = %e, "reading /version failed before an answer; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        None => {
                            return Err(ConnectError::Version {
                                server: server.clone(),
                                via: String::new(),
                                message: error_chain(&e),
                            });
                        }
                    }
                }
                Err(e) => {
                    return Err(ConnectError::Version {
                        server: server.clone(),
                        via: String::new(),
                        message: error_chain(&e),
                    });
                }
            }
        };
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

    async fn release_finalizers(
        &self,
        stack: &str,
        id: &ResourceId,
    ) -> Result<Vec<String>, ProviderError> {
        writer::release_finalizers(self, id, Some(stack)).await
    }
}
