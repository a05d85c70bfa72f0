//! PostgreSQL state backend (`postgres://…` / `postgresql://…`, tokio-postgres,
//! no TLS: use a trusted network or a local socket/tunnel).
//!
//! **State.** One row per stack in
//! `preview_envs_state(stack text primary key, lineage text not null, serial
//! bigint not null, body bytea not null, updated_at timestamptz not null default
//! now())`, created if missing (or by a DBA with [`SCHEMA_SQL`]). `body` is the
//! [`format`](preview_core::state::format) document (with its checksum; authenticated by the backend's
//! [`Codec`] when a state passphrase is set); `lineage` and `serial` repeat its
//! header so they can be queried, and must agree with it.
//!
//! **Atomic writes.** One transaction: `SELECT … FOR UPDATE` of the row (a
//! concurrent writer waits), [`check_write`] against it, then `INSERT … ON
//! CONFLICT DO NOTHING` or `UPDATE … WHERE serial = $old AND lineage = $old`,
//! each required to touch exactly one row, else [`StateError::Stale`].
//!
//! **Lock.** [`lock`]: a per-stack session advisory lock — never a global one.
//!
//! **Records.** [`records`]: rows of `preview_envs_records` (tested images).

pub mod lock;
pub mod records;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::Client;

use preview_core::secret::SecretString;
use preview_core::state::format::{Codec, Purpose};
use preview_core::state::{
    StackLock, StackState, StateBackend, StateError, WriteRule, check_stack_name, check_write,
};

/// The tables, as created when missing.
pub const SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS preview_envs_state (
    stack text PRIMARY KEY,
    lineage text NOT NULL,
    serial bigint NOT NULL,
    body bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS preview_envs_locks (
    stack text PRIMARY KEY,
    host text NOT NULL,
    pid bigint NOT NULL,
    started text NOT NULL,
    token text NOT NULL,
    backend_pid integer NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT now()
);";

/// The PostgreSQL backend.
pub struct PgBackend {
    url: SecretString,
    described: String,
    client: Mutex<Option<Client>>,
    codec: Codec,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgBackend({})", self.described)
    }
}

/// A tokio-postgres error as text: the server's message and SQLSTATE, plus a
/// hint when it looks like a transaction-pooling proxy. Never contains the URL.
pub(crate) fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) if db.code().code() == "26000" => format!(
            "{} ({}): prepared statements vanish between transactions, as behind a transaction-pooling proxy (pgbouncer pool_mode=transaction); connect directly or use pool_mode=session",
            db.message(),
            db.code().code()
        ),
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl PgBackend {
    /// Connects (failing early with a clear error) and creates the tables if
    /// missing. `described` is the URL without its password.
    pub async fn connect(url: SecretString, described: String) -> Result<Self, StateError> {
        let backend = PgBackend {
            url,
            described,
            client: Mutex::new(None),
            codec: Codec::plain(),
        };
        {
            let mut guard = backend.client().await?;
            let client = guard
                .as_mut()
                .ok_or_else(|| backend.io("no connection", None))?;
            backend.ensure_schema(client).await?;
        }
        Ok(backend)
    }

    /// Connects from a URL (parsed and described here).
    pub async fn connect_url(url: &str) -> Result<Self, StateError> {
        let config_error = |message: String| StateError::Config {
            url: preview_core::state::redact_url(url),
            message,
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(config_error("not a postgres:// URL".into()));
        }
        let described = describe_url(url).map_err(config_error)?;
        Self::connect(SecretString::new(url), described).await
    }

    /// The same backend reading and writing through `codec` (authenticated
    /// with a state passphrase).
    pub fn with_codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    fn io(&self, message: impl Into<String>, e: Option<tokio_postgres::Error>) -> StateError {
        let message = match &e {
            Some(e) => format!("{}: {}", message.into(), pg_message(e)),
            None => message.into(),
        };
        StateError::Io {
            backend: self.described.clone(),
            message,
            source: e.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        }
    }

    /// A new connection (the shared one, and each lock's own).
    pub(crate) async fn new_connection(&self) -> Result<Client, StateError> {
        let mut config = tokio_postgres::Config::from_str(self.url.expose()).map_err(|e| {
            StateError::Config {
                url: self.described.clone(),
                message: format!("invalid PostgreSQL URL: {e}"),
            }
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(15));
        }
        config.keepalives_idle(Duration::from_secs(15));
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| self.io("cannot connect", Some(e)))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %pg_message(&e), "PostgreSQL state connection closed");
            }
        });
        Ok(client)
    }

    async fn client(&self) -> Result<MutexGuard<'_, Option<Client>>, StateError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(self.new_connection().await?);
        }
        Ok(guard)
    }

    async fn ensure_schema(&self, client: &Client) -> Result<(), StateError> {
        let present: bool = client
            .query_one(
                "SELECT to_regclass('preview_envs_state') IS NOT NULL AND to_regclass('preview_envs_locks') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| self.io("cannot inspect the schema", Some(e)))?
            .get(0);
        if present {
            return Ok(());
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client.batch_execute(SCHEMA_SQL).await {
                Ok(()) => return Ok(()),
                // Two runs creating the tables at once: the loser sees a duplicate.
                Err(e)
                    if attempt < 3
                        && e.as_db_error()
                            .is_some_and(|d| matches!(d.code().code(), "23505" | "42P07")) => {}
                Err(e) if e.as_db_error().is_some_and(|d| d.code().code() == "42501") => {
                    return Err(self.io(
                        format!("cannot create the state tables (ask a database administrator to run:\n{SCHEMA_SQL}\n)"),
                        Some(e),
                    ));
                }
                Err(e) => return Err(self.io("cannot create the state tables", Some(e))),
            }
        }
    }

    fn location(&self, stack: &str) -> String {
        format!("{} table preview_envs_state, stack {stack}", self.described)
    }

    fn decode_row(
        &self,
        stack: &str,
        lineage: &str,
        serial: i64,
        body: &[u8],
        purpose: Purpose,
    ) -> Result<StackState, StateError> {
        let corrupt = |message: String| StateError::Corrupt {
            stack: stack.to_owned(),
            location: self.location(stack),
            message,
        };
        let state = self
            .codec
            .decode(body, stack, purpose)
            .map_err(|e| e.at(stack, self.location(stack)))?;
        if state.lineage != lineage || i64::try_from(state.serial).ok() != Some(serial) {
            return Err(corrupt(format!(
                "the row says lineage {lineage} serial {serial} but its body has lineage {} serial {}",
                state.lineage, state.serial
            )));
        }
        Ok(state)
    }

    /// The described URL (no password).
    pub fn described(&self) -> &str {
        &self.described
    }
}

