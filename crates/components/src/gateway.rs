//! The shared preview gateway: `GatewayClass`, cert-manager issuer, wildcard
//! `Certificate` and the `Gateway` itself.
//!
//! - **GatewayClass** `nginx` with controller
//!   `gateway.nginx.org/nginx-gateway-controller` (NGINX Gateway Fabric). Set
//!   [`PreviewGateway::create_class`] to `false` when the NGF install bundle already
//!   contains it (one object must have one owner).
//! - **Gateway**: one HTTPS listener (port 443, TLS `Terminate`) per wildcard host
//!   (`*.pr.<domain>` as `https-pr`, `*.pr-api.<domain>` as `https-pr-api`), all
//!   using the wildcard certificate's Secret, plus one plain HTTP listener (port 80,
//!   no host name; named `http`) unless disabled. Routes from all namespaces may
//!   attach by default ([`AllowedRouteNamespaces`]); routes select a listener by
//!   `sectionName` ([`PreviewGateway::section_for`]).
//! - **Certificate**: one certificate for all wildcard hosts, written to
//!   [`PreviewGateway::tls_secret_name`] in the Gateway's namespace. Wildcards need
//!   the ACME DNS-01 challenge.
//! - **Issuer** ([`TlsIssuer`]): Let's Encrypt over ACME DNS-01 with DigitalOcean
//!   DNS (staging or production directory), self-signed (local stacks), or an
//!   existing issuer (rendered as a reference only). A `ClusterIssuer` reads its
//!   DigitalOcean token Secret from cert-manager's cluster resource namespace
//!   (`cert-manager` by default); an `Issuer` reads it from the Gateway's namespace.
//!
//! The Gateway is *not* annotated with `cert-manager.io/cluster-issuer` (the
//! reference project did): that annotation makes cert-manager's gateway-shim create
//! its own Certificates, duplicating the explicit one here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use preview_core::Resource;

use crate::common::{Labels, check_dns_label, match_labels, meta, to_resource};
use crate::crd::cert_manager::{
    self, AcmeDns01, AcmeIssuer, AcmeSolver, Certificate, CertificateSpec, ClusterIssuer,
    DigitalOceanDns01, Issuer, IssuerRef, IssuerSpec, SecretKeySelector, SelfSignedIssuer,
};
use crate::crd::gateway_api::{
    AllowedRoutes, Gateway, GatewayClass, GatewayClassSpec, GatewaySpec, GatewayTlsConfig,
    Listener, RouteNamespaces, SecretObjectReference,
};
use crate::error::ComponentError;

/// NGINX Gateway Fabric's controller name.
pub const NGF_CONTROLLER_NAME: &str = "gateway.nginx.org/nginx-gateway-controller";
/// Let's Encrypt production ACME directory.
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt staging ACME directory.
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The gateway and its TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviewGateway {
    /// Gateway name, e.g. `preview-gateway`.
    pub name: String,
    /// Gateway namespace, e.g. `nginx-gateway`.
    pub namespace: String,
    /// GatewayClass name (default `nginx`).
    pub class_name: String,
    /// Render the GatewayClass (default `true`).
    pub create_class: bool,
    /// Controller of the class (default [`NGF_CONTROLLER_NAME`]).
    pub controller_name: String,
    /// Wildcard hosts, one HTTPS listener each (at least one).
    pub hosts: Vec<WildcardHost>,
    /// Name of the plain HTTP listener (default `Some("http")`; `None` = no HTTP listener).
    pub http_listener: Option<String>,
    /// Which namespaces' routes may attach (default all).
    pub allowed_routes: AllowedRouteNamespaces,
    /// Certificate name (default `wildcard-tls`).
    pub certificate_name: String,
    /// Secret the certificate is written to (default `tls-cert`, as in the reference project).
    pub tls_secret_name: String,
    /// Who signs the certificate.
    pub issuer: TlsIssuer,
    /// Extra labels for every object.
    pub labels: Labels,
}

