//! The simulated node's kubelet endpoint: the one kubelet API the API server
//! calls for the engine, `GET /containerLogs/{namespace}/{pod}/{container}`
//! (what `pods/{name}/log` proxies to).
//!
//! It listens with TLS on a free loopback port; the Node reports that address
//! as its `ExternalIP` and the port as `daemonEndpoints.kubeletEndpoint.Port`
//! ([`super::node`]), and the test cluster's API server prefers `ExternalIP`
//! for kubelet connections (`--kubelet-preferred-address-types`). The API
//! server verifies no kubelet certificate when `--kubelet-certificate-authority`
//! is unset, so a certificate made with `openssl` at start-up serves.
//!
//! A log is what the test set: the [`LOG`](super::annotations::LOG) annotation
//! of the pod (or an [injection rule](super::injections)), one line per line,
//! for the first container; other containers have empty logs. As a kubelet
//! does, it serves the running or last terminated container's log and refuses
//! a container that never started ("is waiting to start"); `tailLines` and
//! `limitBytes` are honoured. No container ran: the log is the test's text.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::Ctx;
use super::annotations::Injection;
use crate::{KitError, bins};

/// The bound, not yet serving, kubelet endpoint.
pub(crate) struct Kubelet {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    port: u16,
}

impl Kubelet {
    /// Binds a free loopback port and makes a self-signed certificate for it.
    pub(crate) async fn bind() -> Result<Kubelet, KitError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| KitError::io("binding the simulated kubelet's port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| KitError::io("reading the simulated kubelet's port", e))?
            .port();
        let acceptor = tls_acceptor().await?;
        Ok(Kubelet {
            listener,
            acceptor,
            port,
        })
    }

    /// The port the Node reports.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

/// `openssl req -x509` into a temp dir, read back as a rustls server config.
async fn tls_acceptor() -> Result<TlsAcceptor, KitError> {
    let dir = tempfile::tempdir().map_err(|e| KitError::io("creating a temp dir", e))?;
    let (cert, key) = (
        dir.path().join("kubelet.crt"),
        dir.path().join("kubelet.key"),
    );
    let path = |p: &Path| p.display().to_string();
    crate::cluster::run(
        tokio::process::Command::new(bins::openssl()?)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .arg("ec_paramgen_curve:prime256v1")
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=testkit-simulated-kubelet",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(path(&key))
            .arg("-out")
            .arg(path(&cert)),
    )
    .await?;
    let bad = |what: &str, e: rustls_pki_types::pem::Error| {
        KitError::Simulator(format!("reading the kubelet's {what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .map_err(|e| bad("certificate", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate", e))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad("key", e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| KitError::Simulator(format!("the kubelet's TLS configuration: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until the task is dropped.
pub(crate) async fn serve(ctx: Arc<Ctx>, kubelet: Kubelet) {
    loop {
        let stream = match kubelet.listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "the simulated kubelet's accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = kubelet.acceptor.clone();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(error = %e, "kubelet TLS handshake failed");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let ctx = ctx.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&ctx, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(error = %e, "kubelet connection ended");
            }
        });
    }
}

async fn handle(ctx: &Ctx, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, body) = match respond(ctx, &req).await {
        Ok(log) => (StatusCode::OK, log),
        Err((status, message)) => (status, message),
    };
    tracing::debug!(path = %req.uri(), %status, "simulated kubelet request");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

type Refusal = (StatusCode, String);

async fn respond(ctx: &Ctx, req: &Request<Incoming>) -> Result<String, Refusal> {
    let path = req.uri().path();
    let parts: Vec<&str> = path.split('/').collect();
    let ["", "containerLogs", namespace, pod, container] = parts.as_slice() else {
        return Err((StatusCode::NOT_FOUND, format!("404 page not found: {path}")));
    };
    let query = LogQuery::parse(req.uri().query().unwrap_or(""));
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let found = pods.get_opt(pod).await.map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading pod {namespace}/{pod}: {e}"),
        )
    })?;
    let Some(found) = found else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} not found"),
        ));
    };
    let found = ctx.options.injections.apply(&found);
    container_log(&found, container, &query)
}

/// The query parameters of a log request that change what is served.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct LogQuery {
    /// `tailLines`: only the last N lines.
    pub tail_lines: Option<usize>,
    /// `limitBytes`: at most this many bytes.
    pub limit_bytes: Option<usize>,
    /// `previous`: the previous (terminated) instance of the container.
    pub previous: bool,
}

impl LogQuery {
    pub(crate) fn parse(query: &str) -> LogQuery {
        let mut q = LogQuery::default();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "tailLines" => q.tail_lines = value.parse().ok(),
                "limitBytes" => q.limit_bytes = value.parse().ok(),
                "previous" => q.previous = value == "true",
                _ => {}
            }
        }
        q
    }
}

