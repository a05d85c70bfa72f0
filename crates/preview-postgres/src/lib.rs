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
//! The per-PR role ([`role`]): a body with a `role` section also gets a login
//! role named like the database, which owns it. It is created with its marker
//! (`COMMENT ON ROLE`) in one transaction before the database, altered to the
//! desired attributes, limit and verifier when it exists with our marker, and
//! refused — before anything is written — when a role of that name exists
//! without it. Drop removes the database, then the role, after checking both
//! markers, and verifies both are gone (`pg_database`, `pg_roles`). Access: every
//! preview database gets `REVOKE ALL … FROM PUBLIC` (before its final name
//! exists), and every ensure revokes CONNECT on `postgres` and `template1` from
//! PUBLIC ([`sql::REVOKE_SYSTEM_DATABASES`]), so a PR role can connect to its
//! own database only. On PostgreSQL ≥ 15 the schema `public` of a new database
//! belongs to `pg_database_owner` (the PR role) and PUBLIC has no CREATE on it;
//! on older servers PUBLIC's CREATE there only concerns roles that can connect,
//! i.e. the owner and superusers.
//!
//! The live representation returned by [`Provider::read`] is
//! `{"metadata": {"labels": {STACK_LABEL: marker}}, "owner": …, "ownerMarker": …,
//! "role": {"connectionLimit": …, "passwordVerifier": …}}` (`role` only when the
//! role carries the database's marker): the parts of the desired body that can
//! be observed (the `server` address is how pods reach it, not how the engine
//! does), plus the owning stack in the same place a Kubernetes object carries
//! it, so the planner's ownership rules (crash resume, adoption refusal) work
//! the same for databases. A role of ours whose database is gone (a destroy
//! interrupted between the two drops) reads as a database with owner `""`, so
//! the next destroy drops it and the next `up` creates the database.
//!
//! Creates are dry-run at plan time ([`Provider::create_prerequisite`]): a
//! database or role that is not ours stops the plan before any write.

// Errors carry the full ResourceId they are about (see preview-core).
#![allow(clippy::result_large_err)]

pub mod in_cluster;
pub mod job;
pub mod state;

pub use preview_core::schema::database_role as role;
pub mod sql;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use preview_core::events::{Event, EventSink};
use preview_core::observe::DryRun;
use preview_core::provider::{Provider, ProviderError, WaitOptions};
use preview_core::resource::{ProviderName, Resource, ResourceId, STACK_LABEL};
use preview_core::schema::database::DatabaseBody;
use preview_core::secret::SecretString;
use role::RoleSpec;

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
            // A server that was never reached (a wrong address) fails at once;
            // one that answered before and refuses now is restarting.
            let had_connection = guard.is_some();
            let (client, connection) =
                tokio_postgres::connect(self.conninfo.expose(), tokio_postgres::NoTls)
                    .await
                    .map_err(|e| {
                        let prefix = if had_connection && is_connection_loss(&e) {
                            LOST
                        } else {
                            "cannot connect to PostgreSQL"
                        };
                        other(id, format!("{prefix}: {}", redact(&e)))
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
        f(client).await.map_err(|e| {
            let prefix = if is_connection_loss(&e) {
                LOST
            } else {
                "PostgreSQL"
            };
            other(id, format!("{prefix}: {}", redact(&e)))
        })
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
                    c.batch_execute(&format!("REVOKE ALL ON DATABASE {tmp} FROM PUBLIC"))
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

/// How a step error begins when the connection to the server was lost or
/// refused ([`is_connection_loss`]).
const LOST: &str = "the connection to PostgreSQL was lost or refused";

/// How long [`Provider::apply`] and [`Provider::delete`] try again after
/// losing the connection (a server restart takes seconds).
pub const LOST_RETRY_FOR: Duration = Duration::from_secs(30);

/// Whether `e` means the server went away rather than refused the work: the
/// connection was closed, refused or reset, or the server is shutting down or
/// starting up (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
/// connect now). Authentication and SQL errors are not.
pub fn is_connection_loss(e: &tokio_postgres::Error) -> bool {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        return [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ]
        .contains(db.code());
    }
    if e.is_closed() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | BrokenPipe
                    | UnexpectedEof
            );
        }
        cause = c.source();
    }
    false
}

