//! The API server's audit log: the policy the kit installs and a reader for it.
//!
//! The policy records every request at level `Metadata` (who, verb, URI, response
//! code; no bodies) and omits the `RequestReceived` stage, so each finished request
//! appears once with stage `ResponseComplete` (long-running watches also log
//! `ResponseStarted`). The log backend writes synchronously (`blocking` mode, the
//! v1.20 default), so a request is in the file by the time its response arrives.
//!
//! Each kit user has its own token, so tests can tell the engine's requests
//! (`admin`) from the controller-manager's (`system:kube-controller-manager`) and
//! the node simulator's (`testkit:node-simulator`).

use std::path::Path;

use serde::Deserialize;

use crate::KitError;

/// The audit policy written to `audit-policy.yaml`.
pub(crate) const POLICY: &str = "\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [\"RequestReceived\"]
rules:
- level: Metadata
";

/// One audit event, reduced to what tests count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The authenticated user name, e.g. `admin`.
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The Kubernetes verb: `get`, `list`, `watch`, `create`, `patch`, `update`, `delete`, ...
    pub verb: String,
    /// The request path and query.
    pub request_uri: String,
    /// `ResponseComplete`, `ResponseStarted` or `Panic`.
    pub stage: String,
    /// The HTTP status code, when the response has one.
    pub code: Option<u16>,
    /// The resource (plural), when the request addressed one.
    pub resource: Option<String>,
    /// The subresource (`status`, `binding`, ...), if any.
    pub subresource: Option<String>,
    /// The namespace, for namespaced requests.
    pub namespace: Option<String>,
    /// The object name, for requests about one object.
    pub name: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
}

impl AuditEvent {
    /// Whether this is the final record of a request (not a watch's start).
    pub fn is_complete(&self) -> bool {
        self.stage == "ResponseComplete"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent {
    #[serde(default)]
    stage: String,
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    #[serde(default)]
    verb: String,
    #[serde(default)]
    user: RawUser,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    object_ref: Option<RawObjectRef>,
    #[serde(default)]
    response_status: Option<RawStatus>,
}

#[derive(Deserialize, Default)]
struct RawUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct RawObjectRef {
    resource: Option<String>,
    subresource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    code: Option<u16>,
}

/// Parses one line of the audit log; `None` for lines that are not events (or are
/// cut off because the server is still writing them).
pub fn parse_line(line: &str) -> Option<AuditEvent> {
    let raw: RawEvent = serde_json::from_str(line).ok()?;
    let object = raw.object_ref;
    Some(AuditEvent {
        user: raw.user.username,
        groups: raw.user.groups,
        verb: raw.verb,
        request_uri: raw.request_uri,
        stage: raw.stage,
        code: raw.response_status.and_then(|s| s.code),
        resource: object.as_ref().and_then(|o| o.resource.clone()),
        subresource: object.as_ref().and_then(|o| o.subresource.clone()),
        namespace: object.as_ref().and_then(|o| o.namespace.clone()),
        name: object.and_then(|o| o.name),
        user_agent: raw.user_agent,
    })
}

/// Reads every event in an audit log file.
pub fn read_log(path: &Path) -> Result<Vec<AuditEvent>, KitError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KitError::io(format!("reading audit log {}", path.display()), e))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"c9","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/configmaps?limit=500\u0026resourceVersion=0","verb":"list","user":{"username":"system:apiserver","uid":"b2","groups":["system:masters"]},"sourceIPs":["127.0.0.1"],"userAgent":"kube-apiserver/v1.20.2","objectRef":{"resource":"configmaps","namespace":"kube-system","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200}}"#;

    #[test]
    fn parses_a_v1_20_event() {
        let e = parse_line(LINE).expect("event");
        assert_eq!(e.user, "system:apiserver");
        assert_eq!(e.groups, ["system:masters"]);
        assert_eq!(e.verb, "list");
        assert_eq!(
            e.request_uri,
            "/api/v1/namespaces/kube-system/configmaps?limit=500&resourceVersion=0"
        );
        assert!(e.is_complete());
        assert_eq!(e.code, Some(200));
        assert_eq!(e.resource.as_deref(), Some("configmaps"));
        assert_eq!(e.namespace.as_deref(), Some("kube-system"));
        assert_eq!(e.name, None);
    }

    #[test]
    fn skips_partial_lines() {
        assert_eq!(parse_line(&LINE[..40]), None);
        assert_eq!(parse_line(""), None);
    }
}
