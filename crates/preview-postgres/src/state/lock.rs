//! The stack lock of the PostgreSQL backend: a **per-stack** session advisory
//! lock on a dedicated connection, held for the lock's lifetime.
//!
//! - key: the first 8 bytes (big-endian `i64`) of SHA-256 of
//!   `preview-envs:<stack>` ([`advisory_key`]) — one key per stack, never a
//!   global one, so stacks never block each other (unlike terraform#33217);
//! - `pg_try_advisory_lock(key)`: fails fast; the holder is named from
//!   `pg_locks` (the session holding the key) joined with the row the holder
//!   wrote into `preview_envs_locks` (host, pid, start time);
//! - the session's server-side TCP keepalives are shortened (idle 10 s,
//!   interval 5 s, 3 probes), so when the holder process or its host dies the
//!   server closes the session and **releases the lock on its own** within
//!   about 25 s (immediately when the process exits and its socket closes);
//! - a heartbeat checks every few seconds that this session still holds the
//!   key ([`StackLock::is_lost`] otherwise);
//! - `stacks state break-lock STACK` terminates the holder's session
//!   (`pg_terminate_backend`, which needs the same role, `pg_signal_backend` or
//!   a superuser);
//! - behind a **transaction-pooling proxy** (pgbouncer `pool_mode=transaction`)
//!   consecutive statements of one client may run in different server sessions,
//!   so a session lock would be taken by one and "held" by nobody. The lock
//!   refuses to run there: [`check_session_pinning`] compares
//!   `pg_backend_pid()` across separate statements, before and after locking.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::{PgBackend, pg_message};
use preview_core::state::{LockHolder, StackLock, StateError};

