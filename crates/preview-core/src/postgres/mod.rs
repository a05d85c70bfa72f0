//! The PostgreSQL provider: per-PR logical databases (`postgres.preview-envs.io/v1`,
//! kind `Database`), with two executors of the same contract:
//!
//! - [`PostgresProvider`] (this module), **direct**: SQL over a tokio-postgres
//!   connection, when the engine can reach the server (local clusters, managed
//!   databases, tests; `PREVIEW_POSTGRES_URL`);
//! - [`in_cluster::InClusterProvider`], **in-cluster**: the same steps as
//!   Kubernetes Jobs in the server's namespace ([`job`]), for remote clusters
//!   whose database the CI runner cannot reach (the spec's NFR-017).
//!
//! The rest of this page describes the contract and the direct executor.
//!
//! Crash safety: `CREATE DATABASE` cannot run in a transaction, so it and its
//! COMMENT cannot be one atomic step. The database is therefore created under a
//! reserved temporary name ([`sql::temp_name`]), marked, and then renamed — the
//! rename is atomic, so the real name never exists without the marker. A leftover
//! temporary database from an interrupted run is dropped before the next create.
//!
//! Ownership: a database the engine creates carries a COMMENT naming the stack
//! ([`sql::marker_comment`]). Create refuses a database that exists without our
//! marker (no silent adoption); drop happens only when the marker names this
//! stack, with `DROP DATABASE … WITH (FORCE)` outside a transaction, idempotently,
//! and destroy verifies the database is gone from `pg_database`.
//!
//! The live representation returned by [`Provider::read`] is
//! `{"metadata": {"labels": {STACK_LABEL: marker}}, "owner": …, "ownerMarker": …}`:
//! the parts of the desired body that can be observed (the `server` address is how
//! pods reach it, not how the engine does), plus the owning stack in the same place
//! a Kubernetes object carries it, so the planner's ownership rules (crash resume,
//! adoption refusal) work the same for databases.

pub mod in_cluster;
pub mod job;
pub mod sql;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::events::{Event, EventSink};
use crate::observe::DryRun;
use crate::provider::{Provider, ProviderError, WaitOptions};
use crate::resource::{ProviderKind, Resource, ResourceId, STACK_LABEL};
use crate::secret::SecretString;

/// Runs database operations over a direct connection to the server.
pub struct PostgresProvider {
    /// A libpq-style connection string or `postgres://` URL (password may be in it).
    conninfo: SecretString,
    client: std::sync::Arc<Mutex<Option<tokio_postgres::Client>>>,
}

impl PostgresProvider {
    /// A provider connecting with `conninfo` (kept secret: never printed).
    pub fn new(conninfo: SecretString) -> Self {
        PostgresProvider {
            conninfo,
            client: std::sync::Arc::new(Mutex::new(None)),
        }
    }

    /// Starts connecting in the background, so the server's backend start-up
    /// (tens of milliseconds) overlaps with the rest of the run's preparation.
    /// A failure here is silent: the first real use connects again and reports it.
    pub fn warm_up(&self) {
        let slot = self.client.clone();
        let conninfo = self.conninfo.clone();
        tokio::spawn(async move {
            let mut guard = slot.lock().await;
            if guard.is_some() {
                return;
            }
            if let Ok((client, connection)) =
                tokio_postgres::connect(conninfo.expose(), tokio_postgres::NoTls).await
            {
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                *guard = Some(client);
            }
        });
    }

    async fn with_client<T>(
        &self,
        id: &ResourceId,
        f: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, ProviderError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, connection) =
                tokio_postgres::connect(self.conninfo.expose(), tokio_postgres::NoTls)
                    .await
                    .map_err(|e| {
                        other(id, format!("cannot connect to PostgreSQL: {}", redact(&e)))
                    })?;
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::warn!(error = %redact(&e), "PostgreSQL connection closed");
                }
            });
            *guard = Some(client);
        }
        let client = guard
            .as_ref()
            .ok_or_else(|| other(id, "no PostgreSQL connection".into()))?;
        f(client)
            .await
            .map_err(|e| other(id, format!("PostgreSQL: {}", redact(&e))))
    }
}

