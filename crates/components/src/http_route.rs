//! An `HTTPRoute` (host → Service:port) attached to a listener of the shared
//! Gateway, with connection limiting.
//!
//! # Connection limiting: why a `SnippetsFilter`
//! The spec asks for connection-level limits at the gateway (FR-033/FR-053). The
//! reference project used `nginx.org/rate-limit*` annotations, which NGINX Gateway
//! Fabric ignores (they belong to the separate NGINX Ingress Controller). What NGF
//! v2.2.2 (the version paired with Gateway API v1.3.0) actually offers, checked
//! against its CRD schemas (`shared/data/crds/nginx-gateway-fabric-v2.2.2.yaml`):
//! - `ClientSettingsPolicy`: `body.maxSize`, `body.timeout`, `keepAlive.*` — no
//!   connection or rate limit;
//! - `UpstreamSettingsPolicy`: `keepAlive.connections` is the *upstream* keep-alive
//!   cache size, `zoneSize` the upstream zone — no client limit;
//! - `NginxProxy.workerConnections`: data-plane-wide, not per route or client;
//! - `RateLimitPolicy` only arrives in NGF v2.4.0 and covers request rate only.
//!
//! So the route references a **`SnippetsFilter`** (`gateway.nginx.org/v1alpha1`)
//! through an `ExtensionRef` filter on its rule. The filter puts
//! `limit_conn_zone` (and, when [`ConnectionLimit::request_rate`] is set,
//! `limit_req_zone`) in the `http` context and `limit_conn` / `limit_req` in the
//! `http.server.location` context, keyed on `$binary_remote_addr`, answering 429
//! when a client exceeds the limit. Zone names include the route's namespace and
//! name (`preview-pr-123-web-conn`) because all routes share one `http` context.
//!
//! Requirements and caveats: NGF must run with SnippetsFilters enabled (controller
//! flag `--snippets-filters`, Helm `nginxGateway.snippetsFilters.enable=true`) —
//! otherwise the rule's filter cannot be resolved and NGF answers 500 for it.
//! Snippet text is only checked by NGINX when it reloads, so the values here are
//! validated before rendering. The limits are per NGINX instance.
//!
//! An optional [`ClientSettings`] adds a `ClientSettingsPolicy` on the route (body
//! size and keep-alive limits), which bounds resource use further.

use preview_core::Resource;

use crate::common::{Labels, check_dns_label, meta, to_resource};
use crate::crd::gateway_api::{
    self, HttpBackendRef, HttpPathMatch, HttpRoute as HttpRouteObject, HttpRouteFilter,
    HttpRouteMatch, HttpRouteRule, HttpRouteSpec, LocalObjectReference, ParentReference,
};
use crate::crd::nginx_gateway::{
    self, ClientBody, ClientKeepAlive, ClientSettingsPolicy, ClientSettingsPolicySpec,
    PolicyTargetReference, Snippet, SnippetsFilter, SnippetsFilterSpec,
};
use crate::error::ComponentError;

/// A route from one host name to one Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// Route name, e.g. `web`.
    pub name: String,
    /// Namespace (the Service's), e.g. `preview-pr-123`.
    pub namespace: String,
    /// Host name, e.g. `123.pr.aphiria.com`.
    pub hostname: String,
    /// Backend Service name.
    pub service: String,
    /// Backend Service port (default 80).
    pub port: u16,
    /// The Gateway listener to attach to.
    pub gateway: GatewayRef,
    /// Connection limiting (default [`ConnectionLimit::default`]); `None` = none.
    pub connection_limit: Option<ConnectionLimit>,
    /// Client body/keep-alive settings (default none).
    pub client_settings: Option<ClientSettings>,
    /// Extra labels for every object.
    pub labels: Labels,
}

/// A Gateway listener, by Gateway namespace/name and listener name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRef {
    /// Gateway name.
    pub name: String,
    /// Gateway namespace.
    pub namespace: String,
    /// Listener (`sectionName`); `None` = all listeners whose host matches.
    pub section_name: Option<String>,
}

/// Per-client limits enforced by NGINX for this route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimit {
    /// Concurrent connections per client address (default 10).
    pub connections_per_client: u32,
    /// Optional request rate per client address (default 10r/s, burst 20, as the
    /// reference project intended).
    pub request_rate: Option<RequestRate>,
    /// Shared-memory zone size per zone (default `10m`, ~160k addresses).
    pub zone_size: String,
    /// Status for rejected requests (default 429).
    pub status: u16,
}

impl Default for ConnectionLimit {
    fn default() -> Self {
        ConnectionLimit {
            connections_per_client: 10,
            request_rate: Some(RequestRate::default()),
            zone_size: "10m".to_owned(),
            status: 429,
        }
    }
}

