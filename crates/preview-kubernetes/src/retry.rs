//! When a request to the API server is sent again: the retry policy of the
//! connection stack ([`crate::connection`]).
//!
//! - Answers 429, 503 and 504 (an API server out of breath) are retried as
//!   kube's own [`RetryPolicy`] does: exponential backoff with jitter,
//!   honouring `Retry-After`, at most [`RETRIES`] times.
//! - A request that could not be sent because the connection to the API
//!   server could not be made (refused, reset, timed out: the API server is
//!   restarting, or a load balancer in front of it moves) is retried with
//!   backoff (250 ms doubling to 4 s, jittered) while the server has been
//!   unreachable for less than [`UNREACHABLE_RETRY_FOR`], counted for the
//!   whole client from the start of the first attempt that failed (an answer
//!   to any request resets it), and only once this client has had an answer
//!   from the server: a wrong address or a server that was never there still
//!   fails at once. Such a request never reached the server, so sending it
//!   again cannot do anything twice, whatever its method. A server unreachable
//!   for longer gets one attempt per request: a run whose network is gone ends
//!   instead of retrying each of its last writes for the whole window.
//! - A request the server refused with an HTTP/2 GOAWAY without error (an API
//!   server shutting down gracefully: streams above the GOAWAY's last stream
//!   id were not processed, RFC 9113 §6.8) is retried the same way: it never
//!   ran, so it cannot run twice.
//!
//! Found by the fault tests (`crates/stacks-cli/tests/cluster_faults.rs`): a
//! kube-apiserver restarted in the middle of an `up` (down for a few seconds)
//! failed every step in flight with `client error (Connect)` (or, sent as it
//! shut down, `http2 error: connection error received: not a result of an
//! error`: its GOAWAY), and the run's last state write and its lock release
//! with them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use kube::client::retry::RetryPolicy;
use tokio::time::Instant;
use tower::BoxError;
use tower::retry::Policy;

/// Retries of a request answered 429, 503 or 504.
pub const RETRIES: u32 = 6;

/// How long a request that cannot reach the API server is tried again.
pub const UNREACHABLE_RETRY_FOR: Duration = Duration::from_secs(30);

const FIRST_DELAY: Duration = Duration::from_millis(250);
const MAX_DELAY: Duration = Duration::from_secs(4);

/// The retry policy of one client (cloned for each request, as tower does).
#[derive(Clone)]
pub struct ApiRetry {
    statuses: RetryPolicy,
    /// Some request of this client has been answered.
    answered: Arc<AtomicBool>,
    /// Since when this client has found the server unreachable (the start of
    /// the first attempt that could not connect; cleared by any answer).
    unreachable_since: Arc<Mutex<Option<Instant>>>,
    /// This request: when its current attempt started, and the next pause.
    attempt_started: Instant,
    delay: Duration,
}

impl ApiRetry {
    /// A policy for a new client.
    pub fn new() -> Result<ApiRetry, String> {
        let statuses = RetryPolicy::new(
            Duration::from_millis(200),
            Duration::from_secs(10),
            RETRIES,
            true,
        )
        .map_err(|e| format!("retry policy: {e}"))?;
        Ok(ApiRetry {
            statuses,
            answered: Arc::new(AtomicBool::new(false)),
            unreachable_since: Arc::new(Mutex::new(None)),
            attempt_started: Instant::now(),
            delay: FIRST_DELAY,
        })
    }

    /// The pause before trying again a request that could not connect, or
    /// `None` when it is not to be tried again.
    fn unreachable_pause(&mut self) -> Option<Duration> {
        if !self.answered.load(Ordering::Acquire) {
            return None;
        }
        let since = {
            let mut since = self
                .unreachable_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *since.get_or_insert(self.attempt_started)
        };
        let left = UNREACHABLE_RETRY_FOR.checked_sub(since.elapsed())?;
        let pause = self
            .delay
            .mul_f64(0.75 + rand::random::<f64>() * 0.5)
            .min(left);
        self.delay = (self.delay * 2).min(MAX_DELAY);
        self.attempt_started = Instant::now() + pause;
        Some(pause)
    }

