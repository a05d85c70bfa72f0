//! A tower layer that counts the requests a client sends, by verb.
//!
//! Server-side dry-runs (`dryRun=All`) are counted apart from writes: they do not
//! change the cluster, but they cost a round trip, so benchmarks report them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use tower::{Layer, Service};

#[derive(Debug, Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    dry_runs: AtomicU64,
}

/// Shared request counters; cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct RequestCounts(Arc<Counters>);

/// A snapshot of [`RequestCounts`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CountSnapshot {
    /// GET / LIST / WATCH.
    pub reads: u64,
    /// POST / PUT / PATCH / DELETE that are not dry-runs.
    pub writes: u64,
    /// Server-side dry-run requests.
    pub dry_runs: u64,
}

impl RequestCounts {
    /// Current counts.
    pub fn snapshot(&self) -> CountSnapshot {
        CountSnapshot {
            reads: self.0.reads.load(Ordering::Relaxed),
            writes: self.0.writes.load(Ordering::Relaxed),
            dry_runs: self.0.dry_runs.load(Ordering::Relaxed),
        }
    }

    /// The layer to add to a client's service stack.
    pub fn layer(&self) -> CountingLayer {
        CountingLayer(self.clone())
    }

    fn record<B>(&self, req: &Request<B>) {
        let c = &self.0;
        let counter = if req.method() == Method::GET || req.method() == Method::HEAD {
            &c.reads
        } else if req.uri().query().is_some_and(|q| q.contains("dryRun=")) {
            &c.dry_runs
        } else {
            &c.writes
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Tower layer produced by [`RequestCounts::layer`].
#[derive(Clone, Debug)]
pub struct CountingLayer(RequestCounts);

impl<S> Layer<S> for CountingLayer {
    type Service = CountingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountingService {
            inner,
            counts: self.0.clone(),
        }
    }
}

/// Service wrapper produced by [`CountingLayer`].
#[derive(Clone, Debug)]
pub struct CountingService<S> {
    inner: S,
    counts: RequestCounts,
}

impl<S, B> Service<Request<B>> for CountingService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        self.counts.record(&req);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_verb_and_dry_run() {
        let counts = RequestCounts::default();
        let req = |m: Method, uri: &str| {
            Request::builder()
                .method(m)
                .uri(uri)
                .body(())
                .expect("request")
        };
        counts.record(&req(Method::GET, "/api/v1/namespaces/x"));
        counts.record(&req(
            Method::PATCH,
            "/api/v1/namespaces/x?fieldManager=a&dryRun=All",
        ));
        counts.record(&req(Method::PATCH, "/api/v1/namespaces/x?fieldManager=a"));
        counts.record(&req(Method::DELETE, "/api/v1/namespaces/x"));
        assert_eq!(
            counts.snapshot(),
            CountSnapshot {
                reads: 1,
                writes: 2,
                dry_runs: 1
            }
        );
    }
}
