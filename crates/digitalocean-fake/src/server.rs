//! HTTP handling: request parsing, authentication, validation of the request and
//! of the fake's own response against the description, fault injection.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use openapi_fake::fake::record_violations;
use openapi_fake::faults::take_first;
use openapi_fake::http::{header_text, parse_query, read_body, recorded_body};
use serde_json::{Value, json};

use crate::model::{Fault, RecordedRequest, State};
use crate::{clusters, records};

/// State shared by all connections.
pub(crate) type Shared = openapi_fake::fake::Shared<State>;

/// What the server sends back.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
    /// A non-JSON body: (media type, text).
    pub raw: Option<(&'static str, String)>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
            raw: None,
        }
    }

    pub fn text(status: u16, media_type: &'static str, text: String) -> Self {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
            raw: Some((media_type, text)),
        }
    }

    pub fn no_content() -> Self {
        Reply {
            status: 204,
            body: None,
            headers: Vec::new(),
            raw: None,
        }
    }

    /// An `error` body: `{"id": …, "message": …}`.
    pub fn error(status: u16, id: &str, message: &str) -> Self {
        Reply::json(status, json!({"id": id, "message": message}))
    }

    pub fn not_found() -> Self {
        Reply::error(
            404,
            "not_found",
            "The resource you requested could not be found.",
        )
    }

    pub fn unprocessable(message: &str) -> Self {
        Reply::error(422, "unprocessable_entity", message)
    }
}

/// A validated request handed to the endpoint code.
pub(crate) struct Call<'a> {
    pub method: &'a str,
    pub segments: Vec<&'a str>,
    pub query: &'a [(String, String)],
    pub body: Value,
    pub base: &'a str,
    pub path: &'a str,
}

impl Call<'_> {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn dispatch(state: &mut State, call: &Call<'_>) -> Reply {
    match call.segments.as_slice() {
        ["v2", "domains", _, "records", ..] => records::handle(state, call),
        ["v2", "kubernetes", "clusters", ..] => clusters::handle(state, call),
        _ => Reply::not_found(),
    }
}

pub(crate) async fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_ascii_uppercase();
    let path = request.uri().path().to_string();
    let query = parse_query(request.uri().query());
    let authorization = header_text(&request, header::AUTHORIZATION);
    let content_type = header_text(&request, header::CONTENT_TYPE);
    let body = read_body(request.into_body()).await;
    let token = authorization
        .as_deref()
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_string);
    let recorded_body = recorded_body(&body);

    let mut state = shared.lock();
    let label = format!("{method} {path}");
    let reply = (|| {
        let Some(operation) = shared.spec.operation(&method, &path) else {
            state.violations.push(format!(
                "{label}: no such operation in the OpenAPI description"
            ));
            return Reply::not_found();
        };

        // Authentication (every operation requires `bearer_auth`).
        match token.as_deref() {
            Some(token) if !token.is_empty() && state.tokens.iter().any(|t| t == token) => {}
            _ => {
                return Reply::error(401, "unauthorized", "Unable to authenticate you");
            }
        }

        let problems =
            shared
                .spec
                .check_request(&operation, &path, &query, content_type.as_deref(), &body);
        if !problems.is_empty() {
            let message = format!(
                "digitalocean-fake: the request does not match the OpenAPI description: {}",
                problems.join("; ")
            );
            record_violations(
                &mut state.violations,
                &format!("{label}: request: "),
                &problems,
            );
            return Reply::error(400, "bad_request", &message);
        }

        let reply = if let Some(fault) = take_first(
            &mut state.faults,
            |f: &Fault| f.matches(&method, &path),
            |f| &mut f.times,
        ) {
            Reply {
                status: fault.status,
                body: Some(json!({"id": fault.id, "message": fault.message})),
                headers: fault.headers,
                raw: None,
            }
        } else {
            let call = Call {
                method: &method,
                segments: path.trim_start_matches('/').split('/').collect(),
                query: &query,
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                base: &shared.base_url,
                path: &path,
            };
            dispatch(&mut state, &call)
        };

        let problems = match &reply.raw {
            Some((media_type, _)) => {
                shared
                    .spec
                    .check_media_response(&operation, reply.status, media_type)
            }
            None => shared
                .spec
                .check_response(&operation, reply.status, reply.body.as_ref()),
        };
        if problems.is_empty() {
            reply
        } else {
            record_violations(&mut state.violations, &format!("{label}: "), &problems);
            Reply::error(
                500,
                "server_error",
                "digitalocean-fake produced a response that does not match the OpenAPI description",
            )
        }
    })();
    state.requests.push(RecordedRequest {
        method,
        path,
        query,
        body: recorded_body,
        authenticated: token.is_some(),
        status: reply.status,
    });
    drop(state);

    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(status)
        .header("ratelimit-limit", "5000")
        .header("ratelimit-reset", "1444931833");
    let mut has_remaining = false;
    for (name, value) in &reply.headers {
        has_remaining |= name.eq_ignore_ascii_case("ratelimit-remaining");
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !has_remaining {
        builder = builder.header("ratelimit-remaining", "4999");
    }
    let payload = match (&reply.body, &reply.raw) {
        (Some(body), _) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
            Bytes::from(body.to_string())
        }
        (None, Some((media_type, text))) => {
            builder = builder.header(header::CONTENT_TYPE, *media_type);
            Bytes::from(text.clone())
        }
        (None, None) => Bytes::new(),
    };
    builder
        .body(Full::new(payload))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
