//! `preview-base`: the persistent, shared part of the preview cluster. Never
//! destroyed by PR workflows.
//!
//! Resources:
//! - the configured upstream bundles (none by default; see `bundles.rs`);
//! - the gateway's `Namespace` (`gateway.namespace`, default `nginx-gateway`),
//!   labelled with both namespace-name labels so the previews' NetworkPolicies
//!   can admit traffic from it;
//! - the TLS issuer, a namespaced `Issuer` in the gateway namespace (`tls.issuer`:
//!   Let's Encrypt over DNS-01 by default, with the DigitalOcean token Secret
//!   `digitalocean-dns` from secret `DIGITALOCEAN_TOKEN`; or self-signed),
//!   one wildcard `Certificate` for `*.pr.<domain>` and `*.pr-api.<domain>` written
//!   to Secret `tls-cert`, the `GatewayClass` `nginx` (unless a bundle installs it)
//!   and the `Gateway` with the HTTPS listeners `https-pr` and `https-pr-api`;
//! - PostgreSQL 16 (`postgresImage`, pinned) in `database.namespace` (default
//!   `default`): Secret `db-credentials` (superuser `database.user`, password
//!   from secret `DB_PASSWORD`), PVC
//!   `db-pv-claim` (`database.storage`, default 10Gi), Deployment and Service `db`
//!   (restricted pod, no service-account token), and the NetworkPolicy
//!   `db-clients` admitting TCP 5432 only from preview namespaces and the
//!   database Jobs ([`server_clients`]). The superuser's password lives only
//!   in `db-credentials`, which only the server and the database Jobs read:
//!   previews log in with their own roles;
//! - the image pull Secret `registry-credentials` in the database namespace, when
//!   `registryPullSecret: true` (used by the PostgreSQL pod; each preview renders
//!   its own, since pull Secrets are namespaced).
//!
//! With `protect: true` (the default) the gateway namespace, every PostgreSQL
//! object and the DNS records are protected: the engine refuses to delete them, so
//! `stacks destroy preview-base` fails. To tear the base down on purpose, set
//! `protect: false`, run `stacks up preview-base` (records the change), then
//! destroy.
//!
//! - with a `dns:` section, the wildcard DNS records: A records `*.pr` and
//!   `*.pr-api` in the zone (`dns.zone`, default the domain) on DigitalOcean DNS,
//!   pointing at the Gateway's load-balancer address (`status.addresses[0]`, read
//!   when they are applied, after the Gateway is ready) or at `dns.address`; TTL
//!   `dns.ttl` (300). Ownership is marked by a TXT record `_preview-envs` in the
//!   zone, so the engine never adopts or deletes a record it did not create (see
//!   `dns.rs` and `preview_digitalocean`). Token: secret `DIGITALOCEAN_TOKEN`.
//!
//! - with `planIdentity:`, the plan credential's objects (see `plan_identity.rs`):
//!   ClusterRole and ClusterRoleBinding `preview-envs-planner` (get/list/watch,
//!   and patch/create for server-side dry-runs) and the ValidatingAdmissionPolicy
//!   `preview-envs-plan-only` with its binding, which refuses every write by that
//!   identity that is not a dry-run.
//!
//! Not rendered: the cluster itself (bring your own kubeconfig, or create it with
//! the `preview-cluster` stack and run with `--kubeconfig-from preview-cluster`;
//! the context name can be exported with `kubeContext`), and, without `dns:`, the DNS records (then
//! point `*.pr.<domain>` and `*.pr-api.<domain>` at the gateway's load balancer
//! yourself).
//!
//! # Outputs (read by `preview-pr` through [`BaseOutputs::from_references`])
//!
//! | output | value |
//! | --- | --- |
//! | `kubeContext` | `kubeContext` from the config (only when set) |
//! | `dbHost` | the PostgreSQL Service's FQDN, `db.default.svc.cluster.local` |
//! | `dbPort` | `5432` (a number) |
//! | `dbNamespace` | `default` (the previews' NetworkPolicies allow egress to it) |
//! | `dbJobImage` | the PostgreSQL image: the previews' database Jobs run `psql` from it |
//! | `dbCredentialsSecret` | `db-credentials` (in `dbNamespace`; the database Jobs' credentials) |
//! | `dbImagePullSecrets` | pull Secrets for that image in `dbNamespace` (a list, maybe empty) |
//! | `gatewayName` | `preview-gateway` |
//! | `gatewayNamespace` | `nginx-gateway` |
//! | `gatewayHttpsWebSection` | `https-pr` (listener for `*.pr.<domain>`) |
//! | `gatewayHttpsApiSection` | `https-pr-api` (listener for `*.pr-api.<domain>`) |
//! | `tlsSecretName` | `tls-cert` (in the gateway namespace) |
//! | `domain` | the domain (preview-pr checks it uses the same one) |