/// A request rate limit (`limit_req`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRate {
    /// Rate, `<n>r/s` or `<n>r/m` (default `10r/s`).
    pub rate: String,
    /// Burst allowance (default 20).
    pub burst: u32,
    /// Serve the burst without delay (default `true`).
    pub no_delay: bool,
}

impl Default for RequestRate {
    fn default() -> Self {
        RequestRate {
            rate: "10r/s".to_owned(),
            burst: 20,
            no_delay: true,
        }
    }
}

/// `ClientSettingsPolicy` values (each optional; NGINX syntax such as `10m`, `30s`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// `client_max_body_size`, e.g. `10m`.
    pub body_max_size: Option<String>,
    /// `client_body_timeout`, e.g. `30s`.
    pub body_timeout: Option<String>,
    /// `keepalive_requests`.
    pub keepalive_requests: Option<u32>,
    /// `keepalive_time`, e.g. `1h`.
    pub keepalive_time: Option<String>,
}

/// What [`HttpRoute::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpRouteResources {
    /// The `SnippetsFilter` with the limits, when limiting is on.
    pub limits: Option<Resource>,
    /// The `ClientSettingsPolicy`, when requested.
    pub client_settings: Option<Resource>,
    /// The `HTTPRoute` (depends on the filter).
    pub route: Resource,
}

impl HttpRouteResources {
    /// All resources (filter, policy, route).
    pub fn into_resources(self) -> Vec<Resource> {
        let mut out: Vec<Resource> = self.limits.into_iter().collect();
        out.extend(self.client_settings);
        out.push(self.route);
        out
    }
}

impl HttpRoute {
    /// `hostname` → `service:80` on `gateway`, with the default connection limit.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        hostname: impl Into<String>,
        service: impl Into<String>,
        gateway: GatewayRef,
    ) -> Self {
        HttpRoute {
            name: name.into(),
            namespace: namespace.into(),
            hostname: hostname.into(),
            service: service.into(),
            port: 80,
            gateway,
            connection_limit: Some(ConnectionLimit::default()),
            client_settings: None,
            labels: Labels::new(),
        }
    }

    /// Name of the SnippetsFilter: `<route>-limits`.
    pub fn filter_name(&self) -> String {
        format!("{}-limits", self.name)
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<HttpRouteResources, ComponentError> {
        check_dns_label("route name", &self.name)?;
        check_dns_label("route namespace", &self.namespace)?;
        check_dns_label("backend service", &self.service)?;
        check_hostname(&self.hostname)?;
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(&self.name, "routing");

        let limits = self
            .connection_limit
            .as_ref()
            .map(|limit| self.snippets_filter(limit, &labels))
            .transpose()?;

        let client_settings = self
            .client_settings
            .as_ref()
            .map(|settings| {
                check_nginx_size("client body max size", settings.body_max_size.as_deref())?;
                for (what, value) in [
                    ("client body timeout", settings.body_timeout.as_deref()),
                    ("keep-alive time", settings.keepalive_time.as_deref()),
                ] {
                    check_nginx_duration(what, value)?;
                }
                let body = (settings.body_max_size.is_some() || settings.body_timeout.is_some())
                    .then(|| ClientBody {
                        max_size: settings.body_max_size.clone(),
                        timeout: settings.body_timeout.clone(),
                    });
                let keep_alive = (settings.keepalive_requests.is_some()
                    || settings.keepalive_time.is_some())
                .then(|| ClientKeepAlive {
                    requests: settings.keepalive_requests,
                    time: settings.keepalive_time.clone(),
                });
                to_resource(&ClientSettingsPolicy::new(
                    meta(&format!("{}-client-settings", self.name), ns, &labels),
                    ClientSettingsPolicySpec {
                        target_ref: PolicyTargetReference {
                            group: gateway_api::GROUP.to_owned(),
                            kind: "HTTPRoute".to_owned(),
                            name: self.name.clone(),
                        },
                        body,
                        keep_alive,
                    },
                ))
            })
            .transpose()?;

        let filters = limits
            .as_ref()
            .map(|filter| HttpRouteFilter {
                type_: "ExtensionRef".to_owned(),
                extension_ref: Some(LocalObjectReference {
                    group: nginx_gateway::GROUP.to_owned(),
                    kind: "SnippetsFilter".to_owned(),
                    name: filter.id.name.clone(),
                }),
                request_redirect: None,
            })
            .into_iter()
            .collect();
        let mut route = to_resource(&HttpRouteObject::new(
            meta(&self.name, ns, &labels),
            HttpRouteSpec {
                parent_refs: vec![ParentReference {
                    group: Some(gateway_api::GROUP.to_owned()),
                    kind: Some("Gateway".to_owned()),
                    namespace: Some(self.gateway.namespace.clone()),
                    name: self.gateway.name.clone(),
                    section_name: self.gateway.section_name.clone(),
                }],
                hostnames: vec![self.hostname.clone()],
                rules: vec![HttpRouteRule {
                    matches: vec![HttpRouteMatch {
                        path: Some(HttpPathMatch::prefix("/")),
                    }],
                    filters,
                    // No explicit `group: ""`: v1.20's server-side apply turns it into null.
                    backend_refs: vec![HttpBackendRef {
                        group: None,
                        kind: Some("Service".to_owned()),
                        name: self.service.clone(),
                        namespace: None,
                        port: Some(self.port),
                        weight: Some(1),
                    }],
                }],
            },
        ))?;
        // The graph does not follow ExtensionRef filters: order the filter first.
        if let Some(filter) = &limits {
            route = route.depends_on(&filter.id);
        }
        Ok(HttpRouteResources {
            limits,
            client_settings,
            route,
        })
    }

    fn snippets_filter(
        &self,
        limit: &ConnectionLimit,
        labels: &Labels,
    ) -> Result<Resource, ComponentError> {
        if limit.connections_per_client == 0 {
            return Err(ComponentError::invalid(
                "connections per client",
                "0",
                "must be at least 1",
            ));
        }
        check_nginx_size("limit zone size", Some(&limit.zone_size))?;
        if !(400..=599).contains(&limit.status) {
            return Err(ComponentError::invalid(
                "limit status",
                limit.status.to_string(),
                "must be an HTTP error status (400-599)",
            ));
        }
        let zone = format!("{}-{}", self.namespace, self.name);
        let mut http = vec![format!(
            "limit_conn_zone $binary_remote_addr zone={zone}-conn:{};",
            limit.zone_size
        )];
        let mut location = vec![
            format!("limit_conn {zone}-conn {};", limit.connections_per_client),
            format!("limit_conn_status {};", limit.status),
        ];
        if let Some(rate) = &limit.request_rate {
            check_rate(&rate.rate)?;
            http.push(format!(
                "limit_req_zone $binary_remote_addr zone={zone}-req:{} rate={};",
                limit.zone_size, rate.rate
            ));
            let nodelay = if rate.no_delay { " nodelay" } else { "" };
            location.push(format!(
                "limit_req zone={zone}-req burst={}{nodelay};",
                rate.burst
            ));
            location.push(format!("limit_req_status {};", limit.status));
        }
        to_resource(&SnippetsFilter::new(
            meta(&self.filter_name(), Some(&self.namespace), labels),
            SnippetsFilterSpec {
                snippets: vec![
                    Snippet {
                        context: "http".to_owned(),
                        value: http.join("\n"),
                    },
                    Snippet {
                        context: "http.server.location".to_owned(),
                        value: location.join("\n"),
                    },
                ],
            },
        ))
    }
}

