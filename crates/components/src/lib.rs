//! # components
//!
//! Typed builders for the pieces of a preview environment. Components only build
//! [`preview_core::Resource`]s from typed objects (k8s-openapi types, or the typed
//! CRD structs in [`crd`]); they never call an API, never read the clock or a
//! random source, and render the same bytes for the same parameters.
//!
//! Each component is a parameter struct with public, documented fields and a
//! `new(…)` constructor taking the required values and filling in the defaults of
//! the reference project (aphiria.com); change a field, then call `build()`, which
//! validates the parameters and returns the resources (or a small struct of them
//! with `into_resources()`).
//!
//! | module | renders |
//! | --- | --- |
//! | [`namespace`] | `Namespace`, `ResourceQuota`, `NetworkPolicy` set (default deny; ingress from the gateway; egress to DNS and the database) |
//! | [`postgres`] | PostgreSQL server: credentials `Secret`, `PersistentVolumeClaim`, `Deployment`, Service `db` |
//! | [`database`] | the per-PR logical database (a `postgres` provider resource) |
//! | [`dns_record`] | a DNS record in a DigitalOcean zone (a `digitalocean` provider resource), e.g. the wildcard A records pointing at the gateway |
//! | [`doks_cluster`] | a DigitalOcean Kubernetes cluster (a `digitalocean` provider resource), for creating the preview cluster |
//! | [`gateway`] | `GatewayClass`, cert-manager issuer, wildcard `Certificate`, `Gateway` |
//! | [`http_route`] | `HTTPRoute` with a connection-limiting `SnippetsFilter` |
//! | [`web`] | `js-config` ConfigMap, web `Deployment`, Service `web` |
//! | [`api`] | `nginx-config` ConfigMap, nginx + PHP-FPM `Deployment`, Service `api` |
//! | [`migration`] | Phinx migration + LexemeSeeder `Job` |
//! | [`config`] | env `ConfigMap` and env `Secret` |
//! | [`pull_secret`] | registry pull `Secret` |
//! | [`bundle`] | upstream manifests pinned by SHA-256 |
//! | [`security`] | PodSecurity namespace labels; the restricted-compliant pod settings web, API and migration use by default |
//!
//! Conventions every component follows:
//! - images are always parameters (pinned by digest by the stacks; nothing uses a
//!   `:latest` tag) with an [`ImagePullPolicy`] parameter;
//! - requests/limits are optional [`ComputeResources`] parameters; nothing
//!   preview-sized (quota, replicas, storage) is hard-coded;
//! - list-map keys are always set (`ports[].protocol: TCP`, container `name`, …),
//!   because the v1.20 API server's server-side apply rejects entries without them;
//! - labels: the stack's [`Labels`] plus `app.kubernetes.io/name`/`component`; the
//!   engine adds its ownership labels and the config hash of pod templates.
//!
//! ## Composing a stack
//!
//! How a `preview-pr` stack puts the components together (the real stack also reads
//! the base stack's outputs and its config files):
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use components::{
//!     Api, ComponentError, ComputeResources, DatabaseEgress, EnvConfigMap, EnvSecret, GatewayRef,
//!     HttpRoute, Labels, LogicalDatabase, MigrationJob, NetworkIsolation, PodSecurity,
//!     PreviewNamespace, Quota, Web,
//! };
//! use preview_core::Resource;
//! use preview_core::secret::SecretString;
//!
//! fn preview_pr(pr: u32, db_password: SecretString) -> Result<Vec<Resource>, ComponentError> {
//!     let domain = "aphiria.com";
//!     let ns = format!("preview-pr-{pr}");
//!     let labels = Labels::for_instance("aphiria", &ns);
//!     let web_image = format!("registry.digitalocean.com/aphiria/web@sha256:{}", "a".repeat(64));
//!     let api_image = format!("registry.digitalocean.com/aphiria/api@sha256:{}", "b".repeat(64));
//!     let nginx_image = format!("docker.io/nginxinc/nginx-unprivileged@sha256:{}", "c".repeat(64));
//!     let small = ComputeResources::new("100m", "128Mi", "250m", "256Mi")
//!         .with_ephemeral_storage("64Mi", "256Mi");
//!
//!     // Namespace (PodSecurity `restricted`), quota (preview sizes come from the
//!     // stack) and isolation. Web, API and migration pods are hardened by default.
//!     let mut network = NetworkIsolation::new("nginx-gateway");
//!     network.database = Some(DatabaseEgress::in_cluster("default"));
//!     let namespace = PreviewNamespace {
//!         labels: labels.clone(),
//!         pod_security: Some(PodSecurity::default()),
//!         quota: Some(Quota {
//!             cpu: "2".into(),
//!             memory: "4Gi".into(),
//!             ephemeral_storage: Some("4Gi".into()),
//!             pods: 5,
//!         }),
//!         network: Some(network),
//!         ..PreviewNamespace::new(&ns)
//!     };
//!
//!     // The logical database in the shared server (owned by this stack).
//!     let database = LogicalDatabase::new(
//!         format!("aphiria_pr_{pr}"),
//!         "aphiria",
//!         "db.default.svc.cluster.local",
//!         &ns,
//!     )
//!     .build()?;
//!
//!     // Runtime configuration.
//!     let env = EnvConfigMap {
//!         labels: labels.clone(),
//!         ..EnvConfigMap::new(&ns, format!("env-vars-pr-{pr}"), BTreeMap::from([
//!             ("APP_ENV".to_owned(), "preview".to_owned()),
//!             ("APP_API_URL".to_owned(), format!("https://{pr}.pr-api.{domain}")),
//!             ("DB_NAME".to_owned(), format!("aphiria_pr_{pr}")),
//!         ]))
//!     }
//!     .build()?;
//!     let secret = EnvSecret::new(
//!         &ns,
//!         format!("env-var-secrets-pr-{pr}"),
//!         BTreeMap::from([("DB_PASSWORD".to_owned(), db_password)]),
//!     )
//!     .build()?;
//!
//!     // Migrations run after the database exists; the API waits for them.
//!     let migration = MigrationJob {
//!         resources: Some(small.clone()),
//!         ..MigrationJob::new(&ns, &api_image, &env.id.name, &secret.id.name)
//!     }
//!     .with_config(&[&env, &secret]);
//!     let job = migration.build()?.depends_on(&database.id);
//!     let api = Api {
//!         nginx_resources: Some(small.clone()),
//!         php_resources: Some(small.clone()),
//!         init_resources: Some(small.clone()),
//!         ..Api::new(&ns, &api_image, &nginx_image, &env.id.name, &secret.id.name, job.id.clone())
//!     }
//!     .build()?;
//!     let web = Web {
//!         resources: Some(small),
//!         ..Web::new(&ns, &web_image, format!("https://{pr}.pr-api.{domain}"))
//!     }
//!     .build()?;
//!
//!     // Routes through the shared gateway, with connection limits.
//!     let listener = |section: &str| GatewayRef {
//!         name: "preview-gateway".into(),
//!         namespace: "nginx-gateway".into(),
//!         section_name: Some(section.into()),
//!     };
//!     let web_route = HttpRoute::new("web", &ns, format!("{pr}.pr.{domain}"), "web", listener("https-pr"));
//!     let api_route = HttpRoute::new("api", &ns, format!("{pr}.pr-api.{domain}"), "api", listener("https-pr-api"));
//!
//!     let mut resources = namespace.build()?.into_resources();
//!     resources.extend([database, env, secret, job]);
//!     resources.extend(api.into_resources());
//!     resources.extend(web.into_resources());
//!     resources.extend(web_route.build()?.into_resources());
//!     resources.extend(api_route.build()?.into_resources());
//!     Ok(resources)
//! }
//!
//! let resources = preview_pr(123, SecretString::new("from-the-environment")).expect("valid");
//! assert!(resources.iter().any(|r| r.id.to_string() == "Deployment preview-pr-123/api"));
//! assert!(resources.iter().any(|r| r.id.to_string() == "postgres Database aphiria_pr_123"));
//! ```
//!
//! The `preview-base` stack composes [`PostgresServer`], [`PreviewGateway`],
//! [`ImagePullSecret`], [`ManifestBundle`]s (Gateway API CRDs, nginx-gateway-fabric,
//! cert-manager) and, optionally, [`DnsRecord`]s the same way.

pub mod api;
pub mod bundle;
pub mod common;
pub mod config;
pub mod crd;
pub mod database;
pub mod dns_record;
pub mod doks_cluster;
pub mod error;
pub mod gateway;
pub mod http_route;
pub mod migration;
pub mod namespace;
pub mod postgres;
pub mod pull_secret;
pub mod security;
pub mod web;
pub mod workload;

#[cfg(test)]
mod test_support;

pub use api::{Api, ApiResources, Migration};
pub use bundle::ManifestBundle;
pub use common::{ComputeResources, CpuMemory, ImagePullPolicy, Labels, config_fingerprint};
pub use config::{EnvConfigMap, EnvSecret, EnvVars};
pub use database::{DatabaseRole, LogicalDatabase};
pub use dns_record::{DnsRecord, DnsRecordData};
pub use doks_cluster::{DoksCluster, DoksNodePool};
pub use error::ComponentError;
pub use gateway::{
    AcmeDigitalOcean, AcmeServer, AllowedRouteNamespaces, GatewayResources, IssuerScope,
    PreviewGateway, TlsIssuer, WildcardHost,
};
pub use http_route::{
    ClientSettings, ConnectionLimit, GatewayRef, HttpRoute, HttpRouteResources, RequestRate,
};
/// Label selectors, as [`ServerClients`] takes them.
pub use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
pub use migration::MigrationJob;
pub use namespace::{
    DatabaseEgress, NamespaceResources, NetworkIsolation, PolicyPeer, PolicyRule, PreviewNamespace,
    Quota,
};
pub use postgres::{PostgresResources, PostgresServer, ServerClients, Storage, postgres_uid};
pub use pull_secret::ImagePullSecret;
pub use security::{Hardening, PodSecurity, PodSecurityLevel};
pub use web::{Web, WebResources};
pub use workload::{Workload, WorkloadProbe};
