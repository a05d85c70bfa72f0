//! The PostgreSQL `Database` resource as plain data (no IO): the body that
//! `components::LogicalDatabase` builds and both database executors read.
//!
//! Identity: provider `postgres`, `apiVersion` [`API_VERSION`], kind [`KIND`],
//! name = the database name, no namespace. Body ([`DatabaseBody`]):
//!
//! ```yaml
//! owner: aphiria_pr_123          # owning role (the database's own role with `role`)
//! server: {host: db.db-server.svc.cluster.local, port: 5432}   # as pods reach it
//! ownerMarker: preview-pr-123    # the owning stack
//! job:                           # optional: how the in-cluster executor runs its Jobs
//!   namespace: db-server
//!   image: postgres:16-alpine@sha256:…
//!   credentialsSecret: db-credentials
//! role:                          # optional: the per-PR login role (see database_role)
//!   connectionLimit: 20
//!   passwordVerifier: SCRAM-SHA-256$4096:…
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::database_role::RoleSpec;

/// `apiVersion` of the database resource.
pub const API_VERSION: &str = "postgres.preview-envs.io/v1";
/// `kind` of the database resource.
pub const KIND: &str = "Database";

/// The body of a `Database` resource (field order = the body's key order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseBody {
    /// Owning role (the database's own role when [`DatabaseBody::role`] is set).
    pub owner: String,
    /// The server as pods reach it.
    pub server: ServerAddress,
    /// The owning stack: only databases carrying it are altered or dropped.
    pub owner_marker: String,
    /// How the in-cluster executor runs its Jobs (without it only the direct
    /// executor can manage the database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobSettings>,
    /// The per-PR login role named like the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleSpec>,
}

/// Where pods reach the database server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAddress {
    /// Host name (a cluster FQDN).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl DatabaseBody {
    /// The body as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Parses a body; the error names the field (`field server.port: …`).
    pub fn from_value(body: &Value) -> Result<DatabaseBody, String> {
        serde_json::from_value(body.clone()).map_err(|e| format!("Database body: {e}"))
    }
}

/// Where and how database Jobs run (the `job` section of a `Database` body).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSettings {
    /// Namespace of the database server (the Jobs run there).
    pub namespace: String,
    /// Image with `sh` and `psql` ≥ 13 (the server's own image).
    pub image: String,
    /// Secret with `POSTGRES_USER` and `POSTGRES_PASSWORD` (a superuser).
    pub credentials_secret: String,
    /// `imagePullSecrets` for the image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,
    /// Container `resources` (requests/limits), when the namespace needs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
}
