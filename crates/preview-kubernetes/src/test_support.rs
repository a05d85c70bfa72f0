//! What the unit tests of several modules share (tests only).

/// The error a real hyper client gets for `path` on a loopback port nothing
/// listens on (connection refused): the transport error kube wraps.
pub(crate) async fn refused_request(path: &str) -> hyper_util::client::legacy::Error {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port(); // closed again: nothing listens there
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let uri: http::Uri = format!("http://127.0.0.1:{port}{path}")
        .parse()
        .expect("uri");
    client.get(uri).await.expect_err("refused")
}
