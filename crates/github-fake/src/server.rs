//! HTTP plumbing: accept loop, request parsing, header/body checks, fault injection,
//! response validation.

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use openapi_fake::fake::record_violations;
use openapi_fake::faults::take_first;
use openapi_fake::http::{header_text, parse_query, read_body, recorded_body};
use serde_json::{Value, json};

use crate::model::{Fault, RecordedRequest, State};
use crate::routes::{Call, Reply, handle};

/// The API version the CLI must pin.
pub const API_VERSION: &str = "2022-11-28";

/// State shared by all connections.
pub(crate) type Shared = openapi_fake::fake::Shared<State>;

pub(crate) async fn respond(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = request.method().as_str().to_ascii_uppercase();
    let path = request.uri().path().to_string();
    let query = parse_query(request.uri().query());
    let authorization = header_text(&request, header::AUTHORIZATION);
    let user_agent = header_text(&request, header::USER_AGENT);
    let accept = header_text(&request, header::ACCEPT);
    let content_type = header_text(&request, header::CONTENT_TYPE);
    let api_version = header_text(&request, "x-github-api-version");
    let body = read_body(request.into_body()).await;
    let token = authorization.as_deref().and_then(|value| {
        value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("token "))
            .map(str::to_string)
    });
    let recorded_body = recorded_body(&body);

    let mut state = shared.lock();
    state.requests.push(RecordedRequest {
        method: method.clone(),
        path: path.clone(),
        query: query.clone(),
        body: recorded_body,
        token: token.clone(),
        user_agent: user_agent.clone(),
        accept: accept.clone(),
        api_version: api_version.clone(),
    });
    let label = format!("{method} {path}");

    let reply = (|| {
        let Some(operation) = shared.spec.operation(&method, &path) else {
            state.violations.push(format!(
                "{label}: no such operation in the OpenAPI description"
            ));
            return Reply::error(404, "Not Found");
        };

        // Contract headers the CLI promises to send.
        if user_agent.as_deref().is_none_or(str::is_empty) {
            state
                .violations
                .push(format!("{label}: no User-Agent header"));
            return Reply::error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            );
        }
        if accept.as_deref() != Some("application/vnd.github+json") {
            state.violations.push(format!(
                "{label}: Accept must be application/vnd.github+json (got {accept:?})"
            ));
        }
        match api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => {
                return Reply::error(400, &format!("API version {other} is not supported."));
            }
            None => state
                .violations
                .push(format!("{label}: no X-GitHub-Api-Version header")),
        }

        // Authentication.
        let login = match token.as_deref() {
            None | Some("") => return Reply::error(401, "Requires authentication"),
            Some(token) => match state.tokens.get(token) {
                Some(login) => login.clone(),
                None if state.require_known_token => return Reply::error(401, "Bad credentials"),
                None => state.default_login.clone(),
            },
        };

        // Request validation against the description.
        let problems =
            shared
                .spec
                .check_request(&operation, &path, &query, content_type.as_deref(), &body);
        if !problems.is_empty() {
            let errors: Vec<Value> = problems
                .iter()
                .map(|p| json!({"resource": operation.id, "code": "invalid", "message": p}))
                .collect();
            record_violations(
                &mut state.violations,
                &format!("{label}: request: "),
                &problems,
            );
            return Reply {
                status: 422,
                body: Some(json!({
                    "message": "Validation Failed (github-fake: request does not match the OpenAPI description)",
                    "errors": errors,
                    "documentation_url": "https://docs.github.com/rest"
                })),
                headers: Vec::new(),
            };
        }

        // Injected failures (validated like every other response below).
        let reply = if let Some(fault) = take_first(
            &mut state.faults,
            |f: &Fault| f.matches(&method, &path),
            |f| &mut f.times,
        ) {
            Reply {
                status: fault.status,
                body: Some(fault.body),
                headers: fault.headers,
            }
        } else {
            let parsed_body = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let call = Call {
                method: &method,
                segments: path.trim_start_matches('/').split('/').collect(),
                query: &query,
                body: parsed_body,
                login,
                base: &shared.base_url,
                path: &path,
            };
            handle(&mut state, &shared.spec, &call)
        };

        let problems = shared
            .spec
            .check_response(&operation, reply.status, reply.body.as_ref());
        if problems.is_empty() {
            reply
        } else {
            record_violations(&mut state.violations, &format!("{label}: "), &problems);
            Reply::error(
                500,
                "github-fake produced a response that does not match the OpenAPI description",
            )
        }
    })();
    drop(state);

    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder()
        .status(status)
        .header("x-github-api-version-selected", API_VERSION)
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-resource", "core");
    let mut has_remaining = false;
    for (name, value) in &reply.headers {
        has_remaining |= name.eq_ignore_ascii_case("x-ratelimit-remaining");
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !has_remaining {
        builder = builder.header("x-ratelimit-remaining", "4999");
    }
    let payload = match &reply.body {
        Some(body) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    builder
        .body(Full::new(payload))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
