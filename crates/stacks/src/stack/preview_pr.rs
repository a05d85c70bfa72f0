//! `preview-pr --pr N --web-image REF --api-image REF`: one pull request's
//! environment, on the shared base (read through [`BaseOutputs`]).
//!
//! Inputs are checked in this order, each failure naming what to fix: `--pr`,
//! `--web-image`, `--api-image` (pinned by digest, from an `allowedImages`
//! prefix), the `preview-base` outputs,
//! the domain (must equal the base's), the name lengths, the secrets
//! (`DB_PASSWORD`, and `REGISTRY_TOKEN` with `registryPullSecret: true`).
//!
//! Resources (namespace `preview-pr-N`):
//! - `Namespace` (PodSecurity `restricted` enforced, audited and warned; never
//!   relaxed for a preview), `ResourceQuota` `preview-pr-N-quota` (`quota`,
//!   default 2 CPU / 4Gi memory / 4Gi ephemeral storage / 5 pods) and the
//!   NetworkPolicies: default deny, ingress only from the
//!   gateway namespace, egress only to DNS and the PostgreSQL pods (base outputs
//!   `gatewayNamespace`, `dbNamespace`, `dbPort`);
//! - image pull Secret `registry-credentials` when configured;
//! - the logical database `aphiria_pr_N` (`database.namePrefix` + N) on the base's
//!   server, owned by `database.user`, ownership marker `preview-pr-N`;
//! - ConfigMap `env-vars-pr-N` with exactly `APP_ENV=preview`,
//!   `APP_WEB_URL=https://N.pr.<domain>`, `APP_API_URL=https://N.pr-api.<domain>`,
//!   `APP_COOKIE_DOMAIN=.N.pr.<domain>`, `APP_COOKIE_SECURE=1`, `APP_BUILDER_API`,
//!   `APP_BUILDER_CONSOLE`, `DB_HOST` (base `dbHost`), `DB_PORT`, `DB_NAME`,
//!   `DB_USER`, `DOC_LEXEMES_TABLE_NAME`, `LOG_LEVEL`, `PR_NUMBER=N`;
//!   Secret `env-var-secrets-pr-N` with `DB_PASSWORD`;
//! - the migration Job, the API and web Deployments (`replicas`, default 1) with
//!   Services `api` and `web`, and the HTTPRoutes `N.pr.<domain>` → web and
//!   `N.pr-api.<domain>` → api on the base gateway's listeners, with connection
//!   limits (see [`super::app`]); every pod restricted-compliant, nginx on 8080.
//!
//! # Long PR numbers
//! The namespace, the env ConfigMap and Secret names (also label values) and the
//! database name are limited to 63 characters; with the default prefixes a PR
//! number may have up to 44 digits (`env-var-secrets-pr-` is the longest prefix).
//! A longer one is rejected here, naming the first name that would be too long.
//!
//! # Outputs
//! `webUrl`, `apiUrl`, `namespace`, `databaseName`, `webImage`, `apiImage` (the
//! full pinned references `NAME@sha256:…`, which a successful `up` also records as tested for `promote`).

use std::collections::BTreeMap;

use components::{
    DatabaseEgress, GatewayRef, ImagePullPolicy, LogicalDatabase, NetworkIsolation, PodSecurity,
    PodSecurityLevel, PreviewNamespace,
};
use preview_core::postgres::job::JobSettings;
use preview_core::validate::Policy;

use super::app::{App, EnvValues, Images, Route, env_vars};
use super::inputs::{
    api_image, labels, plain, pull_secret, pull_secret_names, required, secret, web_image,
};
use super::preview_base::{API_SUBDOMAIN, BaseOutputs, WEB_SUBDOMAIN};
use super::server::job_resources;
use crate::config::StackConfig;
use crate::{PrNumber, References, SecretSource, StackBuild, StackError, StackRequest};

/// Longest Kubernetes object name / label value / DNS label, and PostgreSQL identifier.
const MAX_NAME: usize = 63;

/// The names of one PR's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrNames {
    /// `preview-pr-N` (namespace and stack instance).
    pub namespace: String,
    /// `env-vars-pr-N`.
    pub config_map: String,
    /// `env-var-secrets-pr-N`.
    pub secret: String,
    /// `aphiria_pr_N`.
    pub database: String,
    /// `N.pr.<domain>`.
    pub web_host: String,
    /// `N.pr-api.<domain>`.
    pub api_host: String,
}

impl PrNames {
    /// The names for `pr` under `config`.
    pub fn new(pr: &PrNumber, config: &StackConfig) -> PrNames {
        PrNames {
            namespace: format!("preview-pr-{pr}"),
            config_map: format!("env-vars-pr-{pr}"),
            secret: format!("env-var-secrets-pr-{pr}"),
            database: format!("{}{pr}", config.database.name_prefix),
            web_host: format!("{pr}.{WEB_SUBDOMAIN}.{}", config.domain),
            api_host: format!("{pr}.{API_SUBDOMAIN}.{}", config.domain),
        }
    }

