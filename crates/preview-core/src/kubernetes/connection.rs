//! Builds the HTTP client stack for a cluster connection.
//!
//! The same layers kube's default stack uses (base URI, authentication, extra
//! headers) over a rustls connector, with two differences: sockets set
//! `TCP_NODELAY` — without it small requests on a kept-alive connection wait for
//! delayed ACKs (tens of milliseconds per request) — and a request counter sits in
//! front of everything.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use tower::ServiceBuilder;

use super::counting::RequestCounts;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// A client for `config` whose requests are counted in `counts`.
pub fn client(config: kube::Config, counts: &RequestCounts) -> Result<kube::Client, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(|e| format!("TLS setup: {e}"))?;
    let hyper_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(https);
    let service = ServiceBuilder::new()
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
        .map_err(|e: hyper_util::client::legacy::Error| -> tower::BoxError { Box::new(e) })
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}
