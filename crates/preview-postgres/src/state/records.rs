//! Records of the PostgreSQL backend: one row per record in
//! `preview_envs_records(kind text, name text, body bytea, updated_at
//! timestamptz, PRIMARY KEY (kind, name))`, a table of its own (grant `SELECT` on
//! it alone to let another deployer read records without the states). The table
//! is created on the first record write if missing ([`RECORDS_SCHEMA_SQL`]); a
//! read or list without it finds nothing. A swap is one statement — `INSERT … ON
//! CONFLICT DO NOTHING` when the record was absent, `UPDATE … WHERE body = <what
//! was read>` otherwise — that must touch exactly one row, else
//! [`StateError::Stale`].

use super::PgBackend;
use preview_core::state::{StateError, check_record_key};

/// The records table, as created when missing.
pub const RECORDS_SCHEMA_SQL: &str = "\
CREATE TABLE IF NOT EXISTS preview_envs_records (
    kind text NOT NULL,
    name text NOT NULL,
    body bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, name)
);";

impl PgBackend {
    async fn records_table_exists(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<bool, StateError> {
        Ok(client
            .query_one(
                "SELECT to_regclass('preview_envs_records') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| self.io("cannot inspect the schema", Some(e)))?
            .get(0))
    }

    pub(super) async fn read_record_impl(
        &self,
        kind: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        check_record_key(kind, name)?;
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        if !self.records_table_exists(client).await? {
            return Ok(None);
        }
        let row = client
            .query_opt(
                "SELECT body FROM preview_envs_records WHERE kind = $1 AND name = $2",
                &[&kind, &name],
            )
            .await
            .map_err(|e| self.io(format!("cannot read record {kind}/{name}"), Some(e)))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub(super) async fn swap_record_impl(
        &self,
        kind: &str,
        name: &str,
        expected: Option<&[u8]>,
        body: &[u8],
    ) -> Result<(), StateError> {
        check_record_key(kind, name)?;
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        if !self.records_table_exists(client).await? {
            client.batch_execute(RECORDS_SCHEMA_SQL).await.map_err(|e| {
                let concurrent = e
                    .as_db_error()
                    .is_some_and(|d| matches!(d.code().code(), "23505" | "42P07"));
                if concurrent {
                    // Another writer created it at the same moment: retry.
                    StateError::Stale {
                        stack: format!("{kind}/{name}"),
                        message: "the records table was being created by another run".into(),
                    }
                } else {
                    self.io(
                        format!(
                            "cannot create the records table (ask a database administrator to run:\n{RECORDS_SCHEMA_SQL}\n)"
                        ),
                        Some(e),
                    )
                }
            })?;
        }
        let what = || format!("cannot write record {kind}/{name}");
        let changed = match expected {
            None => client
                .execute(
                    "INSERT INTO preview_envs_records (kind, name, body) VALUES ($1, $2, $3) ON CONFLICT (kind, name) DO NOTHING",
                    &[&kind, &name, &body],
                )
                .await,
            Some(old) => client
                .execute(
                    "UPDATE preview_envs_records SET body = $3, updated_at = now() WHERE kind = $1 AND name = $2 AND body = $4",
                    &[&kind, &name, &body, &old],
                )
                .await,
        }
        .map_err(|e| self.io(what(), Some(e)))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(StateError::Stale {
                stack: format!("{kind}/{name}"),
                message: "another writer changed the record after it was read".into(),
            })
        }
    }

    pub(super) async fn list_records_impl(
        &self,
        kind: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        check_record_key(kind, "x")?;
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| self.io("no connection", None))?;
        if !self.records_table_exists(client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                "SELECT name, body FROM preview_envs_records WHERE kind = $1 ORDER BY name",
                &[&kind],
            )
            .await
            .map_err(|e| self.io(format!("cannot list {kind} records"), Some(e)))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}
