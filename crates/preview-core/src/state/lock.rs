//! Waiting for a stack lock: retry with capped exponential backoff and jitter.

use std::time::Duration;

use tokio::time::Instant;

use super::{StackLock, StateBackend, StateError};

/// First pause between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between attempts.
const MAX_DELAY: Duration = Duration::from_secs(2);

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
/// `timeout` (`--lock-timeout`; zero fails fast). The final
/// [`StateError::Locked`] names the holder (host, pid, start time) and how long
/// this run waited. Other errors are returned at once.
pub async fn lock_with_timeout(
    backend: &dyn StateBackend,
    stack: &str,
    timeout: Duration,
) -> Result<Box<dyn StackLock>, StateError> {
    let deadline = Instant::now() + timeout;
    let mut delay = FIRST_DELAY;
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
                tokio::time::sleep(jittered(delay).min(deadline - now)).await;
                delay = (delay * 2).min(MAX_DELAY);
            }
            other => return other,
        }
    }
}

/// `delay` scaled by a random factor in [0.75, 1.25), so waiting runs spread out.
fn jittered(delay: Duration) -> Duration {
    let factor = 0.75 + rand::random::<f64>() * 0.5;
    delay.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(750) && d < Duration::from_millis(1250));
        }
    }
}