/// A wildcard host and the name of its HTTPS listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WildcardHost {
    /// Listener name (routes use it as `sectionName`), e.g. `https-pr`.
    pub listener: String,
    /// Host name, `*.` followed by a domain, e.g. `*.pr.aphiria.com`.
    pub hostname: String,
}

impl WildcardHost {
    /// `*.<subdomain>.<domain>` on listener `https-<subdomain>`:
    /// `for_subdomain("pr-api", "aphiria.com")` → `https-pr-api`, `*.pr-api.aphiria.com`.
    pub fn for_subdomain(subdomain: &str, domain: &str) -> Self {
        WildcardHost {
            listener: format!("https-{subdomain}"),
            hostname: format!("*.{subdomain}.{domain}"),
        }
    }

    /// True when `host` is covered by this wildcard (one or more labels in place of `*`).
    pub fn matches(&self, host: &str) -> bool {
        let suffix = self.hostname.trim_start_matches('*');
        host.len() > suffix.len() && host.ends_with(suffix)
    }
}

/// Which namespaces' routes may attach to the listeners.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum AllowedRouteNamespaces {
    /// Any namespace (`from: All`; the reference project's setting).
    #[default]
    All,
    /// Namespaces with these labels (`from: Selector`), e.g. previews only.
    Selector(Labels),
}

/// Who signs the wildcard certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsIssuer {
    /// Let's Encrypt (or another ACME CA) with DNS-01 on DigitalOcean.
    Acme(AcmeDigitalOcean),
    /// A self-signed issuer (local stacks; browsers will warn).
    SelfSigned {
        /// Issuer name (default `selfsigned-issuer`).
        name: String,
        /// ClusterIssuer or namespaced Issuer.
        scope: IssuerScope,
    },
    /// An issuer managed elsewhere; only referenced.
    Existing {
        /// Issuer name.
        name: String,
        /// ClusterIssuer or namespaced Issuer.
        scope: IssuerScope,
    },
}

impl TlsIssuer {
    /// A self-signed `ClusterIssuer` named `selfsigned-issuer`.
    pub fn self_signed() -> Self {
        TlsIssuer::SelfSigned {
            name: "selfsigned-issuer".to_owned(),
            scope: IssuerScope::Cluster,
        }
    }

    fn name_and_scope(&self) -> (&str, IssuerScope) {
        match self {
            TlsIssuer::Acme(acme) => (&acme.name, acme.scope),
            TlsIssuer::SelfSigned { name, scope } | TlsIssuer::Existing { name, scope } => {
                (name, *scope)
            }
        }
    }
}

/// Whether the issuer is a `ClusterIssuer` or an `Issuer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IssuerScope {
    /// `ClusterIssuer` (the default).
    #[default]
    Cluster,
    /// `Issuer` in the Gateway's namespace.
    Namespaced,
}

impl IssuerScope {
    fn kind(self) -> &'static str {
        match self {
            IssuerScope::Cluster => "ClusterIssuer",
            IssuerScope::Namespaced => "Issuer",
        }
    }
}

/// The ACME directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcmeServer {
    /// Let's Encrypt staging (untrusted certificates, generous rate limits).
    Staging,
    /// Let's Encrypt production.
    Production,
    /// Another directory URL.
    Custom(String),
}

impl AcmeServer {
    /// The directory URL.
    pub fn url(&self) -> &str {
        match self {
            AcmeServer::Staging => LETS_ENCRYPT_STAGING,
            AcmeServer::Production => LETS_ENCRYPT_PRODUCTION,
            AcmeServer::Custom(url) => url,
        }
    }
}