/// Whether a step error is a lost connection ([`LOST`]).
fn is_lost(e: &ProviderError) -> bool {
    matches!(e, ProviderError::Other { message, .. } if message.starts_with(LOST))
}

/// A tokio-postgres error without anything from the connection string.
fn redact(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// The observable state of a database (see the module docs): its owner, the
/// stack its marker names (`""` without one) and, when the role named like the
/// database carries the same marker, that role's connection limit and verifier.
pub(crate) fn live_value(owner: &str, marker: &str, role: Option<Value>) -> Value {
    let labels = if marker.is_empty() {
        json!({})
    } else {
        json!({ STACK_LABEL: marker })
    };
    let mut live = json!({"metadata": {"labels": labels}, "owner": owner, "ownerMarker": marker});
    if let Some(role) = role {
        live["role"] = role;
    }
    live
}

/// The observable part of a role (`role` in [`live_value`]).
pub(crate) fn role_value(connection_limit: i64, verifier: &str) -> Value {
    json!({"connectionLimit": connection_limit, "passwordVerifier": verifier})
}

fn other(id: &ResourceId, message: String) -> ProviderError {
    ProviderError::Other {
        id: id.clone(),
        message,
    }
}

fn check_database_id(id: &ResourceId) -> Result<(), ProviderError> {
    if id.provider != ProviderName::POSTGRES || id.kind != "Database" {
        return Err(other(
            id,
            format!("the PostgreSQL provider does not manage {}", id.kind),
        ));
    }
    sql::check_identifier("database name", &id.name).map_err(|m| other(id, m))
}

/// What a `Database` body asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Desired {
    /// Owning role (the database's own role when [`Desired::role`] is set).
    pub owner: String,
    /// The owning stack.
    pub marker: String,
    /// The per-PR login role named like the database ([`role`]).
    pub role: Option<RoleSpec>,
}

/// The desired owner, marker and role from a `Database` body (the typed
/// [`DatabaseBody`]), checked.
pub(crate) fn desired(res: &Resource) -> Result<Desired, ProviderError> {
    let body = DatabaseBody::from_value(&res.body).map_err(|m| other(&res.id, m))?;
    let owner = body.owner;
    sql::check_identifier("database owner", &owner).map_err(|m| other(&res.id, m))?;
    let role = match body.role {
        None => None,
        Some(spec) => {
            spec.check().map_err(|m| other(&res.id, m))?;
            sql::check_identifier("role name", &res.id.name).map_err(|m| other(&res.id, m))?;
            if owner != res.id.name {
                return Err(other(
                    &res.id,
                    format!(
                        "field owner is {owner:?}, but a database with a role section is owned by its own role {:?}",
                        res.id.name
                    ),
                ));
            }
            Some(spec)
        }
    };
    Ok(Desired {
        owner,
        marker: body.owner_marker,
        role,
    })
}

/// The refusal for a role named like the database that this stack does not
/// own: it is never altered, taken over or dropped.
pub(crate) fn foreign_role(name: &str, marker: &str, stack: &str) -> String {
    if marker.is_empty() {
        format!(
            "role {name} exists and carries no preview-envs ownership marker (COMMENT ON ROLE); refusing to take it over or drop it (stack {stack})"
        )
    } else {
        format!(
            "role {name} exists and is marked as owned by stack {marker}, not {stack}; refusing to take it over or drop it"
        )
    }
}

/// A database row: owner, marker stack (`""` when none).
struct DbRow {
    owner: String,
    marker: String,
}

/// A role row: marker stack (`""` when none), connection limit, stored verifier.
struct RoleRow {
    marker: String,
    connection_limit: i64,
    verifier: String,
}

