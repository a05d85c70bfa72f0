//! The per-PR logical database, as an engine resource of the PostgreSQL provider.
//!
//! This component only *describes* the database: a [`Resource`] with
//! [`ProviderKind::Postgres`], `apiVersion` [`API_VERSION`], kind `Database`, name =
//! the database name, no namespace, and the body
//!
//! ```yaml
//! owner: aphiria                 # role that owns the database
//! server:
//!   host: db.default.svc.cluster.local
//!   port: 5432
//! ownerMarker: preview-pr-123    # the stack; only databases carrying it are dropped
//! job:                           # optional: how the in-cluster executor runs its Jobs
//!   namespace: default           # the server's namespace
//!   image: postgres:16-alpine@sha256:…   # has sh and psql
//!   credentialsSecret: db-credentials    # POSTGRES_USER / POSTGRES_PASSWORD
//!   imagePullSecrets: []
//!   resources: {requests: …, limits: …}  # optional
//! ```
//!
//! Without `job` only the direct executor (`PREVIEW_POSTGRES_URL`) can manage it.
//!
//! The executors (in-cluster Job or direct SQL) create it idempotently, record the
//! marker (e.g. as a `COMMENT ON DATABASE`), and drop it only when the marker
//! matches. They quote identifiers; this component additionally restricts names to
//! `[a-z_][a-z0-9_]{0,62}` (lowercase, so no quoting surprises; at most 63 bytes,
//! PostgreSQL's `NAMEDATALEN - 1`) with [`check_identifier`].

use preview_core::postgres::job::JobSettings;
use preview_core::{ProviderKind, Resource, ResourceId, ResourceOptions};
use serde_json::json;
use std::collections::BTreeSet;

use crate::error::ComponentError;

/// `apiVersion` of the database resource.
pub const API_VERSION: &str = "postgres.preview-envs.io/v1";
/// `kind` of the database resource.
pub const KIND: &str = "Database";

/// A logical database on a PostgreSQL server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogicalDatabase {
    /// Database name, e.g. `aphiria_pr_123` (`[a-z_][a-z0-9_]{0,62}`).
    pub name: String,
    /// Owning role, e.g. `aphiria` (same rule as the name).
    pub owner: String,
    /// Server host (a cluster FQDN such as `db.default.svc.cluster.local`).
    pub host: String,
    /// Server port (default 5432).
    pub port: u16,
    /// Ownership marker: the name of the stack that owns the database.
    pub owner_marker: String,
    /// Where the in-cluster executor's Jobs run (default none).
    pub job: Option<JobSettings>,
}

impl LogicalDatabase {
    /// A database on `host:5432`.
    pub fn new(
        name: impl Into<String>,
        owner: impl Into<String>,
        host: impl Into<String>,
        owner_marker: impl Into<String>,
    ) -> Self {
        LogicalDatabase {
            name: name.into(),
            owner: owner.into(),
            host: host.into(),
            port: crate::postgres::PORT,
            owner_marker: owner_marker.into(),
            job: None,
        }
    }

    /// The resource id (`postgres Database <name>`).
    pub fn id(&self) -> ResourceId {
        ResourceId {
            provider: ProviderKind::Postgres,
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            namespace: None,
            name: self.name.clone(),
        }
    }

