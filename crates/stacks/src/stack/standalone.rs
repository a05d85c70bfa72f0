//! A self-contained environment: gateway, PostgreSQL and the application in one
//! cluster. `local` and `production` are this composition with different images,
//! pull policy, replicas, issuer and protection.
//!
//! Resources, in order: bundles; the gateway side (namespace, issuer, wildcard
//! certificate, class, Gateway with HTTPS listeners covering `hosts.web` and
//! `hosts.api`); the image pull Secrets; the PostgreSQL server in
//! `database.namespace` (skipped when `database.host` names an external server);
//! the application namespace (`namespace`; PodSecurity `podSecurity`, default
//! `restricted`, a relaxed level noted in every plan) with the optional `quota` and, unless
//! `networkPolicies: false`, the NetworkPolicies (ingress from the gateway
//! namespace, egress to DNS and the database: the server's namespace, or
//! `database.cidr` for an external server); then the application ([`super::app`])
//! with ConfigMap `env-vars`, Secret `env-var-secrets`, database `database.name`
//! (marker = the stack name), routes `hosts.web` → web and `hosts.api` → api.
//!
//! Listeners: one wildcard per parent domain of the hosts — `www.aphiria.com` and
//! `api.aphiria.com` share `*.aphiria.com` on listener `https`; hosts under
//! different parents get `https-web` and `https-api`. An apex host (`aphiria.com`)
//! cannot be served by a wildcard certificate and is rejected.
//!
//! Outputs: `webUrl`, `apiUrl`, `namespace`, `databaseName`, `webImage`, `apiImage`.

use std::collections::BTreeMap;

use components::{
    DatabaseEgress, GatewayRef, LogicalDatabase, NetworkIsolation, PodSecurity, PodSecurityLevel,
    PreviewNamespace, WildcardHost,
};
use preview_core::schema::database::JobSettings;
use preview_core::validate::Policy;

use super::app::{App, EnvValues, Images, Route, env_vars};
use super::bundles::{bundle_resources, merge};
use super::gateway::gateway;
use super::inputs::{labels, plain, protect, pull_secret, pull_secret_names, secret};
use super::server::{job_resources, postgres};
use crate::config::StackConfig;
use crate::{SecretSource, StackBuild, StackError};

/// Env ConfigMap name.
pub const ENV_CONFIG_MAP: &str = "env-vars";
/// Env Secret name.
pub const ENV_SECRET: &str = "env-var-secrets";

/// What differs between `local` and `production`.
pub(crate) struct Standalone<'a> {
    /// The resolved config.
    pub config: &'a StackConfig,
    /// Stack name (`local`, `production`).
    pub name: &'a str,
    /// Images (web, API, nginx) and pull policy; pull secrets are added here.
    pub images: Images,
    /// Protect namespaces, the server and the database.
    pub protect: bool,
    /// Static checks.
    pub policy: Policy,
}