impl PostgresProvider {
    async fn read_database(&self, id: &ResourceId) -> Result<Option<DbRow>, ProviderError> {
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
            let comment: String = r.get(1);
            DbRow {
                owner: r.get(0),
                marker: sql::marker_stack(&comment).unwrap_or("").to_owned(),
            }
        }))
    }

    /// The role named like the database (`pg_authid`: needs a superuser, as
    /// the rest of the executor does).
    async fn read_role(&self, id: &ResourceId) -> Result<Option<RoleRow>, ProviderError> {
        let name = id.name.clone();
        let row = self
            .with_client(id, async move |c| {
                c.query_opt(
                    "SELECT COALESCE(pg_catalog.shobj_description(a.oid, 'pg_authid'), ''), \
                     a.rolconnlimit::int8, COALESCE(a.rolpassword, '') \
                     FROM pg_catalog.pg_authid a WHERE a.rolname = $1",
                    &[&name],
                )
                .await
            })
            .await?;
        Ok(row.map(|r| {
            let comment: String = r.get(0);
            RoleRow {
                marker: sql::marker_stack(&comment).unwrap_or("").to_owned(),
                connection_limit: r.get(1),
                verifier: r.get(2),
            }
        }))
    }

    /// The live value from both rows: the database's, with its role when the
    /// role carries the same marker; or, when only a role of ours is left (a
    /// destroy interrupted between the two drops), the role alone, so that the
    /// planner sees something to delete.
    fn compose(db: Option<DbRow>, role: Option<RoleRow>) -> Option<Value> {
        match (db, role) {
            (Some(db), role) => {
                let role = role
                    .filter(|r| !db.marker.is_empty() && r.marker == db.marker)
                    .map(|r| role_value(r.connection_limit, &r.verifier));
                Some(live_value(&db.owner, &db.marker, role))
            }
            (None, Some(r)) if !r.marker.is_empty() => Some(live_value(
                "",
                &r.marker,
                Some(role_value(r.connection_limit, &r.verifier)),
            )),
            (None, _) => None,
        }
    }

    /// `CREATE ROLE` (with its marker, in one transaction) or `ALTER ROLE`, with
    /// the attributes, connection limit and verifier of `spec`.
    async fn ensure_role(
        &self,
        id: &ResourceId,
        spec: &RoleSpec,
        marker: &str,
        exists: bool,
    ) -> Result<(), ProviderError> {
        let role = sql::quote_ident(&id.name);
        let settings = format!(
            "{} CONNECTION LIMIT {} PASSWORD {}",
            role::ATTRIBUTES,
            spec.connection_limit,
            sql::quote_literal(&spec.password_verifier)
        );
        let comment = sql::quote_literal(&sql::marker_comment(marker));
        self.with_client(id, async move |c| {
            if exists {
                c.batch_execute(&format!("ALTER ROLE {role} WITH {settings}"))
                    .await
            } else {
                c.batch_execute(&format!(
                    "BEGIN; CREATE ROLE {role} WITH {settings}; COMMENT ON ROLE {role} IS {comment}; COMMIT"
                ))
                .await
            }
        })
        .await
    }

    /// Nothing but superusers and the owner may connect to a preview database;
    /// nobody but superusers to `postgres` and `template1` (idempotent).
    async fn revoke_public(&self, id: &ResourceId) -> Result<(), ProviderError> {
        let db = sql::quote_ident(&id.name);
        self.with_client(id, async move |c| {
            c.batch_execute(&format!("REVOKE ALL ON DATABASE {db} FROM PUBLIC"))
                .await?;
            c.batch_execute(sql::REVOKE_SYSTEM_DATABASES).await
        })
        .await
    }
}