use std::collections::BTreeMap;

use components::{LabelSelector, LabelSelectorRequirement, ServerClients, WildcardHost};
use preview_core::state::Output;
use preview_core::validate::Policy;
use serde_json::Value;

use super::bundles::{bundle_resources, merge};
use super::dns::wildcard_records;
use super::gateway::gateway;
use super::inputs::{labels, plain, pull_secret, pull_secret_names, secret};
use super::plan_identity::plan_identity_resources;
use super::server::postgres;
use crate::config::StackConfig;
use crate::{References, SecretSource, StackBuild, StackError, StackKind, StackRequest};

/// The stack's name, also its key in [`References`].
pub const NAME: &str = "preview-base";

/// Output names.
pub mod outputs {
    /// Kubeconfig context (optional).
    pub const KUBE_CONTEXT: &str = "kubeContext";
    /// PostgreSQL host (cluster FQDN).
    pub const DB_HOST: &str = "dbHost";
    /// PostgreSQL port.
    pub const DB_PORT: &str = "dbPort";
    /// Namespace of the PostgreSQL pods.
    pub const DB_NAMESPACE: &str = "dbNamespace";
    /// Image the database Jobs run.
    pub const DB_JOB_IMAGE: &str = "dbJobImage";
    /// Credentials Secret of the database Jobs.
    pub const DB_CREDENTIALS_SECRET: &str = "dbCredentialsSecret";
    /// Pull Secrets of the database Jobs.
    pub const DB_IMAGE_PULL_SECRETS: &str = "dbImagePullSecrets";
    /// Gateway name.
    pub const GATEWAY_NAME: &str = "gatewayName";
    /// Gateway namespace.
    pub const GATEWAY_NAMESPACE: &str = "gatewayNamespace";
    /// Listener for the web hosts.
    pub const GATEWAY_HTTPS_WEB_SECTION: &str = "gatewayHttpsWebSection";
    /// Listener for the API hosts.
    pub const GATEWAY_HTTPS_API_SECTION: &str = "gatewayHttpsApiSection";
    /// Secret with the wildcard certificate.
    pub const TLS_SECRET_NAME: &str = "tlsSecretName";
    /// The domain.
    pub const DOMAIN: &str = "domain";
}

/// Subdomain of the previews' web hosts (`123.pr.aphiria.com`).
pub const WEB_SUBDOMAIN: &str = "pr";
/// Subdomain of the previews' API hosts (`123.pr-api.aphiria.com`).
pub const API_SUBDOMAIN: &str = "pr-api";

/// What `preview-base` exports and `preview-pr` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseOutputs {
    /// Kubeconfig context.
    pub kube_context: Option<String>,
    /// PostgreSQL host.
    pub db_host: String,
    /// PostgreSQL port.
    pub db_port: u16,
    /// Namespace of the PostgreSQL pods.
    pub db_namespace: String,
    /// Image the database Jobs run (the server's).
    pub db_job_image: String,
    /// Credentials Secret in `db_namespace`.
    pub db_credentials_secret: String,
    /// Pull Secrets in `db_namespace` for `db_job_image`.
    pub db_image_pull_secrets: Vec<String>,
    /// Gateway name.
    pub gateway_name: String,
    /// Gateway namespace.
    pub gateway_namespace: String,
    /// Listener for `*.pr.<domain>`.
    pub web_section: String,
    /// Listener for `*.pr-api.<domain>`.
    pub api_section: String,
    /// TLS Secret.
    pub tls_secret_name: String,
    /// Domain.
    pub domain: String,
}