impl Standalone<'_> {
    /// Builds the stack.
    pub(crate) fn build(self, secrets: &dyn SecretSource) -> Result<StackBuild, StackError> {
        let config = self.config;
        let labels = labels(config, self.name);
        let password = secret(secrets, super::DB_PASSWORD)?;
        let bundles = bundle_resources(config)?;

        let hosts = listeners(config)?;
        let edge = gateway(config, &labels, hosts, &bundles, secrets, self.protect)?;
        let section = |host: &str| {
            edge.gateway
                .section_for(host)
                .map(str::to_owned)
                .ok_or_else(|| {
                    StackError::Invalid(format!(
                        "no gateway listener covers {host} (config {})",
                        config.origin
                    ))
                })
        };
        let listener = |host: &str| -> Result<GatewayRef, StackError> {
            Ok(GatewayRef {
                name: edge.gateway.name.clone(),
                namespace: edge.gateway.namespace.clone(),
                section_name: Some(section(host)?),
            })
        };
        let web_listener = listener(&config.web_host)?;
        let api_listener = listener(&config.api_host)?;

        let ns = config.namespace.as_str();
        let mut own = edge.resources;
        let app_pull = pull_secret(config, ns, &labels, secrets)?;
        let pull_names = pull_secret_names(app_pull.as_ref());

        let (db_host, db_port, egress, job) = match &config.database.external {
            Some(external) => {
                let egress = match (&external.cidr, config.network_policies) {
                    (Some(cidr), _) => Some(DatabaseEgress::Cidr {
                        cidr: cidr.clone(),
                        port: external.port,
                    }),
                    (None, false) => None,
                    (None, true) => {
                        return Err(StackError::Missing {
                            what: format!("config key `database.cidr` in {}", config.origin),
                            hint: "with `database.host` set and NetworkPolicies on, the policy needs the server's address range (e.g. `cidr: 10.110.0.0/20`); or set `networkPolicies: false`".into(),
                        });
                    }
                };
                // Not our server: only the direct executor reaches it.
                (external.host.clone(), external.port, egress, None)
            }
            None => {
                let db_ns = config.database.namespace.as_str();
                let server_pull = if db_ns == ns {
                    None
                } else {
                    pull_secret(config, db_ns, &labels, secrets)?
                };
                let server_pull_names = if db_ns == ns {
                    pull_names.clone()
                } else {
                    pull_secret_names(server_pull.as_ref())
                };
                let server = postgres(
                    config,
                    &labels,
                    password.clone(),
                    server_pull_names,
                    self.protect,
                    None,
                )?;
                own.extend(server_pull);
                own.extend(server.resources);
                let job = JobSettings {
                    resources: job_resources(config),
                    ..server.job
                };
                (
                    server.host,
                    server.port,
                    Some(DatabaseEgress::in_cluster(db_ns)),
                    Some(job),
                )
            }
        };

        let network = config.network_policies.then(|| NetworkIsolation {
            database: egress,
            ..NetworkIsolation::new(edge.gateway.namespace.as_str())
        });
        let namespace = PreviewNamespace {
            labels: labels.clone(),
            pod_security: Some(PodSecurity::new(config.pod_security)),
            quota: config.quota.clone(),
            network,
            ..PreviewNamespace::new(ns)
        }
        .build()?;
        let notes = pod_security_notes(config);
        let mut namespace_resources = namespace.into_resources();
        if let Some(first) = namespace_resources.first_mut() {
            *first = protect(first.clone(), self.protect);
        }
        own.extend(namespace_resources);
        own.extend(app_pull);

        let database = LogicalDatabase {
            port: db_port,
            job,
            ..LogicalDatabase::new(
                config.database.name.as_str(),
                config.database.user.as_str(),
                db_host.as_str(),
                self.name,
            )
        }
        .build()?;
        let database = protect(database, self.protect);

        let web_url = format!("https://{}", config.web_host);
        let api_url = format!("https://{}", config.api_host);
        let cookie_domain = format!(".{}", config.domain);
        let env = env_vars(
            config,
            &EnvValues {
                app_env: &config.app_env,
                web_url: &web_url,
                api_url: &api_url,
                cookie_domain: &cookie_domain,
                db_host: &db_host,
                db_port,
                db_name: &config.database.name,
            },
        );
        let web_image = self.images.web.clone();
        let api_image = self.images.api.clone();
        let app = App {
            config,
            labels,
            namespace: ns,
            env_config_map: ENV_CONFIG_MAP.to_owned(),
            env_secret: ENV_SECRET.to_owned(),
            env,
            db_password: password,
            database,
            images: Images {
                pull_secrets: pull_names,
                ..self.images
            },
            web: Route {
                host: config.web_host.clone(),
                listener: web_listener,
            },
            api: Route {
                host: config.api_host.clone(),
                listener: api_listener,
            },
        };
        own.extend(app.build()?);

        let outputs = BTreeMap::from([
            ("webUrl".to_owned(), plain(web_url)),
            ("apiUrl".to_owned(), plain(api_url)),
            ("namespace".to_owned(), plain(ns)),
            (
                "databaseName".to_owned(),
                plain(config.database.name.as_str()),
            ),
            ("webImage".to_owned(), plain(web_image)),
            ("apiImage".to_owned(), plain(api_image)),
        ]);
        Ok(StackBuild {
            name: self.name.to_owned(),
            resources: merge(bundles, own)?,
            outputs,
            notes,
            policy: self.policy,
        })
    }
}

/// The plan note of a relaxed PodSecurity level (none for `restricted`).
pub(crate) fn pod_security_notes(config: &StackConfig) -> Vec<String> {
    if config.pod_security == PodSecurityLevel::Restricted {
        return Vec::new();
    }
    vec![format!(
        "PodSecurity relaxed: namespace {} enforces `{}`, not `restricted` (config key `podSecurity` in {}); the stack's own pods stay restricted-compliant, other pods there may run as root",
        config.namespace,
        config.pod_security.as_str(),
        config.origin
    )]
}

/// The wildcard listeners covering the web and API hosts.
fn listeners(config: &StackConfig) -> Result<Vec<WildcardHost>, StackError> {
    let parent = |key: &str, host: &str| -> Result<String, StackError> {
        match host.split_once('.') {
            Some((_, parent)) if parent.contains('.') => Ok(parent.to_owned()),
            _ => Err(StackError::Invalid(format!(
                "config key `{key}` in {}: {host} has no parent domain a wildcard certificate could cover (use a subdomain such as www.{host})",
                config.origin
            ))),
        }
    };
    let web = parent("hosts.web", &config.web_host)?;
    let api = parent("hosts.api", &config.api_host)?;
    let wildcard = |listener: &str, parent: &str| WildcardHost {
        listener: listener.to_owned(),
        hostname: format!("*.{parent}"),
    };
    Ok(if web == api {
        vec![wildcard("https", &web)]
    } else {
        vec![wildcard("https-web", &web), wildcard("https-api", &api)]
    })
}
