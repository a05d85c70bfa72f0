//! A running fake ([`Fake`]): its description, its in-memory state behind a lock
//! and its base URL ([`Shared`]), served on a free loopback port; and what can
//! stop it from starting ([`StartError`]); and how problems found in an exchange
//! are kept as violations ([`record_violations`]).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::http::{Served, serve};
use crate::{Spec, SpecError};

/// What every connection of a fake shares.
#[derive(Debug)]
pub struct Shared<S> {
    /// The API's description, which every exchange is checked against.
    pub spec: Spec,
    /// The fake's in-memory state.
    pub state: Mutex<S>,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
}

impl<S> Shared<S> {
    /// The state, also after a panic of another thread holding it (a panicking
    /// test thread must not hide the state from the others).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Errors starting a fake.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The OpenAPI description could not be loaded.
    #[error("{api}: {source}; set {env} to its location")]
    Spec {
        /// The API, e.g. `GitHub`.
        api: &'static str,
        /// The environment variable that names the description's location.
        env: &'static str,
        /// Why it could not be loaded.
        #[source]
        source: SpecError,
    },
    /// The listener could not be bound.
    #[error("cannot bind 127.0.0.1:0: {0}")]
    Bind(#[source] std::io::Error),
}

/// A running fake with state `S`. Stops when dropped.
#[derive(Debug)]
pub struct Fake<S> {
    shared: Arc<Shared<S>>,
    served: Served,
}

impl<S: Default + Send + 'static> Fake<S> {
    /// Starts a fake on `127.0.0.1:0` with `spec` and a default state, answering
    /// each request with `respond`; `name` labels connection errors in the logs.
    pub async fn start<H, F>(spec: Spec, name: &'static str, respond: H) -> Result<Self, StartError>
    where
        H: Fn(Arc<Shared<S>>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
    {
        let (shared, served) = Served::start(|base_url, listener| {
            let shared = Arc::new(Shared {
                spec,
                state: Mutex::new(S::default()),
                base_url,
            });
            let handler_state = Arc::clone(&shared);
            let serve = serve(listener, name, move |request| {
                respond(Arc::clone(&handler_state), request)
            });
            (shared, serve)
        })
        .await
        .map_err(StartError::Bind)?;
        Ok(Fake { shared, served })
    }
}

impl<S> Fake<S> {
    /// `http://127.0.0.1:PORT`: the API base URL.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.served.addr()
    }

    /// The API's description.
    pub fn spec(&self) -> &Spec {
        &self.shared.spec
    }

    /// The fake's state (see [`Shared::lock`]).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.shared.lock()
    }
}

/// Keeps each of `problems` in `violations` as `{prefix}{problem}` (e.g. prefix
/// `GET /path: request: `), for the tests to assert the list empty.
pub fn record_violations(violations: &mut Vec<String>, prefix: &str, problems: &[String]) {
    violations.extend(problems.iter().map(|problem| format!("{prefix}{problem}")));
}
