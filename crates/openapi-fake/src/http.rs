//! HTTP plumbing shared by the fakes: start-up on a free loopback port
//! ([`Served`]), the accept loop, reading a request's headers and body, and
//! query-string decoding.

use std::convert::Infallible;
use std::future::Future;

use bytes::Bytes;
use http::header::AsHeaderName;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A fake's server task on a free loopback port; stops when dropped.
#[derive(Debug)]
pub struct Served {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Binds `127.0.0.1:0`; `make` gets the base URL (`http://127.0.0.1:PORT`)
    /// and the listener and returns the fake's shared state and its serve
    /// future, which runs as a task until the returned [`Served`] drops.
    pub async fn start<S, F>(
        make: impl FnOnce(String, TcpListener) -> (S, F),
    ) -> std::io::Result<(S, Served)>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (shared, serve) = make(format!("http://{addr}"), listener);
        let task = tokio::spawn(serve);
        Ok((shared, Served { addr, task }))
    }

    /// The bound address.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts HTTP/1 connections on `listener` until the task is aborted, answering
/// each request with `handler`. `name` labels connection errors in the logs.
pub async fn serve<H, F>(listener: TcpListener, name: &'static str, handler: H)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = handler(request);
                async move { Ok::<_, Infallible>(response.await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "{name} connection ended with an error");
            }
        });
    }
}

/// The value of header `name` as text (`None` when absent or not visible ASCII).
pub fn header_text<B>(request: &Request<B>, name: impl AsHeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The whole request body (empty when it cannot be read).
pub async fn read_body(body: Incoming) -> Bytes {
    match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

/// A body as the fakes record it: its JSON, else its text as a JSON string;
/// `None` when empty.
pub fn recorded_body(body: &[u8]) -> Option<serde_json::Value> {
    (!body.is_empty()).then(|| {
        serde_json::from_slice(body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        })
    })
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space,
/// `%XX` a byte; a malformed escape is kept as is).
pub fn decode(component: &str) -> String {
    let bytes = component.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' => out.push(b' '),
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        index += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded `key=value` pairs of a query string, in order.
pub fn parse_query(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        assert_eq!(
            parse_query(Some("environment=preview-pr-1&per_page=100&x=a%20b+c")),
            vec![
                ("environment".to_string(), "preview-pr-1".to_string()),
                ("per_page".to_string(), "100".to_string()),
                ("x".to_string(), "a b c".to_string()),
            ]
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%2A.pr.example.com"), "*.pr.example.com");
    }
}
