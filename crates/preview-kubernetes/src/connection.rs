//! Builds the HTTP client stack for a cluster connection.
//!
//! The same layers kube's default stack uses (base URI, authentication, extra
//! headers) over a rustls connector, with these differences, each measured by
//! `scripts/bench.sh`:
//! - sockets set `TCP_NODELAY`: without it small requests on a kept-alive
//!   connection wait for delayed ACKs (tens of milliseconds per request);
//! - the TLS connection offers HTTP/2 as well as HTTP/1.1 (ALPN), so concurrent
//!   requests share one connection where the server speaks HTTP/2 (the API server
//!   does) instead of opening, and TLS-handshaking, one connection each;
//! - a [`FirstRequestGate`] holds a new client's requests until its first one has
//!   been answered, so that the burst of concurrent GETs at the start of a run
//!   finds that one connection established instead of racing to open one each
//!   (one TLS handshake per run instead of one per concurrent request);
//! - HTTP/2 keep-alive pings while requests are in flight: a connection whose
//!   pings go unanswered for [`KEEPALIVE_TIMEOUT`] is closed and its requests
//!   fail, instead of waiting forever on a network path that drops packets
//!   (a run hung with its writes unacknowledged until a fault test cut the
//!   path for good: `crates/stacks-cli/tests/cluster_faults.rs`);
//! - a request counter counts every attempt sent;
//! - in front of it, the retry policy of [`crate::retry`]: kube's own for 429,
//!   503 and 504 answers (an API server out of breath: 500 PR stacks applied
//!   at once on a 2-core machine got 147 `504 Timeout` answers without it),
//!   retried with exponential backoff and jitter, honouring `Retry-After`, at
//!   most [`RETRIES`] times; and requests that could not connect to a server
//!   that answered before (an API server restarting), tried again for up to
//!   [`UNREACHABLE_RETRY_FOR`](crate::retry::UNREACHABLE_RETRY_FOR). Every
//!   request the engine sends is idempotent (GET, server-side apply,
//!   conditional DELETE), so a retry cannot do something twice.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use tower::{Layer, Service, ServiceBuilder};

use super::counting::RequestCounts;

pub use crate::retry::RETRIES;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// How often a connection with requests in flight is pinged (HTTP/2 PING).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);

/// How long a ping may go unanswered before its connection is given up. Longer
/// than a short loss of the path (TCP retransmits through one of 15 s, and the
/// connection carries on), short enough that a run whose path is gone ends.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// A client for `config` whose requests are counted in `counts`.
pub fn client(config: kube::Config, counts: &RequestCounts) -> Result<kube::Client, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let tls = config
        .rustls_client_config()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match config.tls_server_name.as_deref() {
        Some(name) => {
            let name = rustls_pki_types::ServerName::try_from(name.to_owned())
                .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_all_versions().wrap_connector(http);
    let hyper_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .http2_keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .build(https);
    let retry = crate::retry::ApiRetry::new()?;
    let service = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(retry))
        .layer(counts.layer())
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .auth_layer()
                .map_err(|e| format!("authentication: {e}"))?,
        )
        .layer(
            config
                .extra_headers_layer()
                .map_err(|e| format!("headers: {e}"))?,
        )
        .layer(FirstRequestGate::default())
        .map_err(|e: hyper_util::client::legacy::Error| -> tower::BoxError { Box::new(e) })
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Lets a client's first request through alone and holds the requests that
/// arrive meanwhile until it has been answered (or failed, or was dropped);
/// from then on every request passes straight through.
///
/// Without it, the concurrent reads at the start of a run each find the
/// connection pool empty and open their own connection: a TCP connect and a
/// full TLS handshake each (an RSA signature on the server, key exchange on
/// both sides). With it, the first answer leaves one established connection in
/// the pool, which HTTP/2 then shares among all the others. The cost is one
/// round trip of latency for the requests that waited.
#[derive(Clone, Debug, Default)]
pub struct FirstRequestGate(Arc<GateState>);

