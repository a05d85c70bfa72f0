//! # digitalocean-fake
//!
//! A local HTTP server (hyper, `127.0.0.1:0`) implementing the DigitalOcean API
//! endpoints the engine uses, with in-memory state and failure injection:
//!
//! - `/v2/domains/{domain_name}/records` — list (filters `type` and `name`, the
//!   latter fully qualified; `page` / `per_page` pagination with `links.pages` and
//!   `meta.total`), create; `/records/{id}` — get, patch, put, delete. DigitalOcean's
//!   own checks beyond the schema are applied too (A data is an IPv4 address, TTL
//!   ≥ 30 s, names relative to the zone, the type never changes).
//! - `/v2/kubernetes/clusters` — list, create; `/clusters/{id}` — get, put (name,
//!   tags), delete; `/clusters/{id}/kubeconfig` — the kubeconfig as
//!   `application/yaml` once the cluster runs. A new cluster is `provisioning` for
//!   [`DigitalOceanFake::set_provision_polls`] GETs, then `running` with an
//!   endpoint; `latest` and minor versions resolve to [`LATEST_VERSION`].
//!
//! Every request needs `Authorization: Bearer <token>` with a token registered by
//! [`DigitalOceanFake::add_token`] (401 `unauthorized` otherwise), and every request
//! and response is checked against DigitalOcean's official OpenAPI description, read
//! at run time from `../shared/data/openapi/digitalocean-subset.json` (relative to
//! the workspace root) or from `$PREVIEW_DIGITALOCEAN_OPENAPI` — never copied into
//! this project — with the shared machinery of [`openapi_fake`]. A request that does
//! not match is answered 400 `bad_request`, a response of the fake itself that does
//! not match becomes a 500; both are recorded in [`DigitalOceanFake::violations`],
//! which tests assert to be empty. Errors use the description's `error` shape
//! (`{"id": "not_found", "message": …}`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), digitalocean_fake::FakeError> {
//! let fake = digitalocean_fake::DigitalOceanFake::start().await?;
//! fake.add_token("dop_v1_test");
//! fake.add_domain("example.com");
//! // point the client at fake.base_url() …
//! fake.assert_no_violations();
//! # Ok(()) }
//! ```

mod clusters;
mod model;
mod pages;
mod records;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use clusters::{LATEST_VERSION, REGIONS};
pub use model::{Cluster, Fault, NodePool, Record, RecordedRequest};
pub use openapi_fake::{Spec, SpecError};
pub use records::{DEFAULT_TTL, MIN_TTL};

use model::State;

/// Environment variable that overrides the location of the OpenAPI description.
pub const OPENAPI_ENV: &str = "PREVIEW_DIGITALOCEAN_OPENAPI";