#[async_trait]
impl StateBackend for PgBackend {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn codec(&self) -> &Codec {
        &self.codec
    }

    async fn read(&self, stack: &str) -> Result<Option<StackState>, StateError> {
        check_stack_name(stack)?;
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        let row = client
            .query_opt(
                "SELECT lineage, serial, body FROM preview_envs_state WHERE stack = $1",
                &[&stack],
            )
            .await
            .map_err(|e| self.io(format!("cannot read the state of {stack}"), Some(e)))?;
        match row {
            Some(row) => {
                let (lineage, serial, body): (String, i64, Vec<u8>) =
                    (row.get(0), row.get(1), row.get(2));
                Ok(Some(self.decode_row(
                    stack,
                    &lineage,
                    serial,
                    &body,
                    Purpose::Read,
                )?))
            }
            None => Ok(None),
        }
    }

    async fn write_with(&self, state: &StackState, rule: &WriteRule) -> Result<(), StateError> {
        let stack = state.stack.as_str();
        check_stack_name(stack)?;
        let body = self
            .codec
            .encode(state)
            .map_err(|m| self.io(format!("cannot encode: {m}"), None))?;
        let serial = i64::try_from(state.serial)
            .map_err(|_| self.io(format!("serial {} is too large", state.serial), None))?;
        let mut guard = self.client().await?;
        let client = guard
            .as_mut()
            .ok_or_else(|| self.io("no connection", None))?;
        let what = || format!("cannot write the state of {stack}");
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.io(what(), Some(e)))?;
        let row = tx
            .query_opt(
                "SELECT lineage, serial, body FROM preview_envs_state WHERE stack = $1 FOR UPDATE",
                &[&stack],
            )
            .await
            .map_err(|e| self.io(what(), Some(e)))?;
        let stored = match &row {
            Some(row) => {
                let (lineage, old_serial, old_body): (String, i64, Vec<u8>) =
                    (row.get(0), row.get(1), row.get(2));
                Some((
                    self.decode_row(stack, &lineage, old_serial, &old_body, Purpose::Write)?,
                    lineage,
                    old_serial,
                ))
            }
            None => None,
        };
        check_write(stored.as_ref().map(|(s, _, _)| s), state, rule)?;
        let changed = match &stored {
            None => tx
                .execute(
                    "INSERT INTO preview_envs_state (stack, lineage, serial, body) VALUES ($1, $2, $3, $4) ON CONFLICT (stack) DO NOTHING",
                    &[&stack, &state.lineage, &serial, &body],
                )
                .await,
            Some((_, old_lineage, old_serial)) => tx
                .execute(
                    "UPDATE preview_envs_state SET lineage = $2, serial = $3, body = $4, updated_at = now() WHERE stack = $1 AND serial = $5 AND lineage = $6",
                    &[&stack, &state.lineage, &serial, &body, old_serial, old_lineage],
                )
                .await,
        }
        .map_err(|e| self.io(what(), Some(e)))?;
        if changed != 1 {
            return Err(StateError::Stale {
                stack: stack.to_owned(),
                message: "another writer changed the stored state during this write; read it again"
                    .into(),
            });
        }
        tx.commit().await.map_err(|e| self.io(what(), Some(e)))
    }

    async fn delete(&self, stack: &str) -> Result<(), StateError> {
        check_stack_name(stack)?;
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        client
            .execute("DELETE FROM preview_envs_state WHERE stack = $1", &[&stack])
            .await
            .map_err(|e| self.io(format!("cannot delete the state of {stack}"), Some(e)))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<String>, StateError> {
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        let rows = client
            .query("SELECT stack FROM preview_envs_state ORDER BY stack", &[])
            .await
            .map_err(|e| self.io("cannot list stacks", Some(e)))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn lock(&self, stack: &str) -> Result<Box<dyn StackLock>, StateError> {
        check_stack_name(stack)?;
        Ok(Box::new(lock::acquire(self, stack).await?))
    }

    async fn break_lock(&self, stack: &str) -> Result<Option<String>, StateError> {
        check_stack_name(stack)?;
        lock::break_lock(self, stack).await
    }

    async fn read_record(&self, kind: &str, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.read_record_impl(kind, name).await
    }

    async fn swap_record(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        self.swap_record_impl(kind, name, expected, body).await
    }

    async fn list_records(&self, kind: &str) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.list_records_impl(kind).await
    }
}

/// `postgres://user@host:port/db` for a PostgreSQL URL (no password), or why
/// it is not one.
pub fn describe_url(url: &str) -> Result<String, String> {
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    Ok(describe_config(&config))
}

/// `postgres://user@host:port/db` from a parsed configuration (no password).
fn describe_config(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let at = if user.is_empty() { "" } else { "@" };
    format!(
        "postgres://{user}{at}{}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}
