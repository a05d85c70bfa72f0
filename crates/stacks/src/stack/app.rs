//! The application, as `local`, `preview-pr` and `production` all deploy it:
//! env ConfigMap and Secret, the logical database, the migration Job gating the
//! API, the API and web Deployments with their Services, and one HTTPRoute per
//! host through the gateway.
//!
//! Dependencies, so the engine applies in the right order: the migration Job
//! depends on the logical database; the API Deployment depends on the Job
//! (applied only once it completed); each route depends on its limits filter; the
//! graph adds the rest (namespace, ConfigMaps/Secrets the pods use, Services).
//! The Job's name carries a hash of its pod template and of the env ConfigMap and
//! Secret, so a new image or configuration runs the migrations again.

use std::collections::BTreeMap;

use components::{
    Api, EnvConfigMap, EnvSecret, GatewayRef, HttpRoute, ImagePullPolicy, Labels, MigrationJob, Web,
};
use preview_core::Resource;
use preview_core::secret::SecretString;

use crate::StackError;
use crate::config::StackConfig;

/// Env keys every environment sets (preview-pr adds `PR_NUMBER`).
pub const ENV_KEYS: [&str; 13] = [
    "APP_API_URL",
    "APP_BUILDER_API",
    "APP_BUILDER_CONSOLE",
    "APP_COOKIE_DOMAIN",
    "APP_COOKIE_SECURE",
    "APP_ENV",
    "APP_WEB_URL",
    "DB_HOST",
    "DB_NAME",
    "DB_PORT",
    "DB_USER",
    "DOC_LEXEMES_TABLE_NAME",
    "LOG_LEVEL",
];

/// The values of the env ConfigMap that differ per environment.
pub struct EnvValues<'a> {
    /// `APP_ENV`.
    pub app_env: &'a str,
    /// `APP_WEB_URL`.
    pub web_url: &'a str,
    /// `APP_API_URL`.
    pub api_url: &'a str,
    /// `APP_COOKIE_DOMAIN`.
    pub cookie_domain: &'a str,
    /// `DB_HOST` (a cluster FQDN or an external host).
    pub db_host: &'a str,
    /// `DB_PORT`.
    pub db_port: u16,
    /// `DB_NAME`.
    pub db_name: &'a str,
}