/// What a kubelet answers for `container` of `pod` (pure): the log, or the
/// refusal a kubelet gives for a container that has no log yet.
pub(crate) fn container_log(
    pod: &Pod,
    container: &str,
    query: &LogQuery,
) -> Result<String, Refusal> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers = spec
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !containers.contains(&container) {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("container {container} is not valid for pod {pod_name}"),
        ));
    }
    let status = pod.status.as_ref().and_then(|s| {
        s.init_container_statuses
            .iter()
            .flatten()
            .chain(s.container_statuses.iter().flatten())
            .find(|c| c.name == container)
    });
    let not_available = || {
        (
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod_name:?} is not available"),
        )
    };
    let status = status.ok_or_else(not_available)?;
    let state = status.state.clone().unwrap_or_default();
    let last_terminated = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .filter(|t| t.container_id.as_deref().is_some_and(|id| !id.is_empty()));
    // The order of the kubelet's validateContainerLogStatus.
    if query.previous {
        if last_terminated.is_none() {
            return Err((
                StatusCode::BAD_REQUEST,
                format!(
                    "previous terminated container {container:?} in pod {pod_name:?} not found"
                ),
            ));
        }
    } else if state.running.is_none() && state.terminated.is_none() && last_terminated.is_none() {
        let reason = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .unwrap_or_else(|| "ContainerCreating".into());
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_owned(),
            "ImagePullBackOff" => "trying and failing to pull image".to_owned(),
            other => other.to_owned(),
        };
        return Err((
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod_name:?} is waiting to start: {why}"),
        ));
    }
    let first = spec
        .and_then(|s| s.containers.first())
        .map(|c| c.name.as_str());
    let log = if first == Some(container) {
        Injection::of(pod.metadata.annotations.as_ref())
            .log
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok(shape(&log, query))
}

/// The log lines, each ending in a newline, cut to `tailLines` and `limitBytes`.
fn shape(log: &str, query: &LogQuery) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let skip = query
        .tail_lines
        .map_or(0, |n| lines.len().saturating_sub(n));
    let mut out: String = lines[skip..].iter().map(|l| format!("{l}\n")).collect();
    if let Some(limit) = query.limit_bytes
        && out.len() > limit
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::annotations::LOG;

    fn pod(state: &str) -> Pod {
        serde_yaml_ng::from_str(&format!(
            "
metadata: {{name: web-1, namespace: ns, annotations: {{'{LOG}': \"one\\ntwo\\nthree\"}}}}
spec: {{containers: [{{name: web}}, {{name: sidecar}}]}}
status:
  containerStatuses:
  - {{name: web, ready: false, restartCount: 3, image: x, imageID: '', {state}}}
  - {{name: sidecar, ready: true, restartCount: 0, image: y, imageID: '', state: {{running: {{}}}}}}
"
        ))
        .expect("pod")
    }

    #[test]
    fn serves_the_annotated_log_with_tail_and_limit() {
        let p = pod("state: {running: {}}");
        assert_eq!(
            container_log(&p, "web", &LogQuery::default()),
            Ok("one\ntwo\nthree\n".into())
        );
        assert_eq!(
            container_log(&p, "web", &LogQuery::parse("tailLines=2&follow=false")),
            Ok("two\nthree\n".into())
        );
        assert_eq!(
            container_log(&p, "web", &LogQuery::parse("limitBytes=5")),
            Ok("one\nt".into())
        );
        assert_eq!(
            container_log(&p, "sidecar", &LogQuery::default()),
            Ok(String::new())
        );
    }

    #[test]
    fn a_crash_looping_container_serves_its_last_run() {
        let p = pod(
            "state: {waiting: {reason: CrashLoopBackOff}}, lastState: {terminated: {exitCode: 1, containerID: 'testkit-simulated://u/web'}}",
        );
        assert_eq!(
            container_log(&p, "web", &LogQuery::parse("tailLines=1")),
            Ok("three\n".into())
        );
    }

    #[test]
    fn a_container_that_never_started_has_no_log() {
        let p = pod("state: {waiting: {reason: ImagePullBackOff}}");
        let (status, message) =
            container_log(&p, "web", &LogQuery::default()).expect_err("refused");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            message,
            "container \"web\" in pod \"web-1\" is waiting to start: trying and failing to pull image"
        );
        let (_, message) =
            container_log(&p, "web", &LogQuery::parse("previous=true")).expect_err("refused");
        assert!(
            message.starts_with("previous terminated container"),
            "{message}"
        );
        let (_, message) = container_log(&p, "nope", &LogQuery::default()).expect_err("refused");
        assert_eq!(message, "container nope is not valid for pod web-1");
    }
}