impl BaseOutputs {
    /// The outputs as recorded in state.
    pub fn to_outputs(&self) -> BTreeMap<String, Output> {
        let mut out = BTreeMap::new();
        if let Some(context) = &self.kube_context {
            out.insert(outputs::KUBE_CONTEXT.to_owned(), plain(context.as_str()));
        }
        for (name, value) in [
            (outputs::DB_HOST, plain(self.db_host.as_str())),
            (outputs::DB_PORT, plain(self.db_port)),
            (outputs::DB_NAMESPACE, plain(self.db_namespace.as_str())),
            (outputs::DB_JOB_IMAGE, plain(self.db_job_image.as_str())),
            (
                outputs::DB_CREDENTIALS_SECRET,
                plain(self.db_credentials_secret.as_str()),
            ),
            (
                outputs::DB_IMAGE_PULL_SECRETS,
                plain(self.db_image_pull_secrets.clone()),
            ),
            (outputs::GATEWAY_NAME, plain(self.gateway_name.as_str())),
            (
                outputs::GATEWAY_NAMESPACE,
                plain(self.gateway_namespace.as_str()),
            ),
            (
                outputs::GATEWAY_HTTPS_WEB_SECTION,
                plain(self.web_section.as_str()),
            ),
            (
                outputs::GATEWAY_HTTPS_API_SECTION,
                plain(self.api_section.as_str()),
            ),
            (
                outputs::TLS_SECRET_NAME,
                plain(self.tls_secret_name.as_str()),
            ),
            (outputs::DOMAIN, plain(self.domain.as_str())),
        ] {
            out.insert(name.to_owned(), value);
        }
        out
    }

    /// Reads the outputs of `preview-base` from `references`.
    pub fn from_references(references: &References) -> Result<BaseOutputs, StackError> {
        let outputs = references.get(NAME).ok_or_else(|| StackError::Missing {
            what: format!("stack {NAME} outputs"),
            hint: format!("run `stacks up {NAME}` first (with the same --backend)"),
        })?;
        let get = |name: &str| -> Result<&Value, StackError> {
            match outputs.get(name) {
                Some(Output::Plain(value)) => Ok(value),
                Some(Output::Secret(_)) => Err(StackError::Invalid(format!(
                    "output `{name}` of stack {NAME} is a secret; expected a plain value"
                ))),
                None => Err(StackError::Missing {
                    what: format!("output `{name}` of stack {NAME}"),
                    hint: format!(
                        "the recorded {NAME} outputs predate this version; run `stacks up {NAME}` again"
                    ),
                }),
            }
        };
        let text = |name: &str| -> Result<String, StackError> {
            match get(name)? {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(StackError::Invalid(format!(
                    "output `{name}` of stack {NAME} is {other}; expected a non-empty string"
                ))),
            }
        };
        let port = match get(outputs::DB_PORT)? {
            Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            StackError::Invalid(format!(
                "output `{}` of stack {NAME} is not a port number",
                outputs::DB_PORT
            ))
        })?;
        let pull_secrets = match get(outputs::DB_IMAGE_PULL_SECRETS)? {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>(),
            _ => None,
        }
        .ok_or_else(|| {
            StackError::Invalid(format!(
                "output `{}` of stack {NAME} is not a list of names",
                outputs::DB_IMAGE_PULL_SECRETS
            ))
        })?;
        let kube_context = match outputs.get(outputs::KUBE_CONTEXT) {
            Some(_) => Some(text(outputs::KUBE_CONTEXT)?),
            None => None,
        };
        Ok(BaseOutputs {
            kube_context,
            db_host: text(outputs::DB_HOST)?,
            db_port: port,
            db_namespace: text(outputs::DB_NAMESPACE)?,
            db_job_image: text(outputs::DB_JOB_IMAGE)?,
            db_credentials_secret: text(outputs::DB_CREDENTIALS_SECRET)?,
            db_image_pull_secrets: pull_secrets,
            gateway_name: text(outputs::GATEWAY_NAME)?,
            gateway_namespace: text(outputs::GATEWAY_NAMESPACE)?,
            web_section: text(outputs::GATEWAY_HTTPS_WEB_SECTION)?,
            api_section: text(outputs::GATEWAY_HTTPS_API_SECTION)?,
            tls_secret_name: text(outputs::TLS_SECRET_NAME)?,
            domain: text(outputs::DOMAIN)?,
        })
    }
}