impl PostgresProvider {
    /// CREATE under the temporary name, COMMENT, RENAME (see the module docs).
    /// Retries when an interrupted run's CREATE of the temporary name is still
    /// finishing on the server.
    async fn create_marked(
        &self,
        id: &ResourceId,
        db: &str,
        role: &str,
        comment: &str,
    ) -> Result<(), ProviderError> {
        let tmp = sql::quote_ident(&sql::temp_name(&id.name));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (tmp, db, role, comment) = (
                tmp.clone(),
                db.to_owned(),
                role.to_owned(),
                comment.to_owned(),
            );
            let result = self
                .with_client(id, async move |c| {
                    c.batch_execute(&format!("DROP DATABASE IF EXISTS {tmp} WITH (FORCE)"))
                        .await?;
                    c.batch_execute(&format!("CREATE DATABASE {tmp} OWNER {role}"))
                        .await?;
                    c.batch_execute(&format!("COMMENT ON DATABASE {tmp} IS {comment}"))
                        .await?;
                    c.batch_execute(&format!("ALTER DATABASE {tmp} RENAME TO {db}"))
                        .await
                })
                .await;
            match result {
                // 42P04 duplicate_database, or 23505 when the other CREATE was still
                // in progress when ours checked: drop the leftover and try again.
                Err(e)
                    if attempt < 5
                        && (e.to_string().contains("42P04") || e.to_string().contains("23505")) =>
                {
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// A tokio-postgres error without anything from the connection string.
fn redact(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The observable state of a database (see the module docs).
fn live_value(owner: &str, marker: &str) -> Value {
    let labels = if marker.is_empty() {
        json!({})
    } else {
        json!({ STACK_LABEL: marker })
    };
    json!({"metadata": {"labels": labels}, "owner": owner, "ownerMarker": marker})
}

fn other(id: &ResourceId, message: String) -> ProviderError {
    ProviderError::Other {
        id: id.clone(),
        message,
    }
}

fn check_database_id(id: &ResourceId) -> Result<(), ProviderError> {
    if id.provider != ProviderKind::Postgres || id.kind != "Database" {
        return Err(other(
            id,
            format!("the PostgreSQL provider does not manage {}", id.kind),
        ));
    }
    sql::check_identifier("database name", &id.name).map_err(|m| other(id, m))
}

/// The desired owner and marker from a `Database` body.
fn desired(res: &Resource) -> Result<(String, String), ProviderError> {
    let get = |key: &str| {
        res.body
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| other(&res.id, format!("missing field {key}")))
    };
    let owner = get("owner")?;
    sql::check_identifier("database owner", &owner).map_err(|m| other(&res.id, m))?;
    Ok((owner, get("ownerMarker")?))
}

#[async_trait]
impl Provider for PostgresProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        check_database_id(id)?;
        let name = id.name.clone();
        let row = self
            .with_client(id, async move |c| {
                c.query_opt(
                    "SELECT pg_catalog.pg_get_userbyid(d.datdba), \
                     COALESCE(pg_catalog.shobj_description(d.oid, 'pg_database'), '') \
                     FROM pg_catalog.pg_database d WHERE d.datname = $1",
                    &[&name],
                )
                .await
            })
            .await?;
        Ok(row.map(|r| {
            let owner: String = r.get(0);
            let comment: String = r.get(1);
            live_value(&owner, sql::marker_stack(&comment).unwrap_or(""))
        }))
    }

    async fn dry_run(&self, res: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        let (owner, marker) = desired(res)?;
        match self.read(&res.id).await? {
            Some(live) if live["ownerMarker"] != json!(marker) => Ok(DryRun::Rejected {
                code: 409,
                message: format!(
                    "database {} exists and is not marked as owned by stack {marker}",
                    res.id.name
                ),
            }),
            _ => Ok(DryRun::Accepted {
                object: live_value(&owner, &marker),
            }),
        }
    }

    async fn apply(&self, res: &Resource, _force: bool) -> Result<Value, ProviderError> {
        check_database_id(&res.id)?;
        let (owner, marker) = desired(res)?;
        let live = self.read(&res.id).await?;
        if let Some(live) = &live
            && live["ownerMarker"] != json!(marker)
        {
            return Err(other(
                &res.id,
                format!(
                    "database {} already exists and is not owned by stack {marker}; refusing to take it over",
                    res.id.name
                ),
            ));
        }
        let db = sql::quote_ident(&res.id.name);
        let role = sql::quote_ident(&owner);
        let comment = sql::quote_literal(&sql::marker_comment(&marker));
        let exists = live.is_some();
        let owner_check = owner.clone();
        let role_exists = self
            .with_client(&res.id, async move |c| {
                c.query_opt(
                    "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                    &[&owner_check],
                )
                .await
            })
            .await?
            .is_some();
        if !role_exists {
            return Err(other(
                &res.id,
                format!(
                    "role {owner} does not exist on the server; the database server's stack creates it"
                ),
            ));
        }
        if exists {
            self.with_client(&res.id, async move |c| {
                c.batch_execute(&format!("ALTER DATABASE {db} OWNER TO {role}"))
                    .await?;
                c.batch_execute(&format!("COMMENT ON DATABASE {db} IS {comment}"))
                    .await
            })
            .await?;
        } else {
            self.create_marked(&res.id, &db, &role, &comment).await?;
        }
        self.read(&res.id).await?.ok_or_else(|| {
            other(
                &res.id,
                "database missing right after CREATE DATABASE".into(),
            )
        })
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        check_database_id(id)?;
        let Some(live) = self.read(id).await? else {
            return Ok(());
        };
        if live["ownerMarker"].as_str().unwrap_or("").is_empty() {
            return Err(other(
                id,
                format!(
                    "database {} carries no preview-envs ownership marker; refusing to drop it",
                    id.name
                ),
            ));
        }
        let db = sql::quote_ident(&id.name);
        self.with_client(id, async move |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await
        })
        .await
    }

    async fn wait_ready(
        &self,
        res: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        let deadline = Instant::now() + opts.timeout;
        loop {
            if let Some(live) = self.read(&res.id).await? {
                return Ok(live);
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: res.id.clone(),
                    message: "database does not exist".into(),
                });
            }
            events.emit(Event::Waiting {
                id: res.id.clone(),
                reason: "waiting for the database to appear".into(),
                failing: false,
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_gone(
        &self,
        id: &ResourceId,
        opts: WaitOptions,
        _events: &EventSink,
    ) -> Result<(), ProviderError> {
        let deadline = Instant::now() + opts.timeout;
        loop {
            if self.read(id).await?.is_none() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message: format!(
                        "database {} is still in pg_database after DROP DATABASE",
                        id.name
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn list_owned(
        &self,
        stack: &str,
        kinds: &[ResourceId],
    ) -> Result<Vec<ResourceId>, ProviderError> {
        let Some(probe) = kinds.first() else {
            return Ok(Vec::new());
        };
        let comment = sql::marker_comment(stack);
        let rows = self
            .with_client(probe, async move |c| {
                c.query(
                    "SELECT d.datname FROM pg_catalog.pg_database d \
                     WHERE pg_catalog.shobj_description(d.oid, 'pg_database') = $1",
                    &[&comment],
                )
                .await
            })
            .await?;
        Ok(rows
            .iter()
            .map(|r| ResourceId {
                name: r.get(0),
                ..probe.clone()
            })
            .collect())
    }
}
