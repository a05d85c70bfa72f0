//! Gateway API v1 types (`gateway.networking.k8s.io/v1`), only the fields we use.
//!
//! Field names and enums follow the v1.3.0 standard-channel CRDs in
//! `shared/data/crds/gateway-api-v1.3.0-standard.yaml`. Defaults that the API
//! server would fill in (`parentRefs[].group`/`kind`, `backendRefs[].kind`/`weight`)
//! are set explicitly by the components, so the applied body and the live object
//! agree; note that a v1.20 API server does not apply the CRDs' empty-string
//! defaults (e.g. `backendRefs[].group: ""`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

/// `apiVersion` of every Gateway API object here.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";
/// The API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The spec of one kind of Gateway API object.
pub trait Spec {
    /// The object's `kind`, e.g. `HTTPRoute`.
    const KIND: &'static str;
}

/// A Gateway API object: `apiVersion`, `kind`, metadata and its spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object<S> {
    /// `gateway.networking.k8s.io/v1`.
    pub api_version: String,
    /// The spec's [`Spec::KIND`].
    pub kind: String,
    /// Metadata (no namespace on cluster-scoped kinds).
    pub metadata: ObjectMeta,
    /// Spec.
    pub spec: S,
}

impl<S: Spec> Object<S> {
    /// An object with `apiVersion`/`kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: S) -> Self {
        Object {
            api_version: API_VERSION.to_owned(),
            kind: S::KIND.to_owned(),
            metadata,
            spec,
        }
    }
}

/// A `GatewayClass` (cluster-scoped): which controller implements Gateways of this class.
pub type GatewayClass = Object<GatewayClassSpec>;

/// `GatewayClass.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller, e.g. `gateway.nginx.org/nginx-gateway-controller`.
    pub controller_name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Spec for GatewayClassSpec {
    const KIND: &'static str = "GatewayClass";
}

/// A `Gateway`: listeners (port, protocol, hostname, TLS) of a data plane.
pub type Gateway = Object<GatewaySpec>;

/// `Gateway.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Name of the `GatewayClass`.
    pub gateway_class_name: String,
    /// Listeners (a list-map keyed by `name`).
    pub listeners: Vec<Listener>,
}

impl Spec for GatewaySpec {
    const KIND: &'static str = "Gateway";
}

/// One listener of a Gateway.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    /// Unique name within the Gateway; routes select it as `sectionName`.
    pub name: String,
    /// Host name (may be a wildcard, `*.pr.example.com`); `None` matches all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port.
    pub port: u16,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP` or `UDP`.
    pub protocol: String,
    /// TLS settings (HTTPS/TLS only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<GatewayTlsConfig>,
    /// Which routes may attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_routes: Option<AllowedRoutes>,
}

/// `listeners[].tls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayTlsConfig {
    /// `Terminate` or `Passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Certificates (Secrets of type `kubernetes.io/tls`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificate_refs: Vec<SecretObjectReference>,
}

/// A reference to a Secret (or another certificate holder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretObjectReference {
    /// API group (`""` = core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (`Secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (`None` = the Gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `listeners[].allowedRoutes`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    /// Namespaces routes may come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<RouteNamespaces>,
}

/// `allowedRoutes.namespaces`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `All`, `Same` or `Selector`.
    pub from: String,
    /// Namespace selector when `from: Selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// An `HTTPRoute`: host names and rules that send HTTP traffic to backends.
pub type HttpRoute = Object<HttpRouteSpec>;

/// `HTTPRoute.spec`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// Gateways (and listeners) the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// Host names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// Rules.
    pub rules: Vec<HttpRouteRule>,
}

impl Spec for HttpRouteSpec {
    const KIND: &'static str = "HTTPRoute";
}

/// `parentRefs[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// API group (`gateway.networking.k8s.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (`Gateway`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the Gateway (`None` = the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the Gateway.
    pub name: String,
    /// Listener name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `rules[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// Matches (ORed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to matching requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
}

/// `rules[].matches[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// Path match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
}

/// `matches[].path`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `Exact`, `PathPrefix` or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The path.
    pub value: String,
}

impl HttpPathMatch {
    /// `PathPrefix` on `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        HttpPathMatch {
            type_: "PathPrefix".to_owned(),
            value: prefix.into(),
        }
    }
}

/// `rules[].filters[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// `ExtensionRef`, `RequestRedirect`, … .
    #[serde(rename = "type")]
    pub type_: String,
    /// The extension object (type `ExtensionRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<LocalObjectReference>,
    /// The redirect (type `RequestRedirect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<HttpRequestRedirectFilter>,
}

/// A reference to an object in the route's namespace (all fields required by the CRD).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// API group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// `filters[].requestRedirect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestRedirectFilter {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `301` or `302`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
}

/// `rules[].backendRefs[]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    /// API group (`""` = core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind (`Service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    pub name: String,
    /// Namespace (`None` = the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Relative weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}