    /// The server answered: it is reachable again.
    fn answered(&self) {
        self.answered.store(true, Ordering::Release);
        if let Ok(mut since) = self.unreachable_since.lock() {
            *since = None;
        }
    }
}

/// Whether `error` means the request could not be sent: the connection to
/// the server could not be made (refused, reset, timed out, unreachable).
pub fn is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut connecting = false;
    while let Some(e) = cause {
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connecting |= h.is_connect();
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && connecting
        {
            use std::io::ErrorKind::*;
            return matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | NotConnected
            );
        }
        cause = e.source();
    }
    false
}

/// Whether `error` is an HTTP/2 GOAWAY without error from the server: the
/// request's stream was above the last one the server processed (h2 fails
/// exactly those streams with the GOAWAY; the processed ones that are cut off
/// fail as a broken pipe), so the server never saw it.
pub fn is_not_processed(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        cause = e.source();
    }
    false
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for ApiRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        match result {
            Ok(_) => {
                self.answered();
                self.statuses.retry(req, result)
            }
            Err(e) if is_unreachable(e.as_ref()) || is_not_processed(e.as_ref()) => {
                let pause = self.unreachable_pause()?;
                tracing::warn!(
                    method = %req.method(),
                    path = req.uri().path(),
                    error = %e,
                    "the API server could not be reached or did not process the request; trying again in {} ms",
                    pause.as_millis()
                );
                Some(tokio::time::sleep(pause))
            }
            Err(_) => None,
        }
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Called right before each attempt is sent (tower keeps the clone).
        self.attempt_started = Instant::now();
        Policy::<Request<Body>, Response<Res>, BoxError>::clone_request(&mut self.statuses, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> BoxError {
        Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))
    }

    #[test]
    fn a_bare_io_error_is_not_a_connect_error() {
        // Only errors the client raised while connecting count.
        assert!(!is_unreachable(refused().as_ref()));
        let other: BoxError = "bad request".into();
        assert!(!is_unreachable(other.as_ref()));
    }

    #[test]
    fn only_a_goaway_without_error_means_not_processed() {
        // A stream reset (even without error) or any other error may have run.
        let reset: BoxError = Box::new(h2::Error::from(h2::Reason::NO_ERROR));
        assert!(!is_not_processed(reset.as_ref()));
        let refused_stream: BoxError = Box::new(h2::Error::from(h2::Reason::REFUSED_STREAM));
        assert!(!is_not_processed(refused_stream.as_ref()));
        assert!(!is_not_processed(refused().as_ref()));
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        let err = crate::test_support::refused_request("/version").await;
        let boxed: BoxError = Box::new(err);
        assert!(is_unreachable(boxed.as_ref()), "{boxed:?}");
    }

    #[tokio::test]
    async fn unreachable_requests_are_retried_only_after_an_answer_and_for_a_while() {
        let mut policy = ApiRetry::new().expect("policy");
        assert_eq!(
            policy.unreachable_pause(),
            None,
            "never answered: fail at once"
        );
        policy.answered();
        let pauses: Vec<Duration> = (0..6).filter_map(|_| policy.unreachable_pause()).collect();
        assert_eq!(pauses.len(), 6);
        assert!(pauses[0] < Duration::from_millis(320), "{pauses:?}");
        assert!(pauses[3] > pauses[0] * 4, "backs off: {pauses:?}");
        assert!(
            pauses.iter().all(|p| *p <= MAX_DELAY.mul_f64(1.25)),
            "{pauses:?}"
        );
        // Clones (one per request, as tower makes them) share the client's view.
        let mut other = policy.clone();
        assert!(other.answered.load(Ordering::Acquire));
        // Unreachable for the whole window, counted from the first failed
        // attempt's start: no more retries, for this request or any other.
        *policy.unreachable_since.lock().expect("lock") =
            Some(Instant::now() - UNREACHABLE_RETRY_FOR);
        assert_eq!(policy.unreachable_pause(), None, "gave up after the window");
        assert_eq!(other.unreachable_pause(), None, "for every request");
        // An answer makes it reachable again.
        policy.answered();
        assert!(other.unreachable_pause().is_some());
    }
}
