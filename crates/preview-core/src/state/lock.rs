//! Waiting for a stack lock: retry with capped exponential backoff and jitter
//! (the one schedule, [`crate::retry::Backoff`]).

use std::time::Duration;

use tokio::time::Instant;

use super::{StackLock, StateBackend, StateError};
use crate::retry::Backoff;

/// The pauses between attempts: from 100 ms, doubled up to 2 s, with jitter.
const BACKOFF: Backoff = Backoff {
    first: Duration::from_millis(100),
    max: Duration::from_secs(2),
};

/// Runs `work` under `stack`'s lock (taken with [`lock_with_timeout`]; `work`,
/// a future, does nothing before it is awaited here), then releases the lock
/// however `work` ended. An error of `work` wins over an error releasing the
/// lock. The one take-run-release of the engine and the state commands.
pub async fn under_lock<T, E: From<StateError>>(
    backend: &dyn StateBackend,
    stack: &str,
    timeout: Duration,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let lock = lock_with_timeout(backend, stack, timeout).await?;
    let result = work.await;
    let released = lock.release().await;
    let value = result?;
    released?;
    Ok(value)
}

/// Takes `stack`'s lock, retrying while another run holds it, for up to
/// `timeout` (zero fails fast). The final
/// [`StateError::Locked`] names the holder (host, pid, start time) and how long
/// this run waited. Other errors are returned at once.
pub async fn lock_with_timeout(
    backend: &dyn StateBackend,
    stack: &str,
    timeout: Duration,
) -> Result<Box<dyn StackLock>, StateError> {
    let deadline = Instant::now() + timeout;
    let mut delays = BACKOFF.delays();
    let mut announced = false;
    loop {
        match backend.lock(stack).await {
            Err(StateError::Locked { stack, holder }) => {
                let now = Instant::now();
                if now >= deadline {
                    let holder = if timeout.is_zero() {
                        holder
                    } else {
                        format!(
                            "{holder} (waited {})",
                            humantime::format_duration(Duration::from_secs(timeout.as_secs()))
                        )
                    };
                    return Err(StateError::Locked { stack, holder });
                }
                if !announced {
                    tracing::info!(%stack, %holder, "stack is locked; waiting");
                    announced = true;
                }
                let delay = delays.next().unwrap_or(BACKOFF.max);
                tokio::time::sleep(delay.min(deadline - now)).await;
            }
            other => return other,
        }
    }
}