    /// Validates and renders the resource.
    pub fn build(&self) -> Result<Resource, ComponentError> {
        check_identifier("database name", &self.name)?;
        check_identifier("database owner", &self.owner)?;
        if self.host.trim().is_empty() {
            return Err(ComponentError::invalid(
                "database host",
                self.host.as_str(),
                "must not be empty",
            ));
        }
        if self.port == 0 {
            return Err(ComponentError::invalid(
                "database port",
                "0",
                "must be 1-65535",
            ));
        }
        if self.owner_marker.trim().is_empty() {
            return Err(ComponentError::invalid(
                "database owner marker",
                self.owner_marker.as_str(),
                "must name the owning stack",
            ));
        }
        let mut body = json!({
            "owner": self.owner,
            "server": {"host": self.host, "port": self.port},
            "ownerMarker": self.owner_marker,
        });
        if let Some(job) = &self.job {
            for (what, value) in [
                ("database job namespace", &job.namespace),
                ("database job image", &job.image),
                ("database job credentials secret", &job.credentials_secret),
            ] {
                if value.trim().is_empty() {
                    return Err(ComponentError::invalid(
                        what,
                        value.as_str(),
                        "must not be empty",
                    ));
                }
            }
            body["job"] = serde_json::to_value(job)
                .map_err(|e| ComponentError::invalid("database job", "", e.to_string()))?;
        }
        Ok(Resource {
            id: self.id(),
            body,
            depends_on: BTreeSet::new(),
            options: ResourceOptions::default(),
        })
    }
}

/// Checks a PostgreSQL identifier we create: `[a-z_][a-z0-9_]{0,62}`.
pub fn check_identifier(what: &'static str, name: &str) -> Result<(), ComponentError> {
    let reason = if name.is_empty() {
        Some("must not be empty".to_owned())
    } else if name.len() > 63 {
        Some(format!(
            "is {} characters long; at most 63 are allowed",
            name.len()
        ))
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        Some(format!(
            "contains {bad:?}; only lowercase letters, digits and '_' are allowed (pattern [a-z_][a-z0-9_]{{0,62}})"
        ))
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("must start with a lowercase letter or '_'".to_owned())
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ComponentError::invalid(what, name, reason)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> LogicalDatabase {
        LogicalDatabase::new(
            "aphiria_pr_123",
            "aphiria",
            "db.default.svc.cluster.local",
            "preview-pr-123",
        )
    }

    #[test]
    fn snapshot() {
        let r = db().build().expect("builds");
        insta::assert_yaml_snapshot!(r.body);
    }

    #[test]
    fn resource_identity() {
        let r = db().build().expect("builds");
        assert_eq!(r.id.provider, ProviderKind::Postgres);
        assert_eq!(r.id.api_version, "postgres.preview-envs.io/v1");
        assert_eq!(r.id.kind, "Database");
        assert_eq!(r.id.namespace, None);
        assert_eq!(r.id.name, "aphiria_pr_123");
        assert_eq!(r.id, db().id());
        assert_eq!(r.id.to_string(), "postgres Database aphiria_pr_123");
        assert_eq!(r.body["server"]["port"], 5432);
        assert_eq!(r.body["ownerMarker"], "preview-pr-123");
    }

    #[test]
    fn names_are_validated() {
        for good in ["aphiria_pr_1", "_x", "a", &"a".repeat(63)] {
            assert!(check_identifier("database name", good).is_ok(), "{good}");
        }
        let cases = [
            ("", "must not be empty"),
            ("Aphiria", "contains 'A'"),
            ("aphiria-pr-1", "contains '-'"),
            ("1db", "must start with"),
            ("db; DROP DATABASE x", "contains ';'"),
            ("ü", "contains 'ü'"),
        ];
        for (bad, expected) in cases {
            let err = check_identifier("database name", bad)
                .expect_err(bad)
                .to_string();
            assert!(err.contains(expected), "{bad}: {err}");
            assert!(err.starts_with("invalid database name"), "{err}");
        }
        let long = "a".repeat(64);
        let err = check_identifier("database name", &long)
            .expect_err("long")
            .to_string();
        assert!(err.contains("64 characters"), "{err}");
    }

    #[test]
    fn build_rejects_bad_parameters() {
        let mut bad = db();
        bad.name = "aphiria_pr_X".into();
        assert!(bad.build().is_err());
        let mut bad = db();
        bad.owner = "Owner".into();
        assert!(
            bad.build()
                .expect_err("owner")
                .to_string()
                .contains("database owner")
        );
        let mut bad = db();
        bad.owner_marker = String::new();
        assert!(bad.build().is_err());
        let mut bad = db();
        bad.port = 0;
        assert!(bad.build().is_err());
    }
}