/// How often a held lock checks that its session still holds the key.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// The advisory-lock key of a stack: SHA-256 of `preview-envs:<stack>`, first 8
/// bytes as a big-endian `i64`.
pub fn advisory_key(stack: &str) -> i64 {
    let digest = Sha256::digest(format!("preview-envs:{stack}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// How `pg_locks` shows a bigint advisory key: `(classid, objid)` = high and low
/// 32 bits, with `objsubid = 1`.
pub fn pg_locks_ids(key: i64) -> (u32, u32) {
    let k = key as u64;
    ((k >> 32) as u32, k as u32)
}

/// Checks that separate statements on one connection ran in the same server
/// session (`pg_backend_pid()` samples). Different pids mean a
/// transaction-pooling proxy, where session advisory locks cannot work.
pub fn check_session_pinning(pids: &[i32]) -> Result<(), String> {
    let Some(first) = pids.first() else {
        return Ok(());
    };
    if pids.iter().all(|p| p == first) {
        return Ok(());
    }
    let seen: Vec<String> = pids.iter().map(ToString::to_string).collect();
    Err(format!(
        "consecutive statements on one connection ran in different PostgreSQL sessions (backend pids {}): this URL goes through a transaction-pooling proxy (e.g. pgbouncer with pool_mode=transaction), where the per-stack session advisory lock cannot work; point the state backend at PostgreSQL directly, or at a pool with pool_mode=session",
        seen.join(", ")
    ))
}

const HOLDER_SQL: &str = "\
SELECT l.pid, k.host, k.pid, k.started, k.backend_pid, a.application_name
FROM pg_locks l
LEFT JOIN preview_envs_locks k ON k.stack = $1
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.classid = $2 AND l.objid = $3
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1";

/// The session holding `stack`'s key and a description of it, if any.
async fn find_holder(
    client: &Client,
    stack: &str,
) -> Result<Option<(i32, String)>, tokio_postgres::Error> {
    let (classid, objid) = pg_locks_ids(advisory_key(stack));
    let Some(row) = client
        .query_opt(HOLDER_SQL, &[&stack, &classid, &objid])
        .await?
    else {
        return Ok(None);
    };
    let session: i32 = row.get(0);
    let host: Option<String> = row.get(1);
    let pid: Option<i64> = row.get(2);
    let started: Option<String> = row.get(3);
    let recorded_session: Option<i32> = row.get(4);
    let app: Option<String> = row.get(5);
    let text = match (host, pid, started) {
        (Some(host), Some(pid), Some(started)) if recorded_session == Some(session) => {
            format!("pid {pid} on {host} since {started} (PostgreSQL session {session})")
        }
        _ => format!(
            "PostgreSQL session {session} ({}; no holder record)",
            app.filter(|a| !a.is_empty()).map_or_else(
                || "unknown application".to_owned(),
                |a| format!("application {a:?}")
            )
        ),
    };
    Ok(Some((session, text)))
}

/// The holder's description; waits briefly for the record of a holder that has
/// just taken the lock (the key becomes visible before its row is committed).
async fn holder_with_record(
    client: &Client,
    stack: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let mut last = None;
    for _ in 0..20 {
        match find_holder(client, stack).await? {
            Some((_, text)) if !text.ends_with("no holder record)") => return Ok(Some(text)),
            Some((_, text)) => last = Some(text),
            None => return Ok(last),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(last)
}

/// A held advisory lock: the dedicated connection and its heartbeat.
pub struct PgLock {
    client: Arc<Client>,
    stack: String,
    key: i64,
    token: String,
    lost: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

async fn backend_pid(client: &Client) -> Result<i32, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0))
}

/// Takes the stack's advisory lock on a new connection, or fails with
/// [`StateError::Locked`] naming the holder.
pub(crate) async fn acquire(backend: &PgBackend, stack: &str) -> Result<PgLock, StateError> {
    let client = backend.new_connection().await?;
    let err =
        |what: &str, e: tokio_postgres::Error| backend.io(format!("lock {stack}: {what}"), Some(e));
    client
        .batch_execute("SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3")
        .await
        .map_err(|e| err("cannot configure the session", e))?;
    client
        .execute(
            "SELECT set_config('application_name', $1, false)",
            &[&format!("preview-envs lock {stack}")],
        )
        .await
        .map_err(|e| err("cannot configure the session", e))?;
    let key = advisory_key(stack);
    let me = LockHolder::current();
    for _ in 0..3 {
        let before = backend_pid(&client)
            .await
            .map_err(|e| err("cannot query", e))?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1), pg_backend_pid()", &[&key])
            .await
            .map_err(|e| err("cannot take the advisory lock", e))?;
        let (got, during): (bool, i32) = (row.get(0), row.get(1));
        let after = backend_pid(&client)
            .await
            .map_err(|e| err("cannot query", e))?;
        if let Err(message) = check_session_pinning(&[before, during, after]) {
            if got {
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await;
            }
            return Err(StateError::Config {
                url: backend.described().to_owned(),
                message,
            });
        }
        if got {
            client
                .execute(
                    "INSERT INTO preview_envs_locks (stack, host, pid, started, token, backend_pid) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (stack) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid, started = EXCLUDED.started, \
                     token = EXCLUDED.token, backend_pid = EXCLUDED.backend_pid, acquired_at = now()",
                    &[&stack, &me.host, &i64::from(me.pid), &me.started, &me.token, &after],
                )
                .await
                .map_err(|e| err("cannot record the holder", e))?;
            return Ok(held(client, stack, key, me.token));
        }
        match holder_with_record(&client, stack)
            .await
            .map_err(|e| err("cannot find the holder", e))?
        {
            Some(holder) => {
                return Err(StateError::Locked {
                    stack: stack.to_owned(),
                    holder,
                });
            }
            None => continue, // released in between: try again
        }
    }
    Err(StateError::Locked {
        stack: stack.to_owned(),
        holder: "other runs (the lock changed hands repeatedly while this run tried to take it)"
            .into(),
    })
}

fn held(client: Client, stack: &str, key: i64, token: String) -> PgLock {
    let client = Arc::new(client);
    let lost = Arc::new(AtomicBool::new(false));
    let heartbeat = tokio::spawn(heartbeat(
        client.clone(),
        stack.to_owned(),
        key,
        lost.clone(),
    ));
    PgLock {
        client,
        stack: stack.to_owned(),
        key,
        token,
        lost,
        heartbeat: Some(heartbeat),
        released: false,
    }
}

/// Checks periodically that this session still holds the key.
async fn heartbeat(client: Arc<Client>, stack: String, key: i64, lost: Arc<AtomicBool>) {
    let (classid, objid) = pg_locks_ids(key);
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let held = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
                 AND classid = $1 AND objid = $2 AND pid = pg_backend_pid())",
                &[&classid, &objid],
            )
            .await
            .map(|r| r.get::<_, bool>(0));
        match held {
            Ok(true) => {}
            Ok(false) => {
                tracing::error!(
                    stack,
                    "lost the stack lock: this session no longer holds it (broken, or a pooling proxy switched sessions)"
                );
                lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                tracing::error!(stack, error = %pg_message(&e), "lost the stack lock: its database session failed");
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

async fn unlock(
    client: &Client,
    stack: &str,
    key: i64,
    token: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM preview_envs_locks WHERE stack = $1 AND token = $2",
            &[&stack, &token],
        )
        .await?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await?;
    Ok(())
}

#[async_trait]
impl StackLock for PgLock {
    async fn release(mut self: Box<Self>) -> Result<(), StateError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        self.released = true;
        // Closing the session releases the lock in any case; this makes it prompt
        // and removes the holder record. A session that already ended (broken
        // lock, server restart) holds nothing any more.
        match unlock(&self.client, &self.stack, self.key, &self.token).await {
            Err(e) if self.client.is_closed() => {
                tracing::warn!(stack = %self.stack, error = %pg_message(&e), "the lock's session had already ended");
                Ok(())
            }
            other => other,
        }
        .map_err(|e| StateError::Io {
                backend: "postgres".into(),
                message: format!(
                    "cannot release the lock of stack {} (it is released when the session closes): {}",
                    self.stack,
                    pg_message(&e)
                ),
                source: Some(Box::new(e)),
            })
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if self.released {
            return;
        }
        // Dropping the last client handle closes the session, which releases the
        // lock; remove the holder record first when a runtime is at hand.
        let (client, stack, key, token) = (
            self.client.clone(),
            self.stack.clone(),
            self.key,
            self.token.clone(),
        );
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = unlock(&client, &stack, key, &token).await;
            });
        }
    }
}