/// An ACME issuer solving DNS-01 through DigitalOcean DNS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeDigitalOcean {
    /// Issuer name (default `letsencrypt-staging` / `letsencrypt-prod`, as in the reference).
    pub name: String,
    /// ClusterIssuer or Issuer (default ClusterIssuer).
    pub scope: IssuerScope,
    /// ACME directory.
    pub server: AcmeServer,
    /// ACME account e-mail.
    pub email: String,
    /// Secret holding the DigitalOcean API token (must exist; see the module docs for its namespace).
    pub token_secret: String,
    /// Key of the token in that Secret (default `access-token`).
    pub token_key: String,
    /// Secret cert-manager creates for the ACME account key (default `<name>-account-key`).
    pub account_key_secret: String,
}

impl AcmeDigitalOcean {
    /// Let's Encrypt `server` with the DigitalOcean token in `token_secret`/`access-token`.
    pub fn lets_encrypt(
        server: AcmeServer,
        email: impl Into<String>,
        token_secret: impl Into<String>,
    ) -> Self {
        let name = match server {
            AcmeServer::Production => "letsencrypt-prod",
            AcmeServer::Staging | AcmeServer::Custom(_) => "letsencrypt-staging",
        };
        AcmeDigitalOcean {
            name: name.to_owned(),
            scope: IssuerScope::Cluster,
            server,
            email: email.into(),
            token_secret: token_secret.into(),
            token_key: "access-token".to_owned(),
            account_key_secret: format!("{name}-account-key"),
        }
    }
}

/// What [`PreviewGateway::build`] renders.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewayResources {
    /// The GatewayClass, unless disabled.
    pub gateway_class: Option<Resource>,
    /// The issuer, unless it is [`TlsIssuer::Existing`].
    pub issuer: Option<Resource>,
    /// The wildcard Certificate.
    pub certificate: Resource,
    /// The Gateway.
    pub gateway: Resource,
}

impl GatewayResources {
    /// All resources (class, issuer, certificate, gateway).
    pub fn into_resources(self) -> Vec<Resource> {
        let mut out: Vec<Resource> = self.gateway_class.into_iter().collect();
        out.extend(self.issuer);
        out.extend([self.certificate, self.gateway]);
        out
    }
}

