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

use components::{
    DatabaseEgress, GatewayRef, LogicalDatabase, NetworkIsolation, PodSecurity, PodSecurityLevel,
    PreviewNamespace, WildcardHost,
};
use preview_core::schema::database::JobSettings;
use preview_core::validate::Policy;

use super::app::app_outputs;
use super::bundles::{bundle_resources, merge};
use super::gateway::gateway;
use super::inputs::{labels, protect, pull_secret, pull_secret_names, secret};
use super::server::{job_resources, postgres};
use crate::app_spec::network;
use crate::app_spec::render::{Database, EnvNames, Images, Instance, Renderer};
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
    /// Images (by key, nginx) and pull policy; pull secrets are added here.
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
        let app = &config.app_spec;
        let labels = labels(config, self.name);
        let with_database = app.spec.addons.postgres.is_some();
        let password = if with_database {
            Some(secret(secrets, super::DB_PASSWORD)?)
        } else {
            None
        };
        let bundles = bundle_resources(config)?;

        let ns = config.namespace.as_str();
        let app_pull = pull_secret(config, ns, &labels, secrets)?;
        let pull_names = pull_secret_names(app_pull.as_ref());

        // The database side: the stack's own server (or an external one) and the
        // app's database on it.
        let mut server_resources = Vec::new();
        let mut egress = None;
        let mut database = None;
        if let Some(password) = &password {
            let (db_host, db_port, db_egress, job) = match &config.database.external {
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
                    server_resources.extend(server_pull);
                    server_resources.extend(server.resources);
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
            egress = db_egress;
            let resource = LogicalDatabase {
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
            database = Some(Database {
                resource: protect(resource, self.protect),
                host: db_host,
                port: db_port,
                name: config.database.name.clone(),
                user: config.database.user.clone(),
                password: password.clone(),
            });
        }

        let renderer = Renderer::new(
            app,
            Instance {
                stack: config.stack,
                config,
                namespace: ns,
                pr: None,
                database,
            },
        )?;
        let hosts: Vec<(String, String, String)> = renderer
            .hosts()
            .iter()
            .map(|(route, host)| (route.clone(), host.clone(), renderer.host_source(route)))
            .collect();
        let wildcards = listeners(&hosts)?;
        let edge = gateway(config, &labels, wildcards, &bundles, secrets, self.protect)?;
        let listener = |route: &str| -> Result<GatewayRef, StackError> {
            let host = hosts
                .iter()
                .find(|(name, _, _)| name == route)
                .map(|(_, host, _)| host.as_str())
                .unwrap_or_default();
            let section = edge
                .gateway
                .section_for(host)
                .map(str::to_owned)
                .ok_or_else(|| {
                    StackError::Invalid(format!(
                        "no gateway listener covers {host} (config {})",
                        config.origin
                    ))
                })?;
            Ok(GatewayRef {
                name: edge.gateway.name.clone(),
                namespace: edge.gateway.namespace.clone(),
                section_name: Some(section),
            })
        };

        let mut own = edge.resources.clone();
        own.extend(server_resources);

        let network = config.network_policies.then(|| NetworkIsolation {
            database: egress,
            ingress_ports: network::ingress_ports(app),
            rules: network::rules(app),
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

        let images = Images {
            pull_secrets: pull_names,
            ..self.images
        };
        let rendered = renderer.render(
            &labels,
            &EnvNames {
                config_map: ENV_CONFIG_MAP.to_owned(),
                secret: ENV_SECRET.to_owned(),
            },
            &images,
            &listener,
        )?;
        own.extend(rendered.resources);

        let outputs = app_outputs(
            rendered.urls,
            ns,
            with_database.then_some(config.database.name.as_str()),
            &images,
        );
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

/// The wildcard listeners covering the route hosts, given as (route, host,
/// where the host came from): one `https` listener when all hosts share a parent
/// domain, else one per parent, `https-<first route under it>` (`https-web`,
/// `https-api`).
fn listeners(hosts: &[(String, String, String)]) -> Result<Vec<WildcardHost>, StackError> {
    let mut parents: Vec<(String, String)> = Vec::new();
    for (route, host, source) in hosts {
        let parent = match host.split_once('.') {
            Some((_, parent)) if parent.contains('.') => parent.to_owned(),
            _ => {
                return Err(StackError::Invalid(format!(
                    "{source}: {host} has no parent domain a wildcard certificate could cover (use a subdomain such as www.{host})"
                )));
            }
        };
        if !parents.iter().any(|(p, _)| *p == parent) {
            parents.push((parent, route.clone()));
        }
    }
    let wildcard = |listener: String, parent: &str| WildcardHost {
        listener,
        hostname: format!("*.{parent}"),
    };
    Ok(match parents.as_slice() {
        [(parent, _)] => vec![wildcard("https".to_owned(), parent)],
        _ => parents
            .iter()
            .map(|(parent, route)| wildcard(format!("https-{route}"), parent))
            .collect(),
    })
}