/// Terminates the session holding `stack`'s lock; returns who held it.
pub(crate) async fn break_lock(
    backend: &PgBackend,
    stack: &str,
) -> Result<Option<String>, StateError> {
    let client = backend.new_connection().await?;
    let err = |what: String, e: tokio_postgres::Error| backend.io(what, Some(e));
    let holder = find_holder(&client, stack)
        .await
        .map_err(|e| err(format!("break-lock {stack}: cannot find the holder"), e))?;
    let result = match &holder {
        Some((session, _)) => {
            let terminated: bool = client
                .query_one("SELECT pg_terminate_backend($1)", &[session])
                .await
                .map_err(|e| {
                    err(
                        format!(
                            "break-lock {stack}: cannot terminate PostgreSQL session {session} holding the lock (a superuser, the same role or a member of pg_signal_backend must run SELECT pg_terminate_backend({session}))"
                        ),
                        e,
                    )
                })?
                .get(0);
            if !terminated {
                tracing::warn!(
                    stack,
                    session,
                    "the session holding the lock was already gone"
                );
            }
            // Wait until the server has dropped the session's locks.
            for _ in 0..50 {
                if find_holder(&client, stack).await.ok().flatten().is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            holder.map(|(_, text)| text)
        }
        None => None,
    };
    client
        .execute("DELETE FROM preview_envs_locks WHERE stack = $1", &[&stack])
        .await
        .map_err(|e| {
            err(
                format!("break-lock {stack}: cannot remove the holder record"),
                e,
            )
        })?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_stack_and_stable() {
        assert_ne!(advisory_key("a"), advisory_key("b"));
        assert_eq!(advisory_key("preview-pr-1"), advisory_key("preview-pr-1"));
        // Fixed value: changing the derivation would let old and new runs lock
        // different keys for the same stack.
        let digest = Sha256::digest(b"preview-envs:preview-pr-1");
        let expected = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        assert_eq!(advisory_key("preview-pr-1"), expected);
    }

    #[test]
    fn pg_locks_ids_split_the_key() {
        assert_eq!(
            pg_locks_ids(0x0102_0304_0506_0708),
            (0x0102_0304, 0x0506_0708)
        );
        assert_eq!(pg_locks_ids(-1), (u32::MAX, u32::MAX));
    }

    #[test]
    fn transaction_pooling_is_detected() {
        assert!(check_session_pinning(&[]).is_ok());
        assert!(check_session_pinning(&[42, 42, 42]).is_ok());
        let err = check_session_pinning(&[42, 43, 42]).expect_err("pooled");
        assert!(err.contains("pool_mode=transaction"), "{err}");
        assert!(err.contains("42, 43, 42"), "{err}");
        assert!(err.contains("pool_mode=session"), "{err}");
    }
}