impl PostgresProvider {
    /// Runs `attempt` again while it fails because the connection to the
    /// server was lost, or refused after it had been made (a restart, a
    /// failover: [`is_connection_loss`]),
    /// for up to [`LOST_RETRY_FOR`] with backoff. Apply and delete are written
    /// to be run again from the start after an interruption at any point (the
    /// temporary name, the markers, `IF EXISTS`), so a retry is the same as the
    /// next run resuming.
    async fn retry_when_lost<T, F, Fut>(
        &self,
        id: &ResourceId,
        mut attempt: F,
    ) -> Result<T, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        let began = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            match attempt().await {
                Err(e) if is_lost(&e) && began.elapsed() < LOST_RETRY_FOR => {
                    tracing::warn!(%id, error = %e, "PostgreSQL connection lost; trying again in {} ms", delay.as_millis());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(4));
                }
                other => return other,
            }
        }
    }

    /// One attempt of [`Provider::apply`].
    async fn apply_once(&self, res: &Resource) -> Result<Value, ProviderError> {
        check_database_id(&res.id)?;
        let d = desired(res)?;
        // Every check first: nothing is written unless all pass.
        let db_row = self.read_database(&res.id).await?;
        if let Some(db) = &db_row
            && db.marker != d.marker
        {
            return Err(other(
                &res.id,
                format!(
                    "database {} already exists and is not owned by stack {}; refusing to take it over",
                    res.id.name, d.marker
                ),
            ));
        }
        let role_exists = match &d.role {
            Some(_) => match self.read_role(&res.id).await? {
                Some(role) if role.marker != d.marker => {
                    return Err(other(
                        &res.id,
                        foreign_role(&res.id.name, &role.marker, &d.marker),
                    ));
                }
                found => found.is_some(),
            },
            None => {
                let owner_check = d.owner.clone();
                let found = self
                    .with_client(&res.id, async move |c| {
                        c.query_opt(
                            "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                            &[&owner_check],
                        )
                        .await
                    })
                    .await?
                    .is_some();
                if !found {
                    return Err(other(
                        &res.id,
                        format!(
                            "role {} does not exist on the server; the database server's stack creates it",
                            d.owner
                        ),
                    ));
                }
                true
            }
        };
        if let Some(spec) = &d.role {
            self.ensure_role(&res.id, spec, &d.marker, role_exists)
                .await?;
        }
        let db = sql::quote_ident(&res.id.name);
        let role = sql::quote_ident(&d.owner);
        let comment = sql::quote_literal(&sql::marker_comment(&d.marker));
        if db_row.is_some() {
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
        self.revoke_public(&res.id).await?;
        self.read(&res.id).await?.ok_or_else(|| {
            other(
                &res.id,
                "database missing right after CREATE DATABASE".into(),
            )
        })
    }

    /// One attempt of [`Provider::delete`].
    async fn delete_once(&self, id: &ResourceId) -> Result<(), ProviderError> {
        check_database_id(id)?;
        let db_row = self.read_database(id).await?;
        let role_row = self.read_role(id).await?;
        // Both checks before either drop.
        if let Some(db) = &db_row
            && db.marker.is_empty()
        {
            return Err(other(
                id,
                format!(
                    "database {} carries no preview-envs ownership marker; refusing to drop it",
                    id.name
                ),
            ));
        }
        if let Some(role) = &role_row {
            let stack = db_row.as_ref().map(|d| d.marker.as_str());
            if role.marker.is_empty() || stack.is_some_and(|s| s != role.marker) {
                return Err(other(
                    id,
                    foreign_role(&id.name, &role.marker, stack.unwrap_or("(unknown)")),
                ));
            }
        }
        let db = sql::quote_ident(&id.name);
        let drop_role = role_row.is_some();
        self.with_client(id, async move |c| {
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .await?;
            if drop_role {
                c.batch_execute(&format!("DROP ROLE IF EXISTS {db}"))
                    .await?;
            }
            Ok(())
        })
        .await?;
        // Verified here as well as by wait_gone: the catalog says both are gone.
        match (self.read_database(id).await?, self.read_role(id).await?) {
            (None, None) => Ok(()),
            (db, _) => Err(other(
                id,
                format!(
                    "{} {} still in {} after the drop",
                    if db.is_some() { "database" } else { "role" },
                    id.name,
                    if db.is_some() {
                        "pg_database"
                    } else {
                        "pg_roles"
                    },
                ),
            )),
        }
    }
}

