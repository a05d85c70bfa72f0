//! The DigitalOcean provider: DNS records (`dns.digitalocean.com/v1`, kind
//! `DomainRecord`) and Kubernetes clusters (`kubernetes.digitalocean.com/v1`, kind
//! `KubernetesCluster`, see [`cluster`]) managed over the DigitalOcean API
//! ([`client`]), mapped into the planner's model like every other provider
//! ([`record`] has the records' identity, body and marker formats).
//!
//! Clusters are identified by name and owned through the tag
//! `preview-envs-stack:<stack>`; `apply` creates one and `wait_ready` polls until it
//! is `running` (reporting the state as progress, failing on `error`); region,
//! version and node pools are never changed in place (the plan shows a
//! replacement, which `protect` refuses); [`DigitalOceanProvider::cluster_kubeconfig`]
//! fetches the kubeconfig of a running cluster as a [`SecretString`]. A DOKS
//! cluster takes minutes to provision or delete, so both waits last at least
//! [`MIN_CLUSTER_WAIT`] whatever the run's timeout. After an `up`, the
//! cluster's outputs ([`cluster::outputs`]: id, endpoint, context, and the
//! kubeconfig as a secret the engine seals) come from [`Provider::outputs`]
//! (`doks_outputs.rs`), fetched again only when the recorded kubeconfig is for
//! another cluster or has less than half of its lifetime left.
//!
//! # Ownership of records
//!
//! DigitalOcean records have no labels or comments. A record is identified by
//! (zone, type, name), and the engine manages exactly one record per type and name
//! (several A records with one name — round robin — are reported, never guessed
//! at). Ownership is recorded in DNS itself, the way external-dns' TXT registry
//! does it: for every managed record the provider keeps a TXT record named
//! [`record::OWNER_RECORD_NAME`] (`_preview-envs.<zone>`) whose data names the
//! stack and the record ([`record::marker_text`]). [`Provider::read`] reports that
//! stack as the `preview-envs.io/stack` label of the live value, so the planner's
//! rules apply unchanged:
//!
//! - an existing record that is not in the stack's state is refused ("… already
//!   exists and is not managed by stack S; adopt it with `import`"), whether it has
//!   no marker (created by hand) or another stack's;
//! - `import` (apply with `force`) writes this stack's marker and then manages it;
//! - a crash between the API call and the state write is resumed: the marker is
//!   written *before* the record is created, so a record that exists carries the
//!   marker of the interrupted stack (a marker left without its record by a crash
//!   is reused by the next create, or removed by the record's delete);
//! - delete refuses a record without a marker, and removes the marker with the
//!   record; destroy's residue check lists the records whose marker names the stack.
//!
//! The DigitalOcean record id is reported as `metadata.uid`, so a record deleted and
//! recreated by hand is not deleted by the engine.
//!
//! # Data from a cluster object
//!
//! A record's `data` is either literal or read from a string field of a
//! Kubernetes object (`dataFrom`, e.g. the Gateway's `/status/addresses/0/value`).
//! The provider only declares the reference ([`Provider::values_from`]); the
//! engine reads the value ([`preview_core::values`]) and hands dry-run and apply
//! the record with `data` set, so the provider needs no cluster connection. The
//! record's resource depends on the object: a plan that creates or changes the
//! object shows `data: (known after apply)`, and apply reads the value from the
//! object once it is ready. A changed address (a recreated load balancer) is a
//! changed desired body, so the plan shows `data: old => new`.
//!
//! The API token is a [`SecretString`]: never printed, never in an error, never in
//! state (state records hashes of bodies, and bodies never contain it).

// Errors carry the full ResourceId they are about (see preview-core).
#![allow(clippy::result_large_err)]

pub mod client;
pub mod cluster;
mod clusters_api;
mod dns;
mod doks;
mod doks_outputs;

pub use preview_core::schema::dns_record as record;

use std::collections::BTreeMap;
use std::time::Duration;

use preview_core::values::ValueFrom;

use preview_core::provider::ComputedOutput;
use preview_core::state::Output;

use async_trait::async_trait;
use serde_json::Value;

pub use client::{DEFAULT_API_URL, DoClient, DoError, DomainRecord, RecordFields, RetryPolicy};
pub use cluster::{DesiredCluster, NodePoolSpec};
pub use clusters_api::{ClusterNodePool, ClusterStatus, KubernetesCluster, NewCluster};
pub use record::{DataFrom, DesiredRecord, RecordData, RecordKey};

use preview_core::events::EventSink;
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::resource::{ProviderName, Resource, ResourceId};
use preview_core::secret::SecretString;

/// How often a cluster's state is polled while it provisions or is deleted.
pub const DEFAULT_CLUSTER_POLL: Duration = Duration::from_secs(10);
/// The shortest wait for a cluster to run or to be gone: provisioning a DOKS
/// cluster takes minutes.
pub const MIN_CLUSTER_WAIT: Duration = Duration::from_secs(20 * 60);
/// Lifetime of the kubeconfigs the provider fetches, unless set
/// ([`DigitalOceanProvider::with_kubeconfig_expiry`]): DigitalOcean's default.
pub const DEFAULT_KUBECONFIG_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Manages DigitalOcean DNS records and Kubernetes clusters.
pub struct DigitalOceanProvider {
    client: DoClient,
    cluster_poll: Duration,
    kubeconfig_expiry: Duration,
}