#[derive(Debug)]
struct GateState {
    /// Some request has been let through as the first one.
    leader: AtomicBool,
    /// The first request has finished: everything passes.
    open: tokio::sync::watch::Sender<bool>,
}

impl Default for GateState {
    fn default() -> Self {
        GateState {
            leader: AtomicBool::new(false),
            open: tokio::sync::watch::Sender::new(false),
        }
    }
}

/// Held by the first request; opens the gate when dropped (answered, failed or
/// cancelled alike).
struct OpensOnDrop(Arc<GateState>);

impl Drop for OpensOnDrop {
    fn drop(&mut self) {
        self.0.open.send_replace(true);
    }
}

impl FirstRequestGate {
    fn is_open(&self) -> bool {
        *self.0.open.borrow()
    }

    /// Waits until this request may go: `Some` for the first request (which
    /// opens the gate when the guard is dropped), `None` for the others.
    async fn enter(&self) -> Option<OpensOnDrop> {
        if !self.0.leader.swap(true, Ordering::AcqRel) {
            return Some(OpensOnDrop(self.0.clone()));
        }
        let mut open = self.0.open.subscribe();
        // The sender lives as long as `self`, so this only ends when open.
        let _ = open.wait_for(|o| *o).await;
        None
    }
}

impl<S> Layer<S> for FirstRequestGate {
    type Service = GatedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GatedService {
            inner,
            gate: self.clone(),
        }
    }
}

/// Service wrapper produced by [`FirstRequestGate`].
#[derive(Clone, Debug)]
pub struct GatedService<S> {
    inner: S,
    gate: FirstRequestGate,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> Service<Request<B>> for GatedService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.gate.is_open() {
            return Box::pin(self.inner.call(req));
        }
        // Keep the service that was polled ready for this request (tower's
        // contract) and leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let gate = self.gate.clone();
        Box::pin(async move {
            let guard = gate.enter().await;
            let response = ready.call(req).await;
            drop(guard);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Records when each request starts and finishes; answers request `slow`
    /// after a minute and the others after a millisecond.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Recorded {
        fn log(&self) -> Vec<String> {
            self.0.lock().map(|l| l.clone()).unwrap_or_default()
        }
    }

    impl Service<Request<&'static str>> for Recorded {
        type Response = &'static str;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Result<&'static str, Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, req: Request<&'static str>) -> Self::Future {
            let log = self.0.clone();
            Box::pin(async move {
                let name = *req.body();
                log.lock().map(|mut l| l.push(format!("start {name}"))).ok();
                let delay = if name == "slow" { 60_000 } else { 1 };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                log.lock().map(|mut l| l.push(format!("end {name}"))).ok();
                Ok(name)
            })
        }
    }

    fn req(name: &'static str) -> Request<&'static str> {
        Request::builder().body(name).expect("request")
    }

    #[tokio::test]
    async fn the_first_request_goes_alone_then_the_others_concurrently() {
        let inner = Recorded::default();
        let svc = FirstRequestGate::default().layer(inner.clone());
        let calls: Vec<_> = ["a", "b", "c"]
            .into_iter()
            .map(|n| svc.clone().call(req(n)))
            .collect();
        let answers = futures::future::join_all(calls).await;
        assert!(answers.iter().all(Result::is_ok));
        let log = inner.log();
        assert_eq!(log[..2], ["start a", "end a"], "{log:?}");
        assert_eq!(log[2..4], ["start b", "start c"], "{log:?}");
        assert!(svc.gate.is_open(), "later requests pass straight through");
    }

    #[tokio::test]
    async fn a_dropped_first_request_opens_the_gate() {
        let inner = Recorded::default();
        let svc = FirstRequestGate::default().layer(inner.clone());
        let first = svc.clone().call(req("slow"));
        let second = svc.clone().call(req("b"));
        let (first, second) = tokio::join!(
            tokio::time::timeout(Duration::from_millis(20), first),
            tokio::time::timeout(Duration::from_secs(10), second),
        );
        assert!(first.is_err(), "the slow request was dropped");
        assert!(matches!(second, Ok(Ok("b"))), "{second:?}");
    }
}