impl PreviewGateway {
    /// A gateway with the defaults above for `hosts`, signed by `issuer`.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        hosts: Vec<WildcardHost>,
        issuer: TlsIssuer,
    ) -> Self {
        PreviewGateway {
            name: name.into(),
            namespace: namespace.into(),
            class_name: "nginx".to_owned(),
            create_class: true,
            controller_name: NGF_CONTROLLER_NAME.to_owned(),
            hosts,
            http_listener: Some("http".to_owned()),
            allowed_routes: AllowedRouteNamespaces::All,
            certificate_name: "wildcard-tls".to_owned(),
            tls_secret_name: "tls-cert".to_owned(),
            issuer,
            labels: Labels::new(),
        }
    }

    /// The HTTPS listener (`sectionName`) serving `host`, e.g. `https-pr-api` for
    /// `123.pr-api.aphiria.com`. The longest matching wildcard wins.
    pub fn section_for(&self, host: &str) -> Option<&str> {
        self.hosts
            .iter()
            .filter(|h| h.matches(host))
            .max_by_key(|h| h.hostname.len())
            .map(|h| h.listener.as_str())
    }

    /// Renders the objects.
    pub fn build(&self) -> Result<GatewayResources, ComponentError> {
        self.validate()?;
        let ns = Some(self.namespace.as_str());
        let labels = self.labels.component(&self.name, "gateway");

        let gateway_class = self
            .create_class
            .then(|| {
                to_resource(&GatewayClass::new(
                    meta(&self.class_name, None, &labels),
                    GatewayClassSpec {
                        controller_name: self.controller_name.clone(),
                        description: None,
                    },
                ))
            })
            .transpose()?;

        let issuer = self.issuer_resource(&labels)?;
        let (issuer_name, issuer_scope) = self.issuer.name_and_scope();
        let certificate = to_resource(&Certificate::new(
            meta(&self.certificate_name, ns, &labels),
            CertificateSpec {
                secret_name: self.tls_secret_name.clone(),
                dns_names: self.hosts.iter().map(|h| h.hostname.clone()).collect(),
                issuer_ref: IssuerRef {
                    name: issuer_name.to_owned(),
                    kind: Some(issuer_scope.kind().to_owned()),
                    group: Some(cert_manager::GROUP.to_owned()),
                },
            },
        ))?;

        let allowed = Some(AllowedRoutes {
            namespaces: Some(match &self.allowed_routes {
                AllowedRouteNamespaces::All => RouteNamespaces {
                    from: "All".to_owned(),
                    selector: None,
                },
                AllowedRouteNamespaces::Selector(labels) => RouteNamespaces {
                    from: "Selector".to_owned(),
                    selector: Some(match_labels(labels.to_map())),
                },
            }),
        });
        let mut listeners: Vec<Listener> = self
            .hosts
            .iter()
            .map(|host| Listener {
                name: host.listener.clone(),
                hostname: Some(host.hostname.clone()),
                port: 443,
                protocol: "HTTPS".to_owned(),
                tls: Some(GatewayTlsConfig {
                    mode: Some("Terminate".to_owned()),
                    // `group` is left out (it defaults to the core group): the v1.20
                    // API server's server-side apply turns an explicit "" into null,
                    // which the CRD schema then rejects.
                    certificate_refs: vec![SecretObjectReference {
                        group: None,
                        kind: Some("Secret".to_owned()),
                        name: self.tls_secret_name.clone(),
                        namespace: None,
                    }],
                }),
                allowed_routes: allowed.clone(),
            })
            .collect();
        if let Some(http) = &self.http_listener {
            listeners.push(Listener {
                name: http.clone(),
                hostname: None,
                port: 80,
                protocol: "HTTP".to_owned(),
                tls: None,
                allowed_routes: allowed.clone(),
            });
        }
        let gateway = to_resource(&Gateway::new(
            meta(&self.name, ns, &labels),
            GatewaySpec {
                gateway_class_name: self.class_name.clone(),
                listeners,
            },
        ))?;

        Ok(GatewayResources {
            gateway_class,
            issuer,
            certificate,
            gateway,
        })
    }

    fn validate(&self) -> Result<(), ComponentError> {
        check_dns_label("gateway namespace", &self.namespace)?;
        check_dns_label("gateway name", &self.name)?;
        if self.hosts.is_empty() {
            return Err(ComponentError::invalid(
                "gateway hosts",
                "[]",
                "at least one wildcard host is needed",
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        for host in &self.hosts {
            let rest = host.hostname.strip_prefix("*.").unwrap_or("");
            if rest.is_empty() || rest.contains('*') || !rest.contains('.') {
                return Err(ComponentError::invalid(
                    "gateway host",
                    host.hostname.as_str(),
                    "must be a wildcard such as *.pr.example.com",
                ));
            }
            names.push(&host.listener);
        }
        names.extend(self.http_listener.as_deref());
        for (i, name) in names.iter().enumerate() {
            check_dns_label("listener name", name)?;
            if names[..i].contains(name) {
                return Err(ComponentError::invalid(
                    "listener name",
                    *name,
                    "is used twice",
                ));
            }
        }
        if let TlsIssuer::Acme(acme) = &self.issuer {
            if acme.email.trim().is_empty() || !acme.email.contains('@') {
                return Err(ComponentError::invalid(
                    "ACME e-mail",
                    acme.email.as_str(),
                    "must be an e-mail address",
                ));
            }
            if !acme.server.url().starts_with("https://") {
                return Err(ComponentError::invalid(
                    "ACME server",
                    acme.server.url(),
                    "must be an https:// URL",
                ));
            }
        }
        Ok(())
    }

    fn issuer_resource(&self, labels: &Labels) -> Result<Option<Resource>, ComponentError> {
        let (name, scope) = self.issuer.name_and_scope();
        let spec = match &self.issuer {
            TlsIssuer::Existing { .. } => return Ok(None),
            TlsIssuer::SelfSigned { .. } => IssuerSpec {
                self_signed: Some(SelfSignedIssuer {}),
                ..IssuerSpec::default()
            },
            TlsIssuer::Acme(acme) => IssuerSpec {
                acme: Some(AcmeIssuer {
                    server: acme.server.url().to_owned(),
                    email: Some(acme.email.clone()),
                    private_key_secret_ref: SecretKeySelector {
                        name: acme.account_key_secret.clone(),
                        key: None,
                    },
                    solvers: vec![AcmeSolver {
                        dns01: Some(AcmeDns01 {
                            digitalocean: Some(DigitalOceanDns01 {
                                token_secret_ref: SecretKeySelector {
                                    name: acme.token_secret.clone(),
                                    key: Some(acme.token_key.clone()),
                                },
                            }),
                        }),
                    }],
                }),
                ..IssuerSpec::default()
            },
        };
        let resource = match scope {
            IssuerScope::Cluster => {
                to_resource(&ClusterIssuer::new(meta(name, None, labels), spec))?
            }
            IssuerScope::Namespaced => {
                let metadata: ObjectMeta = meta(name, Some(&self.namespace), labels);
                to_resource(&Issuer::new(metadata, spec))?
            }
        };
        Ok(Some(resource))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{DOMAIN, bodies};
    use serde_json::json;

    fn hosts() -> Vec<WildcardHost> {
        vec![
            WildcardHost::for_subdomain("pr", DOMAIN),
            WildcardHost::for_subdomain("pr-api", DOMAIN),
        ]
    }

    fn acme() -> PreviewGateway {
        PreviewGateway::new(
            "preview-gateway",
            "nginx-gateway",
            hosts(),
            TlsIssuer::Acme(AcmeDigitalOcean::lets_encrypt(
                AcmeServer::Production,
                "admin@aphiria.com",
                "digitalocean-dns",
            )),
        )
    }

    #[test]
    fn snapshot_lets_encrypt() {
        let out = acme().build().expect("builds");
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn snapshot_self_signed() {
        let mut gw = PreviewGateway::new(
            "preview-gateway",
            "nginx-gateway",
            hosts(),
            TlsIssuer::self_signed(),
        );
        gw.create_class = false;
        let out = gw.build().expect("builds");
        assert!(out.gateway_class.is_none());
        insta::assert_yaml_snapshot!(bodies(&out.into_resources()));
    }

    #[test]
    fn https_listener_per_wildcard_plus_http() {
        let out = acme().build().expect("builds");
        let listeners = &out.gateway.body["spec"]["listeners"];
        assert_eq!(listeners.as_array().map(Vec::len), Some(3));
        assert_eq!(listeners[0]["name"], "https-pr");
        assert_eq!(listeners[0]["hostname"], "*.pr.aphiria.com");
        assert_eq!(listeners[0]["port"], 443);
        assert_eq!(
            listeners[0]["tls"]["certificateRefs"][0]["name"],
            "tls-cert"
        );
        assert_eq!(listeners[1]["name"], "https-pr-api");
        assert_eq!(listeners[1]["hostname"], "*.pr-api.aphiria.com");
        assert_eq!(
            listeners[2],
            json!({"name": "http", "port": 80, "protocol": "HTTP",
            "allowedRoutes": {"namespaces": {"from": "All"}}})
        );
        assert_eq!(out.gateway.body["spec"]["gatewayClassName"], "nginx");
    }

    #[test]
    fn certificate_covers_both_hosts_with_the_chosen_issuer() {
        let out = acme().build().expect("builds");
        let spec = &out.certificate.body["spec"];
        assert_eq!(
            spec["dnsNames"],
            json!(["*.pr.aphiria.com", "*.pr-api.aphiria.com"])
        );
        assert_eq!(spec["secretName"], "tls-cert");
        assert_eq!(spec["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(spec["issuerRef"]["name"], "letsencrypt-prod");
        let issuer = out.issuer.expect("issuer");
        assert_eq!(issuer.id.kind, "ClusterIssuer");
        assert_eq!(issuer.id.namespace, None);
        assert_eq!(
            issuer.body["spec"]["acme"]["server"],
            LETS_ENCRYPT_PRODUCTION
        );
        assert_eq!(
            issuer.body["spec"]["acme"]["solvers"][0]["dns01"]["digitalocean"]["tokenSecretRef"],
            json!({"name": "digitalocean-dns", "key": "access-token"})
        );
        let class = out.gateway_class.expect("class");
        assert_eq!(class.body["spec"]["controllerName"], NGF_CONTROLLER_NAME);
    }

    #[test]
    fn staging_and_namespaced_issuers() {
        let mut le =
            AcmeDigitalOcean::lets_encrypt(AcmeServer::Staging, "admin@aphiria.com", "do-token");
        le.scope = IssuerScope::Namespaced;
        let mut gw = acme();
        gw.issuer = TlsIssuer::Acme(le);
        let out = gw.build().expect("builds");
        let issuer = out.issuer.expect("issuer");
        assert_eq!(issuer.id.kind, "Issuer");
        assert_eq!(issuer.id.namespace.as_deref(), Some("nginx-gateway"));
        assert_eq!(issuer.id.name, "letsencrypt-staging");
        assert_eq!(issuer.body["spec"]["acme"]["server"], LETS_ENCRYPT_STAGING);
        assert_eq!(out.certificate.body["spec"]["issuerRef"]["kind"], "Issuer");

        gw.issuer = TlsIssuer::Existing {
            name: "corp-ca".into(),
            scope: IssuerScope::Cluster,
        };
        let out = gw.build().expect("builds");
        assert!(out.issuer.is_none());
        assert_eq!(out.certificate.body["spec"]["issuerRef"]["name"], "corp-ca");
    }

    #[test]
    fn sections_for_hosts() {
        let gw = acme();
        assert_eq!(gw.section_for("123.pr.aphiria.com"), Some("https-pr"));
        assert_eq!(
            gw.section_for("123.pr-api.aphiria.com"),
            Some("https-pr-api")
        );
        assert_eq!(gw.section_for("pr.aphiria.com"), None);
        assert_eq!(gw.section_for("www.aphiria.com"), None);
    }

    #[test]
    fn selector_for_allowed_routes() {
        let mut gw = acme();
        gw.allowed_routes =
            AllowedRouteNamespaces::Selector(Labels::new().with("preview-envs.io/preview", "true"));
        let out = gw.build().expect("builds");
        assert_eq!(
            out.gateway.body["spec"]["listeners"][0]["allowedRoutes"],
            json!({"namespaces": {"from": "Selector",
                "selector": {"matchLabels": {"preview-envs.io/preview": "true"}}}})
        );
    }

    #[test]
    fn invalid_input_is_rejected() {
        let mut gw = acme();
        gw.hosts = vec![WildcardHost {
            listener: "https-pr".into(),
            hostname: "pr.aphiria.com".into(),
        }];
        assert!(
            gw.build()
                .expect_err("not wildcard")
                .to_string()
                .contains("wildcard")
        );
        let mut gw = acme();
        gw.hosts
            .push(WildcardHost::for_subdomain("pr", "example.org"));
        assert!(
            gw.build()
                .expect_err("dup")
                .to_string()
                .contains("used twice")
        );
        let mut gw = acme();
        gw.hosts.clear();
        assert!(gw.build().is_err());
        let mut gw = acme();
        if let TlsIssuer::Acme(a) = &mut gw.issuer {
            a.email = "nobody".into();
        }
        assert!(
            gw.build()
                .expect_err("email")
                .to_string()
                .contains("ACME e-mail")
        );
    }
}