/// Where the description lives: `$PREVIEW_DIGITALOCEAN_OPENAPI`, else
/// `<workspace>/../shared/data/openapi/digitalocean-subset.json`.
pub fn default_spec_path() -> PathBuf {
    if let Some(path) = std::env::var_os(OPENAPI_ENV) {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/openapi/digitalocean-subset.json")
}

/// Errors starting the fake.
pub type FakeError = openapi_fake::fake::StartError;

/// A running fake DigitalOcean API. Stops when dropped.
#[derive(Debug)]
pub struct DigitalOceanFake {
    fake: openapi_fake::fake::Fake<State>,
}

impl DigitalOceanFake {
    /// Starts a fake with the default description location (see [`default_spec_path`]).
    pub async fn start() -> Result<Self, FakeError> {
        Self::start_with_spec(&default_spec_path()).await
    }

    /// Starts a fake validating against the description at `spec_path`.
    pub async fn start_with_spec(spec_path: &Path) -> Result<Self, FakeError> {
        let spec = Spec::load(spec_path).map_err(|source| FakeError::Spec {
            api: "DigitalOcean",
            env: OPENAPI_ENV,
            source,
        })?;
        let fake = openapi_fake::fake::Fake::start(
            spec,
            "digitalocean-fake",
            |shared, request| async move { server::respond(&shared, request).await },
        )
        .await?;
        Ok(Self { fake })
    }

    /// `http://127.0.0.1:PORT` — the API base URL (in place of
    /// `https://api.digitalocean.com`).
    pub fn base_url(&self) -> String {
        self.fake.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.fake.addr()
    }

    /// Accepts `token` as a valid API token.
    pub fn add_token(&self, token: &str) {
        self.fake.lock().tokens.push(token.to_owned());
    }

    /// Creates a domain (zone) with no records; other domains answer 404.
    pub fn add_domain(&self, name: &str) {
        self.fake.lock().domains.entry(name.to_owned()).or_default();
    }

    /// Creates a record directly (scenario set-up); returns its id.
    pub fn seed_record(
        &self,
        domain: &str,
        record_type: &str,
        name: &str,
        data: &str,
        ttl: i64,
    ) -> u64 {
        let mut state = self.fake.lock();
        let id = state.next_id();
        state
            .domains
            .entry(domain.to_owned())
            .or_default()
            .push(Record::new(id, record_type, name, data, ttl));
        id
    }

    /// Changes a record directly (drift set-up); false when there is no such record.
    pub fn set_record_data(&self, domain: &str, id: u64, data: &str) -> bool {
        let mut state = self.fake.lock();
        match state
            .domains
            .get_mut(domain)
            .and_then(|records| records.iter_mut().find(|r| r.id == id))
        {
            Some(record) => {
                record.data = data.to_owned();
                true
            }
            None => false,
        }
    }

    /// Deletes a record directly (drift set-up).
    pub fn remove_record(&self, domain: &str, id: u64) {
        if let Some(records) = self.fake.lock().domains.get_mut(domain) {
            records.retain(|r| r.id != id);
        }
    }

    /// The records of `domain`, in creation order.
    pub fn records(&self, domain: &str) -> Vec<Record> {
        self.fake
            .lock()
            .domains
            .get(domain)
            .cloned()
            .unwrap_or_default()
    }

    /// The clusters, in creation order.
    pub fn clusters(&self) -> Vec<Cluster> {
        self.fake.lock().clusters.clone()
    }

    /// How many GETs a new cluster answers `provisioning` before it is `running`
    /// (default 2).
    pub fn set_provision_polls(&self, polls: u32) {
        self.fake.lock().provision_polls = polls;
    }

    /// Sets a cluster's state directly (e.g. `error`, `degraded`).
    pub fn set_cluster_state(&self, id: &str, state: &str) {
        if let Some(cluster) = self.fake.lock().clusters.iter_mut().find(|c| c.id == id) {
            cluster.state = state.to_owned();
        }
    }

    /// Queues a failure for the next matching request(s) (after authentication and
    /// request validation, like the real API's server-side failures).
    pub fn inject(&self, fault: Fault) {
        self.fake.lock().faults.push_back(fault);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.fake.lock().requests.clone()
    }

    /// How many requests changed (or tried to change) something: POST, PUT, PATCH,
    /// DELETE.
    pub fn writes(&self) -> usize {
        self.fake
            .lock()
            .requests
            .iter()
            .filter(|r| r.is_write())
            .count()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.fake.lock().requests.clear();
    }

    /// Every schema / contract violation seen, one line each. Must be empty in tests.
    pub fn violations(&self) -> Vec<String> {
        self.fake.lock().violations.clone()
    }

    /// Panics with every violation listed when there is any. Call at the end of a test.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "digitalocean-fake recorded {} OpenAPI/contract violation(s):\n{}",
            violations.len(),
            violations.join("\n")
        );
    }

    /// Problems found validating `value` against the schema at `schema_pointer` of
    /// the loaded description (for extra checks in tests).
    pub fn validate_against(&self, schema_pointer: &str, value: &serde_json::Value) -> Vec<String> {
        self.fake.spec().validate_at(schema_pointer, value)
    }
}
