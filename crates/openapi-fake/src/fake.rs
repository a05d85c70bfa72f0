//! A fake's start-up: its description, its in-memory state behind a lock and its
//! base URL ([`Shared`]), served on a free loopback port ([`start`]).

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::Spec;
use crate::http::{Served, serve};

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

/// Starts a fake on `127.0.0.1:0` with `spec` and a default state, answering each
/// request with `respond`; `name` labels connection errors in the logs. The
/// server runs until the returned [`Served`] drops.
pub async fn start<S, H, F>(
    spec: Spec,
    name: &'static str,
    respond: H,
) -> std::io::Result<(Arc<Shared<S>>, Served)>
where
    S: Default + Send + 'static,
    H: Fn(Arc<Shared<S>>, Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    Served::start(|base_url, listener| {
        let shared = Arc::new(Shared {
            spec,
            state: Mutex::new(S::default()),
            base_url,
        });
        let served = Arc::clone(&shared);
        let serve = serve(listener, name, move |request| {
            respond(Arc::clone(&served), request)
        });
        (shared, serve)
    })
    .await
}