/// A host name: lowercase DNS labels separated by dots, no wildcard.
fn check_hostname(host: &str) -> Result<(), ComponentError> {
    let ok = host.len() <= 253
        && host.contains('.')
        && host
            .split('.')
            .all(|label| check_dns_label("hostname", label).is_ok());
    if ok {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            "route hostname",
            host,
            "must be a lowercase DNS name such as 123.pr.example.com",
        ))
    }
}

/// `^\d+r/[sm]$`.
fn check_rate(rate: &str) -> Result<(), ComponentError> {
    let ok = rate
        .strip_suffix("r/s")
        .or_else(|| rate.strip_suffix("r/m"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            "request rate",
            rate,
            "must look like 10r/s or 600r/m",
        ))
    }
}

/// `^\d{1,4}(k|m|g)?$` (the CRDs' size pattern).
fn check_nginx_size(what: &'static str, value: Option<&str>) -> Result<(), ComponentError> {
    let Some(value) = value else { return Ok(()) };
    let digits = value.strip_suffix(['k', 'm', 'g']).unwrap_or(value);
    if (1..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            what,
            value,
            "must be 1-4 digits with an optional k, m or g",
        ))
    }
}

/// `^[0-9]{1,4}(ms|s|m|h)?$` (the CRDs' duration pattern).
fn check_nginx_duration(what: &'static str, value: Option<&str>) -> Result<(), ComponentError> {
    let Some(value) = value else { return Ok(()) };
    let digits = ["ms", "s", "m", "h"]
        .iter()
        .find_map(|unit| value.strip_suffix(unit))
        .unwrap_or(value);
    if (1..=4).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ComponentError::invalid(
            what,
            value,
            "must be 1-4 digits with an optional ms, s, m or h",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{NS, bodies};
    use serde_json::json;

    fn web_route() -> HttpRoute {
        HttpRoute {
            labels: crate::test_support::labels(),
            ..HttpRoute::new(
                "web",
                NS,
                "123.pr.aphiria.com",
                "web",
                GatewayRef {
                    name: "preview-gateway".into(),
                    namespace: "nginx-gateway".into(),
                    section_name: Some("https-pr".into()),
                },
            )
        }
    }

    #[test]
    fn snapshot() {
        let mut route = web_route();
        route.client_settings = Some(ClientSettings {
            body_max_size: Some("10m".into()),
            body_timeout: Some("30s".into()),
            ..ClientSettings::default()
        });
        let out = route.build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn host_to_service_with_parent_listener() {
        let out = web_route().build().expect("builds");
        let spec = &out.route.body["spec"];
        assert_eq!(spec["hostnames"], json!(["123.pr.aphiria.com"]));
        assert_eq!(
            spec["parentRefs"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                "namespace": "nginx-gateway", "name": "preview-gateway", "sectionName": "https-pr"}])
        );
        assert_eq!(
            spec["rules"][0]["backendRefs"],
            json!([{"kind": "Service", "name": "web", "port": 80, "weight": 1}])
        );
        assert_eq!(
            spec["rules"][0]["matches"],
            json!([{"path": {"type": "PathPrefix", "value": "/"}}])
        );
        assert_eq!(out.route.id.api_version, "gateway.networking.k8s.io/v1");
    }

    #[test]
    fn connection_limit_is_a_snippets_filter_the_route_references() {
        let out = web_route().build().expect("builds");
        let filter = out.limits.expect("filter");
        assert_eq!(filter.id.api_version, "gateway.nginx.org/v1alpha1");
        assert_eq!(filter.id.kind, "SnippetsFilter");
        assert_eq!(filter.id.name, "web-limits");
        assert_eq!(
            out.route.body["spec"]["rules"][0]["filters"],
            json!([{"type": "ExtensionRef", "extensionRef":
                {"group": "gateway.nginx.org", "kind": "SnippetsFilter", "name": "web-limits"}}])
        );
        assert!(out.route.depends_on.contains(&filter.id));
        let snippets = &filter.body["spec"]["snippets"];
        assert_eq!(snippets[0]["context"], "http");
        assert_eq!(
            snippets[0]["value"],
            "limit_conn_zone $binary_remote_addr zone=preview-pr-123-web-conn:10m;\n\
             limit_req_zone $binary_remote_addr zone=preview-pr-123-web-req:10m rate=10r/s;"
        );
        assert_eq!(snippets[1]["context"], "http.server.location");
        assert_eq!(
            snippets[1]["value"],
            "limit_conn preview-pr-123-web-conn 10;\nlimit_conn_status 429;\n\
             limit_req zone=preview-pr-123-web-req burst=20 nodelay;\nlimit_req_status 429;"
        );
    }

    #[test]
    fn limits_can_be_tuned_or_disabled() {
        let mut route = web_route();
        route.connection_limit = Some(ConnectionLimit {
            connections_per_client: 3,
            request_rate: None,
            ..ConnectionLimit::default()
        });
        let out = route.build().expect("builds");
        let value = out.limits.expect("filter").body["spec"]["snippets"][1]["value"].clone();
        assert_eq!(
            value,
            "limit_conn preview-pr-123-web-conn 3;\nlimit_conn_status 429;"
        );

        route.connection_limit = None;
        let out = route.build().expect("builds");
        assert!(out.limits.is_none());
        assert!(out.route.body["spec"]["rules"][0].get("filters").is_none());
        assert!(out.route.depends_on.is_empty());
    }

    #[test]
    fn client_settings_policy_targets_the_route() {
        let mut route = web_route();
        route.client_settings = Some(ClientSettings {
            keepalive_requests: Some(100),
            ..ClientSettings::default()
        });
        let policy = route
            .build()
            .expect("builds")
            .client_settings
            .expect("policy");
        assert_eq!(
            policy.body["spec"],
            json!({"targetRef": {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "web"},
                   "keepAlive": {"requests": 100}})
        );
    }

    #[test]
    fn bad_values_never_reach_nginx() {
        let mut route = web_route();
        route.connection_limit = Some(ConnectionLimit {
            request_rate: Some(RequestRate {
                rate: "10 per second".into(),
                ..RequestRate::default()
            }),
            ..ConnectionLimit::default()
        });
        assert!(
            route
                .build()
                .expect_err("rate")
                .to_string()
                .contains("request rate")
        );
        let mut route = web_route();
        route.connection_limit = Some(ConnectionLimit {
            zone_size: "10m; evil".into(),
            ..ConnectionLimit::default()
        });
        assert!(route.build().is_err());
        let mut route = web_route();
        route.hostname = "*.pr.aphiria.com".into();
        assert!(
            route
                .build()
                .expect_err("host")
                .to_string()
                .contains("route hostname")
        );
        let mut route = web_route();
        route.client_settings = Some(ClientSettings {
            body_timeout: Some("forever".into()),
            ..ClientSettings::default()
        });
        assert!(route.build().is_err());
    }
}