    /// The names limited to 63 characters (Kubernetes names that are also DNS
    /// labels or label values, the PostgreSQL identifier), as (what, name).
    fn limited(&self) -> [(&'static str, &str); 4] {
        [
            ("namespace", self.namespace.as_str()),
            // Also the value of the ConfigMap's `app.kubernetes.io/name` label.
            ("ConfigMap name", self.config_map.as_str()),
            // Also the value of the Secret's `app.kubernetes.io/name` label.
            ("Secret name", self.secret.as_str()),
            ("PostgreSQL database name", self.database.as_str()),
        ]
    }

    /// Rejects a PR number that makes any name longer than allowed.
    fn check(&self, pr: &PrNumber) -> Result<(), StackError> {
        let digits = pr.as_str().len();
        let longest_prefix = self
            .limited()
            .iter()
            .map(|(_, name)| name.len() - digits)
            .max()
            .unwrap_or(0);
        let fits = MAX_NAME.saturating_sub(longest_prefix);
        for (what, name) in self.limited() {
            if name.len() > MAX_NAME {
                return Err(StackError::Invalid(format!(
                    "--pr {pr}: the {what} `{name}` would be {} characters long; at most {MAX_NAME} are allowed (PR numbers of up to {fits} digits fit)",
                    name.len(),
                )));
            }
        }
        // The host names' first label is the PR number itself (≤ 63 whenever the
        // names above fit); the whole host names stay far below 253.
        Ok(())
    }
}

/// Builds `preview-pr-N`.
pub fn build(
    request: &StackRequest,
    config: &StackConfig,
    references: &References,
    secrets: &dyn SecretSource,
) -> Result<StackBuild, StackError> {
    let instance = request.instance_name()?;
    let pr = request.pr.as_ref().ok_or_else(|| StackError::Missing {
        what: "--pr".into(),
        hint: "preview-pr needs the pull-request number, e.g. --pr 123".into(),
    })?;
    debug_assert_eq!(instance, format!("preview-pr-{pr}"));
    // Parameters first (they need nothing else), then the base stack's outputs.
    let names = PrNames::new(pr, config);
    names.check(pr)?;
    let web = web_image(config, request.web_image.as_deref())?;
    let api = api_image(config, request.api_image.as_deref())?;
    let base = BaseOutputs::from_references(references)?;
    if base.domain != config.domain {
        return Err(StackError::Invalid(format!(
            "config key `domain` in {} is {}, but preview-base serves {} (its wildcard certificate and listeners are for *.{WEB_SUBDOMAIN}.{} and *.{API_SUBDOMAIN}.{}); use the same domain in both config files",
            config.origin, config.domain, base.domain, base.domain, base.domain
        )));
    }
    let nginx = required(config, &config.nginx_image, "nginxImage")?;
    let password = secret(secrets, super::DB_PASSWORD)?;

    let labels = labels(config, &instance);
    let ns = names.namespace.as_str();

    let mut network = NetworkIsolation::new(base.gateway_namespace.as_str());
    network.database = Some(
        match DatabaseEgress::in_cluster(base.db_namespace.as_str()) {
            DatabaseEgress::InCluster {
                namespace,
                pod_selector,
                ..
            } => DatabaseEgress::InCluster {
                namespace,
                pod_selector,
                port: base.db_port,
            },
            other => other,
        },
    );
    let namespace = PreviewNamespace {
        labels: labels.clone(),
        pod_security: Some(PodSecurity::new(PodSecurityLevel::Restricted)),
        quota: config.quota.clone(),
        network: Some(network),
        ..PreviewNamespace::new(ns)
    }
    .build()?;
    let pull = pull_secret(config, ns, &labels, secrets)?;

    let database = LogicalDatabase {
        port: base.db_port,
        job: Some(JobSettings {
            namespace: base.db_namespace.clone(),
            image: base.db_job_image.clone(),
            credentials_secret: base.db_credentials_secret.clone(),
            image_pull_secrets: base.db_image_pull_secrets.clone(),
            resources: job_resources(config),
        }),
        ..LogicalDatabase::new(
            names.database.as_str(),
            config.database.user.as_str(),
            base.db_host.as_str(),
            instance.as_str(),
        )
    }
    .build()?;

    let web_url = format!("https://{}", names.web_host);
    let api_url = format!("https://{}", names.api_host);
    let cookie_domain = format!(".{}", names.web_host);
    let mut env = env_vars(
        config,
        &EnvValues {
            app_env: "preview",
            web_url: &web_url,
            api_url: &api_url,
            cookie_domain: &cookie_domain,
            db_host: &base.db_host,
            db_port: base.db_port,
            db_name: &names.database,
        },
    );
    env.insert("PR_NUMBER".to_owned(), pr.to_string());

    let listener = |section: &str| GatewayRef {
        name: base.gateway_name.clone(),
        namespace: base.gateway_namespace.clone(),
        section_name: Some(section.to_owned()),
    };
    let app = App {
        config,
        labels,
        namespace: ns,
        env_config_map: names.config_map.clone(),
        env_secret: names.secret.clone(),
        env,
        db_password: password,
        database,
        images: Images {
            web: web.to_string(),
            api: api.to_string(),
            nginx: nginx.to_owned(),
            pull_policy: ImagePullPolicy::IfNotPresent,
            pull_secrets: pull_secret_names(pull.as_ref()),
        },
        web: Route {
            host: names.web_host.clone(),
            listener: listener(&base.web_section),
        },
        api: Route {
            host: names.api_host.clone(),
            listener: listener(&base.api_section),
        },
    };

    let mut resources = namespace.into_resources();
    resources.extend(pull);
    resources.extend(app.build()?);

    let outputs = BTreeMap::from([
        ("webUrl".to_owned(), plain(web_url)),
        ("apiUrl".to_owned(), plain(api_url)),
        ("namespace".to_owned(), plain(ns)),
        ("databaseName".to_owned(), plain(names.database.as_str())),
        ("webImage".to_owned(), plain(web.as_str())),
        ("apiImage".to_owned(), plain(api.as_str())),
    ]);
    Ok(StackBuild {
        name: instance,
        resources,
        outputs,
        notes: Vec::new(),
        policy: Policy {
            require_image_digests: true,
            require_resources_in_quota_namespaces: true,
            known_namespaces: [base.db_namespace, base.gateway_namespace]
                .into_iter()
                .collect(),
            ..Policy::default()
        },
    })
}
