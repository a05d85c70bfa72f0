//! NGINX Gateway Fabric v2.2.2 types (`gateway.nginx.org/v1alpha1`), only the fields we use.
//!
//! Field names and enums follow `shared/data/crds/nginx-gateway-fabric-v2.2.2.yaml`:
//! - `SnippetsFilter.spec.snippets[]`: 1–4 entries, `context` one of `main`, `http`,
//!   `http.server`, `http.server.location`, at most one per context. Referenced from
//!   an HTTPRoute rule as an `ExtensionRef` filter. Needs NGF started with
//!   `--snippets-filters` (Helm `nginxGateway.snippetsFilters.enable=true`).
//! - `ClientSettingsPolicy.spec`: `targetRef` (Gateway/HTTPRoute/GRPCRoute in the
//!   policy's namespace), `body.maxSize`/`body.timeout`, `keepAlive.*`. It limits
//!   body size and keep-alive, not connections.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `apiVersion` of the NGF objects here.
pub const API_VERSION: &str = "gateway.nginx.org/v1alpha1";
/// The API group.
pub const GROUP: &str = "gateway.nginx.org";

/// A `SnippetsFilter`: raw NGINX configuration attached to route rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnippetsFilter {
    /// `gateway.nginx.org/v1alpha1`.
    pub api_version: String,
    /// `SnippetsFilter`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: SnippetsFilterSpec,
}

impl SnippetsFilter {
    /// A SnippetsFilter with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: SnippetsFilterSpec) -> Self {
        SnippetsFilter {
            api_version: API_VERSION.to_owned(),
            kind: "SnippetsFilter".to_owned(),
            metadata,
            spec,
        }
    }
}

/// `SnippetsFilter.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnippetsFilterSpec {
    /// 1–4 snippets, at most one per context.
    pub snippets: Vec<Snippet>,
}

/// One snippet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snippet {
    /// `main`, `http`, `http.server` or `http.server.location`.
    pub context: String,
    /// NGINX configuration text (only checked by NGINX at reload).
    pub value: String,
}

/// A `ClientSettingsPolicy`: client body and keep-alive settings for a Gateway or route.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettingsPolicy {
    /// `gateway.nginx.org/v1alpha1`.
    pub api_version: String,
    /// `ClientSettingsPolicy`.
    pub kind: String,
    /// Metadata.
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: ClientSettingsPolicySpec,
}

impl ClientSettingsPolicy {
    /// A ClientSettingsPolicy with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: ClientSettingsPolicySpec) -> Self {
        ClientSettingsPolicy {
            api_version: API_VERSION.to_owned(),
            kind: "ClientSettingsPolicy".to_owned(),
            metadata,
            spec,
        }
    }
}

/// `ClientSettingsPolicy.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientSettingsPolicySpec {
    /// The object the policy applies to (same namespace).
    pub target_ref: PolicyTargetReference,
    /// Client request body settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<ClientBody>,
    /// Keep-alive settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<ClientKeepAlive>,
}

/// `targetRef`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// API group of the target.
    pub group: String,
    /// Kind of the target.
    pub kind: String,
    /// Name of the target.
    pub name: String,
}

/// `spec.body`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientBody {
    /// `client_max_body_size` (pattern `^\d{1,4}(k|m|g)?$`, e.g. `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<String>,
    /// `client_body_timeout` (pattern `^[0-9]{1,4}(ms|s|m|h)?$`, e.g. `30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `spec.keepAlive`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientKeepAlive {
    /// `keepalive_requests`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u32>,
    /// `keepalive_time`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}