/// Who may reach the PostgreSQL server (its NetworkPolicy `db-clients`):
/// - every **preview namespace**, selected by labels the engine and the stack
///   put on each (`app.kubernetes.io/managed-by: preview-envs`,
///   `app.kubernetes.io/part-of: <app>`) and whose stack label
///   (`preview-envs.io/stack`) is not this base's (which excludes the gateway's
///   namespace, the base's own). No namespace-name label is involved, so it
///   works on every Kubernetes version and for previews created later;
/// - the **database Jobs** in the server's namespace: pods labelled
///   `app.kubernetes.io/managed-by: preview-envs` with the database-operation
///   label (`preview_postgres::job::OPERATION_LABEL`).
pub(crate) fn server_clients(config: &StackConfig) -> ServerClients {
    use preview_core::resource::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, STACK_LABEL};
    use preview_postgres::job::OPERATION_LABEL;
    let requirement =
        |key: &str, operator: &str, values: Option<Vec<String>>| LabelSelectorRequirement {
            key: key.to_owned(),
            operator: operator.to_owned(),
            values,
        };
    ServerClients {
        namespaces: LabelSelector {
            match_labels: Some(BTreeMap::from([
                (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
                ("app.kubernetes.io/part-of".to_owned(), config.app.clone()),
            ])),
            match_expressions: Some(vec![requirement(
                STACK_LABEL,
                "NotIn",
                Some(vec![NAME.to_owned()]),
            )]),
        },
        local_pods: LabelSelector {
            match_labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            match_expressions: Some(vec![requirement(OPERATION_LABEL, "Exists", None)]),
        },
    }
}

/// Builds `preview-base`.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    debug_assert_eq!(request.kind, StackKind::PreviewBase);
    let labels = labels(config, NAME);
    let protected = config.protect;
    let password = secret(secrets, super::DB_PASSWORD)?;
    let bundles = bundle_resources(config)?;

    let hosts = vec![
        WildcardHost::for_subdomain(WEB_SUBDOMAIN, &config.domain),
        WildcardHost::for_subdomain(API_SUBDOMAIN, &config.domain),
    ];
    let web_section = hosts[0].listener.clone();
    let api_section = hosts[1].listener.clone();
    let edge = gateway(config, &labels, hosts, &bundles, secrets, protected)?;

    let pull = pull_secret(config, &config.database.namespace, &labels, secrets)?;
    let server = postgres(
        config,
        &labels,
        password,
        pull_secret_names(pull.as_ref()),
        protected,
        Some(server_clients(config)),
    )?;

    let records = wildcard_records(
        config,
        NAME,
        &[WEB_SUBDOMAIN, API_SUBDOMAIN],
        &edge.gateway,
        secrets,
        protected,
    )?;

    let outputs = BaseOutputs {
        kube_context: config.kube_context.clone(),
        db_host: server.host.clone(),
        db_port: server.port,
        db_namespace: config.database.namespace.clone(),
        db_job_image: server.job.image.clone(),
        db_credentials_secret: server.job.credentials_secret.clone(),
        db_image_pull_secrets: server.job.image_pull_secrets.clone(),
        gateway_name: edge.gateway.name.clone(),
        gateway_namespace: edge.gateway.namespace.clone(),
        web_section,
        api_section,
        tls_secret_name: edge.gateway.tls_secret_name.clone(),
        domain: config.domain.clone(),
    };

    let mut own = edge.resources;
    own.extend(pull);
    own.extend(server.resources);
    own.extend(records);
    if let Some(identity) = &config.plan_identity {
        own.extend(plan_identity_resources(identity, &labels)?);
    }
    Ok(StackBuild {
        name: NAME.to_owned(),
        resources: merge(bundles, own)?,
        outputs: outputs.to_outputs(),
        notes: Vec::new(),
        policy: Policy {
            require_image_digests: true,
            ..Policy::default()
        },
    })
}