/// The env ConfigMap's data: [`ENV_KEYS`] from `values` and the config.
pub fn env_vars(config: &StackConfig, values: &EnvValues<'_>) -> BTreeMap<String, String> {
    [
        ("APP_API_URL", values.api_url.to_owned()),
        ("APP_BUILDER_API", config.builder_api.clone()),
        ("APP_BUILDER_CONSOLE", config.builder_console.clone()),
        ("APP_COOKIE_DOMAIN", values.cookie_domain.to_owned()),
        ("APP_COOKIE_SECURE", "1".to_owned()),
        ("APP_ENV", values.app_env.to_owned()),
        ("APP_WEB_URL", values.web_url.to_owned()),
        ("DB_HOST", values.db_host.to_owned()),
        ("DB_NAME", values.db_name.to_owned()),
        ("DB_PORT", values.db_port.to_string()),
        ("DB_USER", config.database.user.clone()),
        ("DOC_LEXEMES_TABLE_NAME", config.lexemes_table_name.clone()),
        ("LOG_LEVEL", config.log_level.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A public host routed through a Gateway listener.
pub struct Route {
    /// Host name, e.g. `123.pr.aphiria.com`.
    pub host: String,
    /// The listener.
    pub listener: GatewayRef,
}

/// Images of the application.
pub struct Images {
    /// Web image.
    pub web: String,
    /// API (PHP-FPM) image, also used by the migration Job.
    pub api: String,
    /// nginx image of the API pods.
    pub nginx: String,
    /// Pull policy for all of them.
    pub pull_policy: ImagePullPolicy,
    /// `imagePullSecrets` names.
    pub pull_secrets: Vec<String>,
}

/// Everything the application needs from its stack.
pub struct App<'a> {
    /// The resolved config (sizes, replicas, limits, migration command).
    pub config: &'a StackConfig,
    /// Labels for every object.
    pub labels: Labels,
    /// Namespace.
    pub namespace: &'a str,
    /// Env ConfigMap name (`env-vars-pr-123`).
    pub env_config_map: String,
    /// Env Secret name (`env-var-secrets-pr-123`).
    pub env_secret: String,
    /// Env ConfigMap data.
    pub env: BTreeMap<String, String>,
    /// `DB_PASSWORD`.
    pub db_password: SecretString,
    /// The logical database resource (the migration Job depends on it).
    pub database: Resource,
    /// Images.
    pub images: Images,
    /// Web route.
    pub web: Route,
    /// API route.
    pub api: Route,
}

impl App<'_> {
    /// The API's public URL.
    pub fn api_url(&self) -> String {
        format!("https://{}", self.api.host)
    }

    /// Renders the resources: database, env ConfigMap and Secret, migration Job,
    /// API, web, routes.
    pub fn build(self) -> Result<Vec<Resource>, StackError> {
        let config = self.config;
        let resources = &config.resources;
        let env = EnvConfigMap {
            labels: self.labels.clone(),
            ..EnvConfigMap::new(
                self.namespace,
                self.env_config_map.as_str(),
                self.env.clone(),
            )
        }
        .build()?;
        let secret = EnvSecret {
            labels: self.labels.clone(),
            ..EnvSecret::new(
                self.namespace,
                self.env_secret.as_str(),
                BTreeMap::from([("DB_PASSWORD".to_owned(), self.db_password.clone())]),
            )
        }
        .build()?;

        let mut migration = MigrationJob {
            image_pull_policy: self.images.pull_policy,
            resources: resources.migration.clone(),
            image_pull_secrets: self.images.pull_secrets.clone(),
            labels: self.labels.clone(),
            ..MigrationJob::new(
                self.namespace,
                self.images.api.as_str(),
                env.id.name.as_str(),
                secret.id.name.as_str(),
            )
        }
        .with_config(&[&env, &secret]);
        if let Some(command) = &config.migration_command {
            migration.command = command.clone();
        }
        let job = migration.build()?.depends_on(&self.database.id);

        let api = Api {
            image_pull_policy: self.images.pull_policy,
            replicas: config.replicas,
            nginx_resources: resources.api_nginx.clone(),
            php_resources: resources.api_php.clone(),
            init_resources: resources.api_init.clone(),
            image_pull_secrets: self.images.pull_secrets.clone(),
            labels: self.labels.clone(),
            ..Api::new(
                self.namespace,
                self.images.api.as_str(),
                self.images.nginx.as_str(),
                env.id.name.as_str(),
                secret.id.name.as_str(),
                job.id.clone(),
            )
        }
        .build()?;
        let web = Web {
            image_pull_policy: self.images.pull_policy,
            replicas: config.replicas,
            resources: resources.web.clone(),
            image_pull_secrets: self.images.pull_secrets.clone(),
            labels: self.labels.clone(),
            ..Web::new(self.namespace, self.images.web.as_str(), self.api_url())
        }
        .build()?;

        let route = |name: &str, route: &Route| {
            HttpRoute {
                connection_limit: Some(config.connection_limit.clone()),
                labels: self.labels.clone(),
                ..HttpRoute::new(
                    name,
                    self.namespace,
                    route.host.as_str(),
                    name,
                    route.listener.clone(),
                )
            }
            .build()
        };
        let web_route = route("web", &self.web)?;
        let api_route = route("api", &self.api)?;

        let mut out = vec![self.database, env, secret, job];
        out.extend(api.into_resources());
        out.extend(web.into_resources());
        out.extend(web_route.into_resources());
        out.extend(api_route.into_resources());
        Ok(out)
    }
}