fn other(id: &ResourceId, message: String) -> ProviderError {
    ProviderError::Other {
        id: id.clone(),
        message,
    }
}

fn api_error(id: &ResourceId, verb: &'static str, error: DoError) -> ProviderError {
    match error {
        DoError::Api {
            status,
            id: code,
            message,
            request,
        } => ProviderError::Api {
            id: id.clone(),
            verb,
            code: status,
            message: format!("{request}: {code}: {message}"),
        },
        other_error => ProviderError::failed(id, "", other_error),
    }
}

impl DigitalOceanProvider {
    /// A provider using `client` (base URL and token).
    pub fn new(client: DoClient) -> Self {
        DigitalOceanProvider {
            client,
            cluster_poll: DEFAULT_CLUSTER_POLL,
            kubeconfig_expiry: DEFAULT_KUBECONFIG_EXPIRY,
        }
    }

    /// Fetches kubeconfigs valid for `expiry` (default
    /// [`DEFAULT_KUBECONFIG_EXPIRY`]); a recorded one is fetched again once less
    /// than half of it is left.
    pub fn with_kubeconfig_expiry(mut self, expiry: Duration) -> Self {
        self.kubeconfig_expiry = expiry;
        self
    }

    /// Polls cluster state every `interval` (default [`DEFAULT_CLUSTER_POLL`]).
    pub fn with_cluster_poll(mut self, interval: Duration) -> Self {
        self.cluster_poll = interval;
        self
    }

    /// A provider for `api_url` with `token` and the default retries.
    pub fn connect(api_url: &str, token: SecretString) -> Result<Self, DoError> {
        Ok(Self::new(DoClient::new(api_url, token)?))
    }
}

#[async_trait]
impl Provider for DigitalOceanProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        match Kind::of(id)? {
            Kind::Record => self.record_read(id).await,
            Kind::Cluster => self.cluster_read(id).await,
        }
    }

    fn values_from(&self, res: &Resource) -> Result<Vec<ValueFrom>, ProviderError> {
        match Kind::of(&res.id)? {
            Kind::Record => Self::record_values_from(res),
            Kind::Cluster => Ok(Vec::new()),
        }
    }

    async fn dry_run(&self, res: &Resource, force: bool) -> Result<DryRun, ProviderError> {
        match Kind::of(&res.id)? {
            Kind::Record => self.record_dry_run(res, force).await,
            Kind::Cluster => self.cluster_dry_run(res, force).await,
        }
    }

    async fn apply(&self, res: &Resource, force: bool) -> Result<Value, ProviderError> {
        match Kind::of(&res.id)? {
            Kind::Record => self.record_apply(res, force).await,
            Kind::Cluster => self.cluster_apply(res, force).await,
        }
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        match Kind::of(id)? {
            Kind::Record => self.record_delete(id).await,
            Kind::Cluster => self.cluster_delete(id).await,
        }
    }

    async fn wait_ready(
        &self,
        res: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        match Kind::of(&res.id)? {
            Kind::Record => self.record_wait_ready(res, opts, events).await,
            Kind::Cluster => self.cluster_wait_ready(res, opts, events).await,
        }
    }

    async fn wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<(), ProviderError> {
        match Kind::of(id)? {
            Kind::Record => self.record_wait_gone(id, opts, events).await,
            Kind::Cluster => self.cluster_wait_gone(id, opts, events).await,
        }
    }

    async fn outputs(
        &self,
        res: &Resource,
        live: &Value,
        recorded: &BTreeMap<String, Output>,
        events: &EventSink,
    ) -> Result<BTreeMap<String, ComputedOutput>, ProviderError> {
        match Kind::of(&res.id)? {
            Kind::Record => Ok(BTreeMap::new()),
            Kind::Cluster => self.cluster_outputs(res, live, recorded, events).await,
        }
    }

    fn secret_outputs(&self, res: &Resource) -> bool {
        matches!(Kind::of(&res.id), Ok(Kind::Cluster))
    }

    async fn list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        let records: Vec<ResourceId> = kinds
            .iter()
            .filter(|id| matches!(Kind::of(id), Ok(Kind::Record)))
            .cloned()
            .collect();
        let mut owned = Vec::new();
        if !records.is_empty() {
            owned.extend(self.record_list_owned(stack, &records).await?);
        }
        if let Some(probe) = kinds
            .iter()
            .find(|id| matches!(Kind::of(id), Ok(Kind::Cluster)))
        {
            owned.extend(self.cluster_list_owned(stack, probe).await?);
        }
        Ok(owned)
    }
}

/// The kinds this provider manages.
enum Kind {
    Record,
    Cluster,
}

impl Kind {
    fn of(id: &ResourceId) -> Result<Kind, ProviderError> {
        let ours = id.provider == ProviderName::DIGITALOCEAN;
        match (ours, id.api_version.as_str(), id.kind.as_str()) {
            (true, record::API_VERSION, record::KIND) => Ok(Kind::Record),
            (true, cluster::API_VERSION, cluster::KIND) => Ok(Kind::Cluster),
            _ => Err(other(
                id,
                format!(
                    "the DigitalOcean provider manages {} {} and {} {}, not {} {}",
                    record::API_VERSION,
                    record::KIND,
                    cluster::API_VERSION,
                    cluster::KIND,
                    id.api_version,
                    id.kind
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