#[async_trait]
impl Provider for PostgresProvider {
    async fn read(&self, id: &ResourceId) -> Result<Option<Value>, ProviderError> {
        check_database_id(id)?;
        let db = self.read_database(id).await?;
        let role = self.read_role(id).await?;
        Ok(Self::compose(db, role))
    }

    fn create_prerequisite(&self, _id: &ResourceId) -> Option<Option<ResourceId>> {
        // Plain reads: a database or role that is not ours is refused at plan
        // time, before anything is written.
        Some(None)
    }

    async fn dry_run(&self, res: &Resource, _force: bool) -> Result<DryRun, ProviderError> {
        check_database_id(&res.id)?;
        let d = desired(res)?;
        if let Some(db) = self.read_database(&res.id).await?
            && db.marker != d.marker
        {
            return Ok(DryRun::Rejected {
                code: 409,
                message: format!(
                    "database {} exists and is not marked as owned by stack {}",
                    res.id.name, d.marker
                ),
            });
        }
        if d.role.is_some()
            && let Some(role) = self.read_role(&res.id).await?
            && role.marker != d.marker
        {
            return Ok(DryRun::Rejected {
                code: 409,
                message: foreign_role(&res.id.name, &role.marker, &d.marker),
            });
        }
        let role = d
            .role
            .as_ref()
            .map(|r| role_value(i64::from(r.connection_limit), &r.password_verifier));
        Ok(DryRun::Accepted {
            object: live_value(&d.owner, &d.marker, role),
        })
    }

    async fn apply(&self, res: &Resource, _force: bool) -> Result<Value, ProviderError> {
        self.retry_when_lost(&res.id, || self.apply_once(res)).await
    }

    async fn delete(&self, id: &ResourceId) -> Result<(), ProviderError> {
        self.retry_when_lost(id, || self.delete_once(id)).await
    }

    async fn wait_ready(
        &self,
        res: &Resource,
        opts: WaitOptions,
        events: &EventSink,
    ) -> Result<Value, ProviderError> {
        let deadline = Instant::now() + opts.timeout;
        loop {
            if let Some(live) = self.read(&res.id).await?
                && self.read_database(&res.id).await?.is_some()
            {
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
            let db = self.read_database(id).await?.is_some();
            let role = self
                .read_role(id)
                .await?
                .is_some_and(|r| !r.marker.is_empty());
            if !db && !role {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProviderError::NotReady {
                    id: id.clone(),
                    message: if db {
                        format!(
                            "database {} is still in pg_database after DROP DATABASE",
                            id.name
                        )
                    } else {
                        format!("role {} is still in pg_roles after DROP ROLE", id.name)
                    },
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
        // Databases and roles carrying the stack's marker (a role is named like
        // its database, so either stands for the Database resource).
        let rows = self
            .with_client(probe, async move |c| {
                c.query(
                    "SELECT d.datname::text FROM pg_catalog.pg_database d \
                     WHERE pg_catalog.shobj_description(d.oid, 'pg_database') = $1 \
                     UNION SELECT a.rolname::text FROM pg_catalog.pg_authid a \
                     WHERE pg_catalog.shobj_description(a.oid, 'pg_authid') = $1",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_refused_connection_is_a_connection_loss() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port(); // closed again: nothing listens there
        let err = tokio_postgres::connect(
            &format!("host=127.0.0.1 port={port} user=postgres"),
            tokio_postgres::NoTls,
        )
        .await
        .err()
        .expect("refused");
        assert!(is_connection_loss(&err), "{err}");
    }

    #[test]
    fn only_lost_connections_are_retried() {
        let id = ResourceId {
            provider: ProviderName::POSTGRES,
            api_version: "postgres.preview-envs.io/v1".into(),
            kind: "Database".into(),
            namespace: None,
            name: "db".into(),
        };
        let lost = other(&id, format!("{LOST}: connection closed"));
        assert!(is_lost(&lost));
        let sql = other(&id, "PostgreSQL: permission denied (42501)".into());
        assert!(!is_lost(&sql));
        let auth = other(
            &id,
            "cannot connect to PostgreSQL: password authentication failed".into(),
        );
        assert!(!is_lost(&auth));
    }
}
